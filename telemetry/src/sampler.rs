//! Which traces are kept. A caller's `traceparent` is accepted as the parent — so an agent's,
//! a proxy's and the broker's spans join one trace — but its "sampled" flag decides nothing:
//! anyone can send `-01` on every request, and each kept span costs memory and export work.
//! So a trace that arrives from another process is kept when *this* process's ratio keeps its
//! trace id, the same deterministic test every Cullis process applies to the same id, so
//! processes with the same ratio agree. Inside one process a child follows its parent.

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};

/// The sampler of both binaries (see the module docs).
#[derive(Debug, Clone)]
pub struct LocalRatioSampler {
    ratio: Sampler,
}

impl LocalRatioSampler {
    pub fn new(ratio: f64) -> LocalRatioSampler {
        LocalRatioSampler {
            ratio: Sampler::TraceIdRatioBased(ratio),
        }
    }
}

impl ShouldSample for LocalRatioSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let parent = parent_context
            .filter(|cx| cx.has_active_span())
            .map(|cx| cx.span().span_context().clone());
        let decision = match &parent {
            Some(local) if !local.is_remote() => {
                if local.is_sampled() {
                    SamplingDecision::RecordAndSample
                } else {
                    SamplingDecision::Drop
                }
            }
            _ => {
                self.ratio
                    .should_sample(None, trace_id, name, span_kind, attributes, links)
                    .decision
            }
        };
        SamplingResult {
            decision,
            attributes: Vec::new(),
            trace_state: parent.map_or_else(TraceState::default, |p| p.trace_state().clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags};

    fn decide(
        sampler: &LocalRatioSampler,
        parent: Option<SpanContext>,
        trace: u128,
    ) -> SamplingDecision {
        let cx = parent.map(|p| Context::new().with_remote_span_context(p));
        sampler
            .should_sample(
                cx.as_ref(),
                TraceId::from(trace),
                "s",
                &SpanKind::Server,
                &[],
                &[],
            )
            .decision
    }

    fn remote(trace: u128, sampled: bool) -> SpanContext {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(7u64),
            flags,
            true,
            TraceState::default(),
        )
    }

    #[test]
    fn a_remote_sampled_flag_does_not_force_sampling() {
        let never = LocalRatioSampler::new(0.0);
        assert_eq!(
            decide(&never, Some(remote(42, true)), 42),
            SamplingDecision::Drop
        );
        assert_eq!(decide(&never, None, 42), SamplingDecision::Drop);
    }

    #[test]
    fn a_remote_parent_is_kept_by_the_local_ratio() {
        let always = LocalRatioSampler::new(1.0);
        assert_eq!(
            decide(&always, Some(remote(42, false)), 42),
            SamplingDecision::RecordAndSample
        );
        assert_eq!(decide(&always, None, 42), SamplingDecision::RecordAndSample);
    }

    #[test]
    fn the_same_trace_id_gets_the_same_answer_everywhere() {
        let half = LocalRatioSampler::new(0.5);
        for trace in [1u128, 1 << 70, u128::MAX / 3, u128::MAX - 5] {
            let first = decide(&half, None, trace);
            assert_eq!(decide(&half, Some(remote(trace, true)), trace), first);
            assert_eq!(decide(&half, Some(remote(trace, false)), trace), first);
        }
    }
}
