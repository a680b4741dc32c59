//! Memory of the settings every egress request reads (the broker URL). They change rarely and
//! mostly through this process (admin API), which clears the memory at once; a change written
//! by another process (a CLI command next to the running server) is seen within
//! [`CROSS_PROCESS_TTL`]. Absent settings are never remembered, so an org joined from the CLI
//! is usable immediately.
//!
//! The agent behind an API key is deliberately *not* remembered: a key rotated or an agent
//! disabled by the CLI must stop working at once, not a second later.

use cullis_shared::memo::Memo;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a remembered setting is trusted without reading the store again.
pub const CROSS_PROCESS_TTL: Duration = Duration::from_secs(1);

/// Bound on remembered settings.
const CAPACITY: usize = 64;

#[derive(Debug, Clone)]
pub(crate) struct HotSettings(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    settings: Memo<String, (Instant, String)>,
    /// Bumped by every write of this process: a read that raced a write is not remembered.
    generation: AtomicU64,
}

impl Default for HotSettings {
    fn default() -> HotSettings {
        HotSettings(Arc::new(Inner {
            settings: Memo::new(CAPACITY),
            generation: AtomicU64::new(0),
        }))
    }
}

/// A read in progress: remembers its result only if no write happened meanwhile.
pub(crate) struct Read {
    generation: u64,
}

impl HotSettings {
    pub fn setting(&self, key: &str) -> Option<String> {
        fresh(self.0.settings.get(&key.to_owned()))
    }

    pub fn begin_read(&self) -> Read {
        Read {
            generation: self.0.generation.load(Ordering::Acquire),
        }
    }

    pub fn remember_setting(&self, read: Read, key: &str, value: &str) {
        if self.unchanged_since(&read) {
            self.0
                .settings
                .insert(key.to_owned(), (Instant::now(), value.to_owned()));
        }
    }

    /// After any write to the settings table.
    pub fn settings_changed(&self) {
        self.0.generation.fetch_add(1, Ordering::AcqRel);
        self.0.settings.clear();
    }

    fn unchanged_since(&self, read: &Read) -> bool {
        self.0.generation.load(Ordering::Acquire) == read.generation
    }
}

fn fresh<V>(entry: Option<(Instant, V)>) -> Option<V> {
    entry
        .filter(|(read_at, _)| read_at.elapsed() < CROSS_PROCESS_TTL)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_clears_and_a_read_that_raced_it_is_not_remembered() {
        let hot = HotSettings::default();
        let read = hot.begin_read();
        hot.remember_setting(read, "broker_url", "https://b");
        assert_eq!(hot.setting("broker_url").as_deref(), Some("https://b"));

        hot.settings_changed();
        assert!(hot.setting("broker_url").is_none(), "cleared by the write");

        let raced = hot.begin_read();
        hot.settings_changed();
        hot.remember_setting(raced, "broker_url", "https://old");
        assert!(hot.setting("broker_url").is_none(), "read before the write");
    }

    #[test]
    fn an_old_entry_is_not_trusted() {
        let hot = HotSettings::default();
        let long_ago = Instant::now()
            .checked_sub(CROSS_PROCESS_TTL)
            .expect("the machine has been up longer than the TTL");
        hot.0
            .settings
            .insert("broker_url".into(), (long_ago, "https://old".into()));
        assert!(hot.setting("broker_url").is_none());
    }
}
