//! A bounded in-memory map for results that are cheap to recompute but hot to look up
//! (the broker's verified certificates and tokens and an org's local rules; the proxy's
//! API-key owners and settings).
//!
//! When full it is simply cleared: no recency bookkeeping on the request path, and a full
//! clear costs one recomputation per live entry — bounded memory is what matters here.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

#[derive(Debug)]
pub struct Memo<K, V> {
    entries: Mutex<HashMap<K, V>>,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    pub fn new(capacity: usize) -> Memo<K, V> {
        Memo {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.lock().get(key).cloned()
    }

    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, value);
    }

    pub fn remove(&self, key: &K) {
        self.lock().remove(key);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
        // A panic while holding the lock cannot leave the map half-updated.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_memo_is_cleared_before_a_new_key_goes_in() {
        let memo = Memo::new(2);
        memo.insert("a", 1);
        memo.insert("b", 2);
        memo.insert("b", 3);
        assert_eq!(memo.get(&"a"), Some(1), "replacing a key does not clear");
        assert_eq!(memo.get(&"b"), Some(3));
        memo.insert("c", 4);
        assert_eq!(memo.get(&"a"), None, "cleared when full");
        assert_eq!(memo.get(&"c"), Some(4));
        memo.remove(&"c");
        assert_eq!(memo.get(&"c"), None, "removed");
        memo.insert("c", 5);
        memo.clear();
        assert_eq!(memo.get(&"c"), None);
    }
}
