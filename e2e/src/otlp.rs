//! An OTLP receiver for tests: a real OTLP/gRPC server (the collector's `TraceService` and
//! `MetricsService`, generated from the OpenTelemetry protobufs) and a real OTLP/HTTP server
//! (`POST /v1/traces`, `/v1/metrics` with protobuf bodies) on one loopback port, decoding what
//! the broker and the proxies export so a test can read it back. Not a mock of anything of
//! ours: it stands in for a collector (Jaeger, Tempo, an OpenTelemetry Collector), which has no
//! package here.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One span as received.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Default)]
struct Received {
    /// Keep each span (tests) or only count them (benchmarks).
    keep: bool,
    spans: Vec<ReceivedSpan>,
    span_count: usize,
    metrics: Vec<(String, String)>,
    requests: usize,
}

/// The running receiver (stopped on drop).
pub struct OtlpReceiver {
    pub address: SocketAddr,
    received: Arc<Mutex<Received>>,
    server: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    /// Listens on a free loopback port, gRPC and HTTP on the same port, keeping every span.
    pub async fn start() -> OtlpReceiver {
        OtlpReceiver::listen(true).await
    }

    /// As [`OtlpReceiver::start`], counting spans without keeping them (for load runs).
    pub async fn start_counting() -> OtlpReceiver {
        OtlpReceiver::listen(false).await
    }

    async fn listen(keep: bool) -> OtlpReceiver {
        let received = Arc::new(Mutex::new(Received {
            keep,
            ..Received::default()
        }));
        let collector = Collector(received.clone());
        let grpc = tonic::service::Routes::new(TraceServiceServer::new(collector.clone()))
            .add_service(MetricsServiceServer::new(collector.clone()))
            .prepare()
            .into_axum_router();
        let http = axum::Router::new()
            .route("/v1/traces", post(http_traces))
            .route("/v1/metrics", post(http_metrics))
            .with_state(collector);
        let app = grpc.merge(http);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        OtlpReceiver {
            address,
            received,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`: the value of `OTEL_EXPORTER_OTLP_ENDPOINT` for either protocol.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Spans received so far (kept or not).
    pub fn span_count(&self) -> usize {
        self.received.lock().unwrap().span_count
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.lock().unwrap().spans.clone()
    }

    /// `(service, metric name)` pairs received over OTLP metrics.
    pub fn metric_names(&self) -> Vec<(String, String)> {
        self.received.lock().unwrap().metrics.clone()
    }

    /// Export requests received (of either signal, either protocol).
    pub fn requests(&self) -> usize {
        self.received.lock().unwrap().requests
    }

    /// Waits until `done` holds for the spans received so far (or `timeout` passes), and
    /// returns them.
    pub async fn wait_for_spans(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let until = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) || Instant::now() > until {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Clone)]
struct Collector(Arc<Mutex<Received>>);

impl Collector {
    fn record_traces(&self, request: ExportTraceServiceRequest) {
        let mut received = self.0.lock().unwrap();
        received.requests += 1;
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| attribute(&r.attributes, "service.name"))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                received.span_count += scope.spans.len();
                if !received.keep {
                    continue;
                }
                for span in scope.spans {
                    received.spans.push(ReceivedSpan {
                        service: service.clone(),
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), text(kv)))
                            .collect(),
                    });
                }
            }
        }
    }

    fn record_metrics(&self, request: ExportMetricsServiceRequest) {
        let mut received = self.0.lock().unwrap();
        received.requests += 1;
        for resource_metrics in request.resource_metrics {
            let service = resource_metrics
                .resource
                .as_ref()
                .and_then(|r| attribute(&r.attributes, "service.name"))
                .unwrap_or_default();
            for scope in resource_metrics.scope_metrics {
                for metric in scope.metrics {
                    received.metrics.push((service.clone(), metric.name));
                }
            }
        }
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.record_traces(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.record_metrics(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

async fn http_traces(State(collector): State<Collector>, body: Bytes) -> (StatusCode, Vec<u8>) {
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            collector.record_traces(request);
            (
                StatusCode::OK,
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
        }
        Err(_) => (StatusCode::BAD_REQUEST, Vec::new()),
    }
}

async fn http_metrics(State(collector): State<Collector>, body: Bytes) -> (StatusCode, Vec<u8>) {
    match ExportMetricsServiceRequest::decode(body) {
        Ok(request) => {
            collector.record_metrics(request);
            (
                StatusCode::OK,
                ExportMetricsServiceResponse::default().encode_to_vec(),
            )
        }
        Err(_) => (StatusCode::BAD_REQUEST, Vec::new()),
    }
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).map(text)
}

fn text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    if bytes.iter().all(|b| *b == 0) {
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
