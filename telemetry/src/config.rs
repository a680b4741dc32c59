//! The telemetry settings, read from the same environment map as the rest of a binary's
//! configuration. Names are OpenTelemetry's standard ones (`OTEL_*`) plus `PROMETHEUS_ENABLED`;
//! a bad value is refused with the variable's name and what it accepts.

use std::time::Duration;

/// Which OTLP transport the exporters speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (default port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default port 4318, paths `/v1/traces`, `/v1/metrics`).
    HttpProtobuf,
}

/// What to record and where to send it.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `OTEL_ENABLED`: export traces and metrics over OTLP (default off: nothing is sent
    /// anywhere and the tracing layer is not installed).
    pub otel_enabled: bool,
    /// `OTEL_SERVICE_NAME`.
    pub service_name: String,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (gRPC: `http://host:4317`; HTTP: the base URL, to which
    /// `/v1/traces` and `/v1/metrics` are appended).
    pub endpoint: String,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` or `http/protobuf`.
    pub protocol: Protocol,
    /// The ratio of new traces kept (`OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`).
    pub sample_ratio: f64,
    /// `OTEL_METRICS_EXPORT_INTERVAL_MS` (default 10 s).
    pub metrics_interval: Duration,
    /// `PROMETHEUS_ENABLED` (or the proxy's `MCP_PROXY_PROMETHEUS_ENABLED`): serve `/metrics`.
    pub prometheus_enabled: bool,
}

/// A setting that cannot be used, with the variable's name and what would work.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TelemetryConfigError(pub String);

impl TelemetryConfig {
    /// Reads the settings through `get` (the binary's case-insensitive environment lookup).
    /// `prometheus_var` names the variable that turns `/metrics` on for this binary.
    pub fn from_env(
        get: impl Fn(&str) -> Option<String>,
        default_service_name: &str,
        prometheus_var: &str,
    ) -> Result<TelemetryConfig, TelemetryConfigError> {
        let flag = |name: &str| parse_bool(get(name), name);
        let protocol = match get("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref().map(str::trim) {
            None | Some("") | Some("grpc") => Protocol::Grpc,
            Some("http/protobuf") => Protocol::HttpProtobuf,
            Some(other) => {
                return Err(TelemetryConfigError(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL='{other}' is not supported: use grpc or http/protobuf"
            )))
            }
        };
        let default_endpoint = match protocol {
            Protocol::Grpc => "http://localhost:4317",
            Protocol::HttpProtobuf => "http://localhost:4318",
        };
        let endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT")
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| default_endpoint.into());
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(TelemetryConfigError(format!(
                "OTEL_EXPORTER_OTLP_ENDPOINT='{endpoint}' must be an http:// or https:// URL (e.g. http://127.0.0.1:4317)"
            )));
        }
        let interval_ms = match get("OTEL_METRICS_EXPORT_INTERVAL_MS") {
            None => 10_000,
            Some(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms >= 100)
                .ok_or_else(|| {
                    TelemetryConfigError(format!(
                    "OTEL_METRICS_EXPORT_INTERVAL_MS='{text}' is not a number of milliseconds ≥ 100"
                ))
                })?,
        };
        Ok(TelemetryConfig {
            otel_enabled: flag("OTEL_ENABLED")?.unwrap_or(false),
            service_name: get("OTEL_SERVICE_NAME")
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| default_service_name.into()),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            protocol,
            sample_ratio: sample_ratio(get("OTEL_TRACES_SAMPLER"), get("OTEL_TRACES_SAMPLER_ARG"))?,
            metrics_interval: Duration::from_millis(interval_ms),
            prometheus_enabled: flag(prometheus_var)?.unwrap_or(false),
        })
    }

    /// Whether any metric reader is installed (otherwise instruments are no-ops).
    pub fn metrics_enabled(&self) -> bool {
        self.otel_enabled || self.prometheus_enabled
    }
}

/// The sampler names of the OpenTelemetry specification, reduced to the one number this
/// implementation needs: the share of traces kept. Whichever name is chosen, a remote parent's
/// "sampled" flag is never trusted on its own (see [`crate::sampler`]).
fn sample_ratio(sampler: Option<String>, arg: Option<String>) -> Result<f64, TelemetryConfigError> {
    let ratio = || -> Result<f64, TelemetryConfigError> {
        match arg.as_deref().map(str::trim) {
            None | Some("") => Ok(1.0),
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    TelemetryConfigError(format!(
                        "OTEL_TRACES_SAMPLER_ARG='{text}' is not a ratio between 0 and 1"
                    ))
                }),
        }
    };
    match sampler.as_deref().map(str::trim) {
        None | Some("") | Some("parentbased_traceidratio") | Some("traceidratio") => ratio(),
        Some("always_on") | Some("parentbased_always_on") => Ok(1.0),
        Some("always_off") | Some("parentbased_always_off") => Ok(0.0),
        Some(other) => Err(TelemetryConfigError(format!(
            "OTEL_TRACES_SAMPLER='{other}' is not supported: use parentbased_traceidratio (with OTEL_TRACES_SAMPLER_ARG), traceidratio, always_on or always_off"
        ))),
    }
}

fn parse_bool(value: Option<String>, name: &str) -> Result<Option<bool>, TelemetryConfigError> {
    let Some(text) = value else { return Ok(None) };
    match text.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "true" | "1" | "yes" | "on" => Ok(Some(true)),
        "false" | "0" | "no" | "off" => Ok(Some(false)),
        _ => Err(TelemetryConfigError(format!(
            "{name}='{text}' is not a boolean: use true or false"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<TelemetryConfig, TelemetryConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TelemetryConfig::from_env(|name| env.get(name).cloned(), "svc", "PROMETHEUS_ENABLED")
    }

    #[test]
    fn defaults_export_nothing() {
        let config = read(&[]).unwrap();
        assert!(!config.otel_enabled && !config.prometheus_enabled);
        assert!(!config.metrics_enabled());
        assert_eq!(config.service_name, "svc");
        assert_eq!(config.protocol, Protocol::Grpc);
        assert_eq!(config.endpoint, "http://localhost:4317");
        assert_eq!(config.sample_ratio, 1.0);
    }

    #[test]
    fn http_protocol_has_its_own_default_port() {
        let config = read(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).unwrap();
        assert_eq!(config.protocol, Protocol::HttpProtobuf);
        assert_eq!(config.endpoint, "http://localhost:4318");
    }

    #[test]
    fn sampler_names_map_to_a_ratio() {
        let ratio = |sampler: &str, arg: &str| {
            read(&[
                ("OTEL_TRACES_SAMPLER", sampler),
                ("OTEL_TRACES_SAMPLER_ARG", arg),
            ])
            .map(|c| c.sample_ratio)
        };
        assert_eq!(ratio("parentbased_traceidratio", "0.25").unwrap(), 0.25);
        assert_eq!(ratio("always_off", "0.25").unwrap(), 0.0);
        assert_eq!(ratio("parentbased_always_on", "0").unwrap(), 1.0);
        assert_eq!(ratio("traceidratio", "0").unwrap(), 0.0);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_TRACES_SAMPLER", "jaeger_remote"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317"),
            ("OTEL_ENABLED", "maybe"),
            ("PROMETHEUS_ENABLED", "sometimes"),
            ("OTEL_METRICS_EXPORT_INTERVAL_MS", "fast"),
        ] {
            let error = read(&[(name, value)]).unwrap_err().to_string();
            assert!(error.starts_with(name), "{error}");
        }
    }
}
