//! `/v1/registry/agents*`: registration, lookup, public keys, certificate rotation; and the
//! read paths again under `/v1/federation/agents*`, where `cullis-sdk` 0.2.x looks for them
//! (the same handlers: one implementation, two prefixes).

use crate::audit::{AuditEvent, Outcome};
use crate::auth::agent::AgentAuth;
use crate::auth::org::OrgAuth;
use crate::db::agents::{Agent, NewAgent};
use crate::db::search::{Cursor, Discovery, Page};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use cullis_shared::pki::{
    internal_to_spiffe, spiffe_to_internal, validate_agent_id, verify_rotation_cert, Certificate,
};
use cullis_shared::wire::registry::{
    AgentListQuery, AgentListResponse, AgentRegisterRequest, AgentResponse, AgentSearchQuery,
    PublicKeyResponse, RotateCertRequest, RotateCertResponse,
};
use serde_json::{Map, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/registry/agents", post(register).get(list))
        .route("/v1/registry/agents/search", get(search))
        .route("/v1/registry/agents/{agent_id}", get(get_agent))
        .route("/v1/registry/agents/{agent_id}/public-key", get(public_key))
        .route(
            "/v1/registry/agents/{agent_id}/rotate-cert",
            post(rotate_cert),
        )
        .route("/v1/federation/agents", get(federation_list))
        .route("/v1/federation/agents/search", get(search))
        .route("/v1/federation/agents/{agent_id}", get(get_agent))
        .route(
            "/v1/federation/agents/{agent_id}/public-key",
            get(public_key),
        )
}

/// The metadata key under which an agent declares the E2E envelope versions it opens.
const E2E_METADATA_KEY: &str = "e2e";

/// `metadata.e2e`, when present, is a list of known envelope version names (422 otherwise).
fn check_e2e_metadata(metadata: &Map<String, Value>) -> ApiResult<()> {
    let Some(declared) = metadata.get(E2E_METADATA_KEY) else {
        return Ok(());
    };
    let known = declared.as_array().is_some_and(|names| {
        !names.is_empty()
            && names.iter().all(|name| {
                name.as_str()
                    .and_then(cullis_shared::envelope::E2eVersion::from_name)
                    .is_some()
            })
    });
    if known {
        return Ok(());
    }
    let names: Vec<&str> = cullis_shared::envelope::E2eVersion::ALL
        .iter()
        .map(|v| v.as_str())
        .collect();
    Err(ApiError::validation(
        "value_error",
        &["body", "metadata", E2E_METADATA_KEY],
        format!(
            "metadata.e2e must be a non-empty list of: {}",
            names.join(", ")
        ),
        declared.clone(),
    ))
}

/// The envelope versions the agent declared at registration (checked then), if any.
fn declared_e2e(metadata_json: &str) -> Option<Vec<String>> {
    let metadata: Map<String, Value> = serde_json::from_str(metadata_json).ok()?;
    let names = metadata.get(E2E_METADATA_KEY)?.as_array()?;
    Some(
        names
            .iter()
            .filter_map(|name| name.as_str().map(str::to_owned))
            .collect(),
    )
}

pub(crate) fn agent_response(state: &AppState, agent: Agent) -> AgentResponse {
    let agent_uri = internal_to_spiffe(&agent.agent_id, &state.config.trust_domain)
        .map(|id| id.as_str().to_owned())
        .unwrap_or_default();
    let metadata: Map<String, Value> =
        serde_json::from_str(&agent.metadata_json).unwrap_or_default();
    AgentResponse {
        agent_id: agent.agent_id,
        org_id: agent.org_id,
        display_name: agent.display_name,
        description: agent.description,
        capabilities: agent.capabilities,
        is_active: agent.is_active,
        registered_at: agent.registered_at,
        metadata,
        agent_uri,
    }
}

fn too_long(field: &str, limit: &str) -> ApiError {
    ApiError::validation(
        "too_long",
        &["body", field],
        format!("{field} must be at most {limit}"),
        Value::Null,
    )
}

