//! The span pipeline between request threads and the exporter.
//!
//! The SDK's batch processor sends every finished span through a channel and so wakes its worker
//! once per span; at the broker's 10,000+ spans a second on two cores those wake-ups were a
//! visible share of the relay's CPU. Here a finished span is pushed onto a buffer under a short
//! lock and nobody is woken: the exporter task on the telemetry thread takes the whole buffer
//! every [`EXPORT_EVERY`], or at once when [`BATCH`] spans are waiting (one wake-up per batch).
//! The buffer is bounded: beyond [`QUEUE`] spans, new ones are dropped and counted.

use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Spans waiting for export; beyond this they are dropped (bounded memory when the collector
/// is slow or down).
pub(crate) const QUEUE: usize = 4096;
/// Spans per export request, and the count that triggers an export before the timer.
const BATCH: usize = 512;
/// How often waiting spans leave when fewer than [`BATCH`] are waiting.
const EXPORT_EVERY: Duration = Duration::from_millis(500);

/// What the exporter task is asked to do besides its timer.
enum Command {
    /// Export everything waiting, then answer.
    Flush(mpsc::Sender<()>),
    /// Export everything waiting, shut the exporter down, answer, stop.
    Shutdown(mpsc::Sender<()>),
}

#[derive(Debug, Default)]
struct Buffer {
    spans: Mutex<Vec<SpanData>>,
    /// Woken once when the buffer reaches [`BATCH`].
    batch_ready: Notify,
    dropped: AtomicU64,
}

impl Buffer {
    fn take(&self) -> Vec<SpanData> {
        std::mem::take(&mut *self.spans.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A [`SpanProcessor`] that buffers finished spans for an exporter task (see the module docs).
#[derive(Debug)]
pub(crate) struct BufferedSpans {
    buffer: Arc<Buffer>,
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
}

impl BufferedSpans {
    /// Starts the exporter task on the current tokio runtime (the telemetry thread's).
    pub(crate) fn start<E: SpanExporter + 'static>(
        mut exporter: E,
        resource: &Resource,
    ) -> BufferedSpans {
        exporter.set_resource(resource);
        let buffer = Arc::new(Buffer::default());
        let (commands, receiver) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(export_loop(exporter, buffer.clone(), receiver));
        BufferedSpans { buffer, commands }
    }

    fn ask(
        &self,
        command: impl FnOnce(mpsc::Sender<()>) -> Command,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (done, answered) = mpsc::channel();
        self.commands
            .send(command(done))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        answered
            .recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

impl SpanProcessor for BufferedSpans {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        let mut spans = self.buffer.spans.lock().unwrap_or_else(|p| p.into_inner());
        if spans.len() >= QUEUE {
            drop(spans);
            self.buffer.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        spans.push(span);
        if spans.len() == BATCH {
            drop(spans);
            self.buffer.batch_ready.notify_one();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.ask(Command::Flush, Duration::from_secs(5))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.ask(Command::Shutdown, timeout)
    }

    /// The exporter was given the resource at [`BufferedSpans::start`].
    fn set_resource(&mut self, _resource: &Resource) {}
}

async fn export_loop<E: SpanExporter>(
    exporter: E,
    buffer: Arc<Buffer>,
    mut commands: tokio::sync::mpsc::UnboundedReceiver<Command>,
) {
    let mut timer = tokio::time::interval(EXPORT_EVERY);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let command = tokio::select! {
            _ = timer.tick() => None,
            _ = buffer.batch_ready.notified() => None,
            command = commands.recv() => Some(command),
        };
        export_waiting(&exporter, &buffer).await;
        match command {
            None => {}
            Some(Some(Command::Flush(done))) => {
                let _ = done.send(());
            }
            Some(Some(Command::Shutdown(done))) => {
                let _ = exporter.shutdown();
                let _ = done.send(());
                return;
            }
            // Every processor handle is gone.
            Some(None) => return,
        }
    }
}

/// Exports what is waiting, in requests of at most [`BATCH`] spans (failures are reported by
/// the exporter itself, see `export::Reported`).
async fn export_waiting<E: SpanExporter>(exporter: &E, buffer: &Buffer) {
    let dropped = buffer.dropped.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        tracing::debug!(target: "cullis::telemetry", dropped, "span queue full: spans dropped");
    }
    let mut waiting = buffer.take();
    while !waiting.is_empty() {
        let rest = waiting.split_off(waiting.len().min(BATCH));
        let _ = exporter.export(waiting).await;
        waiting = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanKind, Status, TraceFlags, TraceState};
    use opentelemetry::{InstrumentationScope, SpanId, TraceId};
    use std::borrow::Cow;
    use std::time::SystemTime;

    /// Records the size of every export request (a stand-in for a collector: this unit test is
    /// about batching; the OTLP path is tested against a real receiver in cullis-e2e).
    #[derive(Debug, Clone, Default)]
    struct Requests(Arc<Mutex<Vec<usize>>>);

    impl SpanExporter for Requests {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().push(batch.len());
            Ok(())
        }
    }

    fn span(n: u64) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(u128::from(n) + 1),
                SpanId::from(n + 1),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed("test"),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    #[tokio::test]
    async fn the_queue_is_bounded_and_spans_leave_in_batches() {
        // A processor whose exporter task is not running: nothing leaves the buffer meanwhile.
        let (commands, _receiver) = tokio::sync::mpsc::unbounded_channel();
        let processor = BufferedSpans {
            buffer: Arc::new(Buffer::default()),
            commands,
        };
        let batch_ready = processor.buffer.batch_ready.notified();
        tokio::pin!(batch_ready);
        for n in 0..QUEUE as u64 + 100 {
            processor.on_end(span(n));
            if n as usize == BATCH - 2 {
                assert!(
                    futures_util::poll!(batch_ready.as_mut()).is_pending(),
                    "woken before a batch"
                );
            }
        }
        assert!(
            futures_util::poll!(batch_ready.as_mut()).is_ready(),
            "woken once a batch waits"
        );
        assert_eq!(processor.buffer.spans.lock().unwrap().len(), QUEUE);
        assert_eq!(processor.buffer.dropped.load(Ordering::Relaxed), 100);

        let requests = Requests::default();
        export_waiting(&requests, &processor.buffer).await;
        let sizes = requests.0.lock().unwrap().clone();
        assert_eq!(sizes, vec![BATCH; QUEUE / BATCH]);
        assert!(processor.buffer.spans.lock().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn flush_and_shutdown_export_what_is_waiting() {
        let requests = Requests::default();
        let processor = BufferedSpans::start(requests.clone(), &Resource::builder_empty().build());
        let sent = requests.clone();
        tokio::task::spawn_blocking(move || {
            for n in 0..10 {
                processor.on_end(span(n));
            }
            processor.force_flush().unwrap();
            assert_eq!(sent.0.lock().unwrap().iter().sum::<usize>(), 10);
            processor.on_end(span(10));
            processor
                .shutdown_with_timeout(Duration::from_secs(5))
                .unwrap();
            assert_eq!(sent.0.lock().unwrap().iter().sum::<usize>(), 11);
            assert!(processor.force_flush().is_err(), "stopped after shutdown");
        })
        .await
        .unwrap();
    }
}
