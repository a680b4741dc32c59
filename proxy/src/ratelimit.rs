//! Per-agent sliding-window rate limit of the egress API (the reference's 60-second window).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Above this many tracked agents, idle windows are swept on the next check.
const SWEEP_THRESHOLD: usize = 10_000;

/// Sliding-window counters per agent.
#[derive(Debug)]
pub struct RateLimiter {
    limit: usize,
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            limit: per_minute as usize,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `agent_id`; `Err(retry_after_seconds)` when over the limit.
    pub fn check(&self, agent_id: &str) -> Result<(), u64> {
        self.check_at(agent_id, Instant::now())
    }

    fn check_at(&self, agent_id: &str, now: Instant) -> Result<(), u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > SWEEP_THRESHOLD {
            windows.retain(|_, w| w.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let window = windows.entry(agent_id.to_owned()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            window.pop_front();
        }
        if window.len() >= self.limit {
            let oldest = *window.front().expect("limit is at least 1");
            let wait = WINDOW.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs().max(1));
        }
        window.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_slides() {
        let limiter = RateLimiter::new(2);
        let t0 = Instant::now();
        assert!(limiter.check_at("a", t0).is_ok());
        assert!(limiter.check_at("a", t0 + Duration::from_secs(10)).is_ok());
        assert_eq!(limiter.check_at("a", t0 + Duration::from_secs(20)), Err(40));
        assert!(limiter.check_at("b", t0 + Duration::from_secs(20)).is_ok());
        assert!(limiter.check_at("a", t0 + Duration::from_secs(61)).is_ok());
    }
}