async fn register(
    State(state): State<AppState>,
    org: OrgAuth,
    ApiJson(request): ApiJson<AgentRegisterRequest>,
) -> ApiResult<(StatusCode, Json<AgentResponse>)> {
    let (id_org, _) = validate_agent_id(&request.agent_id).map_err(|_| {
        ApiError::validation(
            "string_pattern_mismatch",
            &["body", "agent_id"],
            "String should match pattern '^[a-z0-9][a-z0-9._-]{0,127}::[a-z0-9][a-z0-9._-]{0,127}$'",
            request.agent_id.clone().into(),
        )
    })?;
    super::check_display_name(&request.display_name)?;
    if request.capabilities.len() > 50 {
        return Err(too_long("capabilities", "50 items"));
    }
    if request.description.chars().count() > 1024 {
        return Err(too_long("description", "1024 characters"));
    }
    check_e2e_metadata(&request.metadata)?;
    let metadata_json = Value::Object(request.metadata).to_string();
    if metadata_json.len() > 16 * 1024 {
        return Err(too_long("metadata", "16 KB of JSON"));
    }
    if request.org_id != org.org.org_id {
        return Err(ApiError::forbidden(
            "org_id in body does not match authenticated organization",
        ));
    }
    // An org registers agents only in its own namespace.
    if id_org != org.org.org_id {
        return Err(ApiError::forbidden(
            "agent_id must be in your organization's namespace ('<org_id>::<name>')",
        ));
    }
    let capabilities_json =
        serde_json::to_string(&request.capabilities).expect("strings serialize");
    let agent = NewAgent {
        agent_id: &request.agent_id,
        org_id: &org.org.org_id,
        display_name: &request.display_name,
        description: &request.description,
        capabilities_json: &capabilities_json,
        metadata_json: &metadata_json,
    };
    if !state.db.insert_agent(&agent, &request.capabilities).await? {
        return Err(ApiError::conflict("agent_id already registered"));
    }
    state
        .audit
        .record(
            AuditEvent::new("registry.agent_registered", Outcome::Ok)
                .agent(request.agent_id.clone())
                .org(org.org.org_id.clone())
                .detail("capabilities", request.capabilities.clone()),
        )
        .await?;
    let stored = state
        .db
        .agent(&request.agent_id)
        .await?
        .ok_or_else(|| ApiError::internal("agent vanished after insert"))?;
    Ok((StatusCode::CREATED, Json(agent_response(&state, stored))))
}

async fn list(
    State(state): State<AppState>,
    caller: AgentAuth,
    ApiQuery(query): ApiQuery<AgentListQuery>,
) -> ApiResult<Json<AgentListResponse>> {
    let org_id = query.org_id.unwrap_or_else(|| caller.org_id().to_owned());
    if org_id != caller.org_id() {
        return Err(ApiError::forbidden(
            "You cannot view agents from other organizations",
        ));
    }
    let agents: Vec<AgentResponse> = state
        .db
        .agents_of_org(&org_id)
        .await?
        .into_iter()
        .map(|a| agent_response(&state, a))
        .collect();
    Ok(Json(AgentListResponse {
        total: agents.len() as u64,
        agents,
        next_cursor: None,
    }))
}

