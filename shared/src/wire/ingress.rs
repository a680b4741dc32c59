//! Proxy ingress API (`/v1/ingress/*`, broker-issued DPoP-bound token; proxy §1.7). Plain REST,
//! not MCP JSON-RPC.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Element of `GET /v1/ingress/tools` (200, a JSON array of the tools whose
/// `required_capability` is in the caller's token scope):
/// `{name, description, required_capability, parameters_schema}` (`parameters_schema` is a JSON
/// Schema object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDescriptor {
    pub name: String,
    pub description: String,
    pub required_capability: String,
    #[serde(default)]
    pub parameters_schema: Map<String, Value>,
}

/// `POST /v1/ingress/execute` request body:
/// `{tool (^[a-z][a-z0-9_]*$, ≤128), parameters = {}, request_id = <uuid4>}`.
/// `request_id` is `None` when absent; the service generates the uuid4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecuteRequest {
    pub tool: String,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// `status` of an [`ExecuteResponse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecuteStatus {
    Success,
    Error,
}

impl ExecuteStatus {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
        }
    }
}

/// `POST /v1/ingress/execute` body (always HTTP 200):
/// `{request_id, tool, status: "success"|"error", result, error, execution_time_ms}`.
/// `result` (any JSON) and `error` are `null` when absent; `execution_time_ms` is a float.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecuteResponse {
    pub request_id: String,
    pub tool: String,
    pub status: ExecuteStatus,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
    pub execution_time_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::*;

    #[test]
    fn tool_list_roundtrip() {
        let t: Vec<ToolDescriptor> = roundtrip_exact(
            r#"[{"name":"check_erp_inventory","description":"Check stock","required_capability":"erp.inventory.read","parameters_schema":{"properties":{"sku":{"type":"string"}},"required":["sku"],"type":"object"}}]"#,
        );
        assert_eq!(t[0].required_capability, "erp.inventory.read");
    }

    #[test]
    fn execute_request_defaults() {
        let r: ExecuteRequest =
            serde_json::from_str(r#"{"tool":"check_erp_inventory","caller":"x"}"#).unwrap();
        assert!(r.parameters.is_empty());
        assert_eq!(r.request_id, None);
        let r: ExecuteRequest = roundtrip_exact(
            r#"{"tool":"query_salesforce","parameters":{"soql":"SELECT Id FROM Account"},"request_id":"r-1"}"#,
        );
        assert_eq!(r.request_id.as_deref(), Some("r-1"));
    }

    #[test]
    fn execute_response_roundtrip() {
        let ok: ExecuteResponse = roundtrip_exact(
            r#"{"request_id":"r-1","tool":"check_erp_inventory","status":"success","result":{"quantity":142,"sku":"A-1"},"error":null,"execution_time_ms":1.25}"#,
        );
        assert_eq!(ok.status, ExecuteStatus::Success);
        assert_eq!(ok.error, None);
        let err: ExecuteResponse = roundtrip_exact(
            r#"{"request_id":"r-2","tool":"nope","status":"error","result":null,"error":"Tool 'nope' not found","execution_time_ms":0.0}"#,
        );
        assert_eq!(err.status, ExecuteStatus::Error);
        assert_eq!(err.result, None);
        assert_eq!(ExecuteStatus::Error.as_str(), "error");
        assert_eq!(to_value(&ExecuteStatus::Success), Value::from("success"));
    }
}
