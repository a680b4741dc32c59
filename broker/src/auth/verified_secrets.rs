//! Org secrets this replica has already checked with bcrypt.
//!
//! bcrypt is what keeps a stolen `organizations` table from yielding the secrets, and it is
//! slow on purpose: about 0.25 s per check at the default cost 12. An org registering agents
//! makes three org-authenticated calls per agent, so checking every presented secret with
//! bcrypt caps registration near one agent a second. A secret that verified is therefore
//! remembered for a short time, under a keyed hash that binds it to everything the verdict
//! depended on:
//!
//! `HMAC-SHA256(process key, org id ‖ presented secret ‖ stored bcrypt hash)`
//!
//! - The stored hash is read from the database on every request (the org row is read anyway,
//!   for its status). Changing the secret changes the hash, so the old secret misses at once,
//!   on every replica, with no message between them.
//! - Suspension and rejection are the org's status, also read on every request: a remembered
//!   secret of a suspended org still gets 403.
//! - The process key is random and never leaves memory, so the table reveals nothing about
//!   the secrets (it cannot be attacked offline like the bcrypt hashes), and lookups cannot be
//!   steered into chosen buckets. Only the digest is kept; the secret itself is dropped (and
//!   zeroed) with the request.
//! - Only successes are remembered: a wrong secret costs a full bcrypt check every time, so
//!   the cache does not speed up guessing.
//! - Concurrent first checks of one triple wait for a single bcrypt ([`VerifiedSecrets::
//!   checking`]): an org's proxy starting with 32 registrations in flight would otherwise run
//!   32 bcrypts — seconds of both cores — before the first one is remembered.

use aws_lc_rs::hmac;
use cullis_shared::memo::Memo;
use std::time::{Duration, Instant};

/// How many verified (org, secret) pairs one replica remembers; when full, the memo starts
/// over (one bcrypt check per live org then).
const CAPACITY: usize = 10_000;

/// Stripes of the single-flight locks (a miss holds one for one bcrypt check).
const STRIPES: usize = 64;

pub struct VerifiedSecrets {
    key: hmac::Key,
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// Digest → when the secret was checked with bcrypt.
    verified: Memo<[u8; 32], Instant>,
    ttl: Duration,
}

impl VerifiedSecrets {
    /// A memo whose entries last `ttl` (zero turns it off: every request runs bcrypt).
    pub fn new(ttl: Duration) -> VerifiedSecrets {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        VerifiedSecrets {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            verified: Memo::new(CAPACITY),
            ttl,
        }
    }

    /// The digest that stands for (org, secret, stored hash). Each part is length-prefixed so
    /// no two different triples share an input.
    pub fn digest(&self, org_id: &str, secret: &str, stored_hash: &str) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.key);
        for part in [org_id, secret, stored_hash] {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part.as_bytes());
        }
        let tag = context.sign();
        let mut digest = [0u8; 32];
        digest.copy_from_slice(tag.as_ref());
        digest
    }

    /// Whether this triple verified with bcrypt within the TTL.
    pub fn contains(&self, digest: &[u8; 32]) -> bool {
        let fresh = self
            .verified
            .get(digest)
            .is_some_and(|checked| checked.elapsed() < self.ttl);
        crate::telemetry::metrics().org_secret_cache_lookup(fresh);
        fresh
    }

    /// Held while a triple is checked with bcrypt, so that concurrent checks of the same
    /// triple wait and then find it remembered ([`VerifiedSecrets::contains`] again).
    pub async fn checking(&self, digest: &[u8; 32]) -> tokio::sync::MutexGuard<'_, ()> {
        self.stripes[usize::from(digest[0]) % STRIPES].lock().await
    }

    /// Remembers a triple bcrypt accepted.
    pub fn remember(&self, digest: [u8; 32]) {
        if !self.ttl.is_zero() {
            self.verified.insert(digest, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_binds_the_org_the_secret_and_the_stored_hash() {
        let secrets = VerifiedSecrets::new(Duration::from_secs(60));
        let base = secrets.digest("acme", "s3cret", "$2b$12$hash");
        assert_eq!(base, secrets.digest("acme", "s3cret", "$2b$12$hash"));
        assert_ne!(base, secrets.digest("acme", "s3cret", "$2b$12$other"));
        assert_ne!(base, secrets.digest("acme", "s3cre", "$2b$12$hash"));
        assert_ne!(base, secrets.digest("acm", "es3cret", "$2b$12$hash"));
        // Another process (another key) computes unrelated digests.
        let other = VerifiedSecrets::new(Duration::from_secs(60));
        assert_ne!(base, other.digest("acme", "s3cret", "$2b$12$hash"));
    }

    #[test]
    fn entries_expire_and_a_zero_ttl_remembers_nothing() {
        let secrets = VerifiedSecrets::new(Duration::from_millis(30));
        let digest = secrets.digest("acme", "s3cret", "h");
        assert!(!secrets.contains(&digest));
        secrets.remember(digest);
        assert!(secrets.contains(&digest));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!secrets.contains(&digest), "expired");

        let off = VerifiedSecrets::new(Duration::ZERO);
        off.remember(digest);
        assert!(!off.contains(&digest));
    }

    #[tokio::test]
    async fn a_concurrent_check_of_the_same_triple_waits_for_the_first() {
        let secrets = std::sync::Arc::new(VerifiedSecrets::new(Duration::from_secs(60)));
        let digest = secrets.digest("acme", "s3cret", "h");
        let first = secrets.checking(&digest).await;
        let waiter = {
            let secrets = secrets.clone();
            tokio::spawn(async move {
                let _second = secrets.checking(&digest).await;
                secrets.contains(&digest)
            })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!waiter.is_finished(), "the second check waits");
        secrets.remember(digest);
        drop(first);
        assert!(
            waiter.await.unwrap(),
            "and then finds the first one's verdict"
        );
    }
}