/// Decodes the search query by hand: `capability` repeats, which `serde_urlencoded` cannot
/// collect into a list.
fn parse_search_query(raw: Option<&str>) -> ApiResult<AgentSearchQuery> {
    let mut query = AgentSearchQuery::default();
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "capability" => query.capability.push(value),
            "agent_id" => query.agent_id = Some(value),
            "agent_uri" => query.agent_uri = Some(value),
            "org_id" => query.org_id = Some(value),
            "pattern" => query.pattern = Some(value),
            "q" => query.q = Some(value),
            "cursor" => query.cursor = Some(value),
            "limit" => {
                query.limit = Some(value.parse().map_err(|_| {
                    ApiError::validation(
                        "int_parsing",
                        &["query", "limit"],
                        "Input should be a valid integer, unable to parse string as an integer",
                        Value::String(value),
                    )
                })?)
            }
            "include_own_org" => {
                query.include_own_org = match value.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" | "t" | "y" => true,
                    "false" | "0" | "no" | "off" | "f" | "n" => false,
                    _ => {
                        return Err(ApiError::validation(
                            "bool_parsing",
                            &["query", "include_own_org"],
                            "Input should be a valid boolean, unable to interpret input",
                            Value::String(value),
                        ))
                    }
                }
            }
            _ => {}
        }
    }
    Ok(query)
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// `GET /v1/registry/agents/search` (§4), also `/v1/federation/agents/search`. Only active
/// agents with an approved binding in their own org are discoverable; the caller's own org is
/// left out unless `include_own_org=true` (a direct lookup by id never leaves it out).
async fn search(
    State(state): State<AppState>,
    caller: AgentAuth,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<AgentListResponse>> {
    let query = parse_search_query(raw.as_deref())?;
    let unfiltered = query.capability.iter().all(String::is_empty)
        && [
            &query.agent_id,
            &query.agent_uri,
            &query.org_id,
            &query.pattern,
            &query.q,
        ]
        .iter()
        .all(|value| non_empty(value).is_none());
    if unfiltered {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "At least one search parameter is required",
        ));
    }
    listing(&state, find_agents(&state, &caller, &query).await?)
}

