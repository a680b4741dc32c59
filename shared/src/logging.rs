//! The JSON log line both binaries write: one object per event with the fields log pipelines
//! expect — `timestamp` (RFC 3339, UTC), `level`, `logger` (the event's target), `message`,
//! `request_id` (from the innermost enclosing span that recorded one), `trace_id` and `span_id`
//! (when the binary exports traces) — then the event's own fields. Only the shape lives here; what is logged (never a secret) is each binary's concern.

use serde_json::{Map, Value};
use std::fmt;
use time::format_description::well_known::Rfc3339;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Where the current span's trace and span ids come from (the telemetry crate knows; this
/// crate only writes them).
pub type TraceIds = fn() -> Option<(String, String)>;

/// One JSON object per event.
#[derive(Default)]
pub struct JsonLines {
    trace_ids: Option<TraceIds>,
}

impl JsonLines {
    /// Lines that also carry `trace_id` and `span_id` from `source` when it has them.
    pub fn with_trace_ids(source: TraceIds) -> JsonLines {
        JsonLines {
            trace_ids: Some(source),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = FieldCollector(Map::new());
        event.record(&mut fields);
        let mut line = Map::new();
        line.insert("timestamp".into(), now_rfc3339().into());
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("logger".into(), event.metadata().target().into());
        line.insert(
            "message".into(),
            fields
                .0
                .remove("message")
                .unwrap_or(Value::String(String::new())),
        );
        if let Some(request_id) = request_id(ctx) {
            line.insert("request_id".into(), request_id.into());
        }
        if let Some((trace_id, span_id)) = self.trace_ids.and_then(|source| source()) {
            line.insert("trace_id".into(), trace_id.into());
            line.insert("span_id".into(), span_id.into());
        }
        for (name, value) in fields.0 {
            line.entry(name).or_insert(value);
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// The innermost `request_id` recorded on an enclosing span.
fn request_id<S, N>(ctx: &FmtContext<'_, S, N>) -> Option<String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let scope = ctx.event_scope()?;
    for span in scope {
        let extensions = span.extensions();
        let Some(formatted) = extensions.get::<FormattedFields<N>>() else {
            continue;
        };
        if let Some(rest) = formatted.fields.split("request_id=").nth(1) {
            let value = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches('"');
            if !value.is_empty() {
                return Some(value.to_owned());
            }
        }
    }
    None
}

struct FieldCollector(Map<String, Value>);

impl Visit for FieldCollector {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The one line `format` writes for a warning inside a request span.
    fn one_line(format: JsonLines) -> Value {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .event_format(format)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = "req-42");
            let _inside = span.enter();
            tracing::warn!(agent = "acme::buyer", attempts = 3_u64, "login refused");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        serde_json::from_str(lines[0]).unwrap()
    }

    #[test]
    fn trace_ids_are_written_when_a_source_has_them() {
        let line = one_line(JsonLines::with_trace_ids(|| {
            Some((
                "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                "00f067aa0ba902b7".into(),
            ))
        }));
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["span_id"], "00f067aa0ba902b7");
        let without = one_line(JsonLines::default());
        assert!(without.get("trace_id").is_none() && without.get("span_id").is_none());
    }

    #[test]
    fn one_json_object_per_event_with_the_pipeline_fields() {
        let line = one_line(JsonLines::default());
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["logger"], module_path!());
        assert_eq!(line["message"], "login refused");
        assert_eq!(line["request_id"], "req-42");
        assert_eq!(line["agent"], "acme::buyer");
        assert_eq!(line["attempts"], 3);
        let timestamp = line["timestamp"].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(timestamp, &Rfc3339).is_ok(),
            "{timestamp}"
        );
    }
}
