//! Walks the stored chain and reports the first broken row (broker spec §8.3).

use crate::db::audit::StoredAuditEntry;
use crate::db::Db;
use cullis_shared::audit_chain::entry_hash;

/// Outcome of [`verify_chain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub valid: bool,
    /// Intact: every row (unhashed legacy rows included). Broken: the zero-based position of
    /// the first broken row (§8.3).
    pub total: u64,
    /// Id of the first broken row.
    pub broken_id: Option<i64>,
    /// Why it is broken: `previous_hash_mismatch: …`, `entry_hash_mismatch: …` or
    /// `unhashed_row: …`.
    pub reason: Option<String>,
}

/// Rows read per query while verifying, so a large log never sits in memory.
pub const VERIFY_PAGE: i64 = 1_000;

/// Walks the whole log by id (§8.3): each hashed row must name the previous hashed row's hash
/// as `previous_hash` and hash to its stored `entry_hash`. Rows without a hash are skipped only
/// *before* the first hashed row (rows written before the chain existed); after it, a row
/// without a hash can only be an insertion by hand and breaks the chain.
pub async fn verify_chain(db: &Db) -> Result<ChainReport, sqlx::Error> {
    let mut walker = ChainWalker::default();
    let mut after = 0i64;
    loop {
        let page = db.audit_entries_after(after, VERIFY_PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.id;
        for entry in &page {
            if let Some(report) = walker.check(entry) {
                tracing::warn!(
                    broken_id = report.broken_id,
                    reason = report.reason.as_deref(),
                    "audit chain verification failed"
                );
                return Ok(report);
            }
        }
    }
    Ok(ChainReport {
        valid: true,
        total: walker.seen,
        broken_id: None,
        reason: None,
    })
}

/// The verification state carried from row to row.
#[derive(Debug, Default)]
struct ChainWalker {
    expected_previous: Option<String>,
    started: bool,
    seen: u64,
}

impl ChainWalker {
    /// Checks the next row; `Some` is the report for a break at this row.
    fn check(&mut self, entry: &StoredAuditEntry) -> Option<ChainReport> {
        let broken = |reason: String| ChainReport {
            valid: false,
            total: self.seen,
            broken_id: Some(entry.id),
            reason: Some(reason),
        };
        match &entry.entry_hash {
            None if self.started => {
                return Some(broken(
                    "unhashed_row: a row without entry_hash follows hashed rows".into(),
                ))
            }
            None => {}
            Some(stored) => {
                if entry.previous_hash != self.expected_previous {
                    return Some(broken(format!(
                        "previous_hash_mismatch: expected {}, found {}",
                        self.expected_previous.as_deref().unwrap_or("none"),
                        entry.previous_hash.as_deref().unwrap_or("none"),
                    )));
                }
                let recomputed = entry_hash(&entry.chain_fields());
                if &recomputed != stored {
                    return Some(broken(format!(
                        "entry_hash_mismatch: stored {stored}, recomputed {recomputed}"
                    )));
                }
                self.expected_previous = Some(stored.clone());
                self.started = true;
            }
        }
        self.seen += 1;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: i64, previous: Option<&str>) -> StoredAuditEntry {
        let mut entry = StoredAuditEntry {
            id,
            timestamp: "2026-04-08T12:00:00.000000Z".into(),
            event_type: "auth.token_issued".into(),
            agent_id: Some("acme::a".into()),
            session_id: None,
            org_id: Some("acme".into()),
            details: None,
            result: "ok".into(),
            entry_hash: None,
            previous_hash: previous.map(str::to_owned),
        };
        entry.entry_hash = Some(entry_hash(&entry.chain_fields()));
        entry
    }

    #[test]
    fn walker_finds_each_kind_of_break() {
        let a = stored(1, None);
        let b = stored(2, a.entry_hash.as_deref());
        let c = stored(3, b.entry_hash.as_deref());
        let walk = |rows: &[&StoredAuditEntry]| {
            let mut walker = ChainWalker::default();
            rows.iter()
                .find_map(|row| walker.check(row))
                .map(|r| (r.total, r.broken_id, r.reason.unwrap()))
        };
        assert_eq!(walk(&[&a, &b, &c]), None);
        // A deleted middle row breaks the next one's link.
        let (index, id, reason) = walk(&[&a, &c]).unwrap();
        assert_eq!((index, id), (1, Some(3)));
        assert!(reason.starts_with("previous_hash_mismatch"), "{reason}");
        // An edited field breaks that row's own hash.
        let mut edited = b.clone();
        edited.details = Some("{}".into());
        let (index, id, reason) = walk(&[&a, &edited, &c]).unwrap();
        assert_eq!((index, id), (1, Some(2)));
        assert!(reason.starts_with("entry_hash_mismatch"), "{reason}");
        // Unhashed rows count but are skipped before the chain starts, and break it after.
        let mut legacy = stored(0, None);
        legacy.entry_hash = None;
        assert_eq!(walk(&[&legacy, &a, &b]), None);
        let mut inserted = stored(4, None);
        inserted.entry_hash = None;
        let (_, id, reason) = walk(&[&a, &b, &c, &inserted]).unwrap();
        assert_eq!(id, Some(4));
        assert!(reason.starts_with("unhashed_row"), "{reason}");
    }
}