/// `GET /v1/federation/agents`: the network's discoverable agents, with the search's optional
/// filters (none needed: no filter = every discoverable agent of the other organisations).
async fn federation_list(
    State(state): State<AppState>,
    caller: AgentAuth,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<AgentListResponse>> {
    let query = parse_search_query(raw.as_deref())?;
    listing(&state, find_agents(&state, &caller, &query).await?)
}

fn listing(state: &AppState, page: Page) -> ApiResult<Json<AgentListResponse>> {
    let agents: Vec<AgentResponse> = page
        .agents
        .into_iter()
        .map(|a| agent_response(state, a))
        .collect();
    Ok(Json(AgentListResponse {
        total: page.total,
        agents,
        next_cursor: page.next.as_ref().map(Cursor::encode),
    }))
}

/// The page size asked for: 1..=`DISCOVERY_MAX_RESULTS`, that maximum when not given.
fn page_size(state: &AppState, query: &AgentSearchQuery) -> ApiResult<u32> {
    let max = state.config.discovery_max_results;
    match query.limit {
        None => Ok(max),
        Some(limit) if (1..=max).contains(&limit) => Ok(limit),
        Some(limit) => Err(ApiError::validation(
            "less_than_equal",
            &["query", "limit"],
            format!("limit must be between 1 and {max} (DISCOVERY_MAX_RESULTS)"),
            Value::from(limit),
        )),
    }
}

/// The discovery rules of [`search`] applied to `query` (every filter optional).
async fn find_agents(
    state: &AppState,
    caller: &AgentAuth,
    query: &AgentSearchQuery,
) -> ApiResult<Page> {
    let limit = page_size(state, query)?;
    let capabilities: Vec<&str> = query
        .capability
        .iter()
        .map(String::as_str)
        .filter(|c| !c.is_empty())
        .collect();
    let direct = match (non_empty(&query.agent_id), non_empty(&query.agent_uri)) {
        (Some(id), _) => Some(Some(id.to_owned())),
        (None, Some(uri)) => Some(spiffe_to_internal(uri).ok()),
        (None, None) => None,
    };
    if let Some(direct) = direct {
        let found = match direct {
            Some(id) => state.db.discoverable_agent(&id).await?,
            None => None,
        };
        let agents: Vec<Agent> = found
            .filter(|agent| {
                capabilities
                    .iter()
                    .all(|cap| agent.capabilities.iter().any(|c| c == cap))
            })
            .into_iter()
            .collect();
        return Ok(Page {
            total: agents.len() as u64,
            agents,
            next: None,
        });
    }
    let after = match non_empty(&query.cursor) {
        None => None,
        Some(text) => Some(Cursor::decode(text).ok_or_else(|| {
            ApiError::validation(
                "value_error",
                &["query", "cursor"],
                "cursor is not one this broker handed out (use next_cursor of the previous page)",
                Value::String(text.to_owned()),
            )
        })?),
    };
    let discovery = Discovery {
        capabilities,
        org_id: non_empty(&query.org_id),
        exclude_org: (!query.include_own_org).then(|| caller.org_id()),
        q: non_empty(&query.q),
        pattern: non_empty(&query.pattern),
        trust_domain: &state.config.trust_domain,
        after,
        limit,
    };
    Ok(state.db.discover(&discovery).await?)
}

/// Same org: always visible. Other org: only an agent its own org has approved.
async fn visible_agent(state: &AppState, caller: &AgentAuth, agent_id: &str) -> ApiResult<Agent> {
    let agent = state
        .db
        .agent(agent_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Agent not found"))?;
    if agent.org_id != caller.org_id() {
        let approved = state
            .db
            .binding_for(&agent.org_id, &agent.agent_id)
            .await?
            .is_some_and(|binding| binding.status == "approved");
        if !approved {
            return Err(ApiError::forbidden("No approved binding with this agent"));
        }
    }
    Ok(agent)
}

async fn get_agent(
    State(state): State<AppState>,
    caller: AgentAuth,
    ApiPath(agent_id): ApiPath<String>,
) -> ApiResult<Json<AgentResponse>> {
    let agent = visible_agent(&state, &caller, &agent_id).await?;
    Ok(Json(agent_response(&state, agent)))
}

async fn public_key(
    State(state): State<AppState>,
    caller: AgentAuth,
    ApiPath(agent_id): ApiPath<String>,
) -> ApiResult<Json<PublicKeyResponse>> {
    let agent = visible_agent(&state, &caller, &agent_id).await?;
    let pem = agent
        .cert_pem
        .ok_or_else(|| ApiError::not_found("Certificate not available — agent must login first"))?;
    let key = Certificate::from_pem(&pem)
        .map_err(|e| e.to_string())
        .and_then(|cert| cert.public_key().map_err(|e| e.to_string()))
        .map_err(|e| {
            ApiError::internal(format!("pinned certificate of {agent_id} unreadable: {e}"))
        })?;
    Ok(Json(PublicKeyResponse {
        agent_id,
        public_key_pem: key.to_spki_pem(),
        e2e: declared_e2e(&agent.metadata_json),
        cert_pem: Some(pem),
    }))
}

async fn rotate_cert(
    State(state): State<AppState>,
    org: OrgAuth,
    ApiPath(agent_id): ApiPath<String>,
    ApiJson(request): ApiJson<RotateCertRequest>,
) -> ApiResult<Json<RotateCertResponse>> {
    rotate_agent_cert(&state, &org.org, &agent_id, &request.new_certificate)
        .await
        .map(Json)
}

/// Pins a new certificate for an agent of `org` (it must chain to the org's CA and name the
/// agent) and revokes the agent's tokens.
pub(crate) async fn rotate_agent_cert(
    state: &AppState,
    org: &crate::db::orgs::Org,
    agent_id: &str,
    new_certificate: &str,
) -> ApiResult<RotateCertResponse> {
    let agent_id = agent_id.to_owned();
    let agent = state
        .db
        .agent(&agent_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Agent not found"))?;
    if agent.org_id != org.org_id {
        return Err(ApiError::forbidden(
            "Agent does not belong to your organization",
        ));
    }
    let ca_pem = org
        .ca_certificate
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("Org CA not configured"))?;
    let org_ca = Certificate::from_pem(ca_pem)
        .map_err(|_| ApiError::bad_request("Org CA not configured"))?;
    let now = crate::db::unix_now();
    let cert = verify_rotation_cert(new_certificate, &agent_id, &org_ca, now)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let thumbprint = cert.thumbprint().to_owned();
    state
        .db
        .rotate_agent_cert(&agent_id, &cert.to_pem(), &thumbprint, now)
        .await?;
    state
        .audit
        .record(
            AuditEvent::new("agent.cert_rotated", Outcome::Ok)
                .agent(agent_id.clone())
                .org(org.org_id.clone())
                .detail("old_thumbprint", agent.cert_thumbprint)
                .detail("new_thumbprint", thumbprint.clone()),
        )
        .await?;
    Ok(RotateCertResponse {
        agent_id,
        thumbprint,
    })
}
