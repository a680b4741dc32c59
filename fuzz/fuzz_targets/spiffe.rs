//! SPIFFE ids and agent ids (`shared/src/pki/spiffe.rs`): `SpiffeId::parse` (certificate URI
//! SANs, assertion `sub`/`iss`), the internal ⇄ SPIFFE mappings, and the registration rules for
//! org ids, agent names and agent ids (join and registry bodies).
//!
//! The input is text; a `\n` splits it into an id and a trust domain for the mappings.
//!
//! Invariants: a parsed id re-parses from its own text with the same parts, and its trust
//! domain and path rebuild it; `spiffe → internal → spiffe` is the identity for agent paths;
//! a registrable agent id maps to a SPIFFE id that maps back to it.
#![no_main]

use cullis_shared::pki::spiffe::{
    internal_to_spiffe, spiffe_to_internal, validate_agent_id, validate_agent_name,
    validate_org_id, validate_trust_domain, SpiffeId,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = cullis_fuzz::text(data) else {
        return;
    };
    let (first, second) = text.split_once('\n').unwrap_or((text, "atn.local"));
    for candidate in [text, first] {
        if let Ok(id) = SpiffeId::parse(candidate) {
            assert_eq!(id.as_str(), candidate);
            assert_eq!(
                format!("spiffe://{}{}", id.trust_domain(), id.path()),
                candidate
            );
            assert_eq!(SpiffeId::parse(id.as_str()).as_ref(), Ok(&id));
            assert_eq!(validate_trust_domain(id.trust_domain()), Ok(()));
            let segments: Vec<&str> = id.segments().collect();
            assert_eq!(
                SpiffeId::from_parts(id.trust_domain(), &segments).as_ref(),
                Ok(&id)
            );
            if let Ok(internal) = id.to_internal() {
                assert_eq!(spiffe_to_internal(candidate).as_ref(), Ok(&internal));
                let back = internal_to_spiffe(&internal, id.trust_domain())
                    .expect("an agent path maps back");
                assert_eq!(back, id);
            }
        }
    }
    let _ = validate_trust_domain(second);
    let _ = validate_org_id(first);
    let _ = validate_agent_name(first);
    if let Ok((org, name)) = validate_agent_id(first) {
        assert_eq!(format!("{org}::{name}"), first);
        assert_eq!(validate_org_id(org), Ok(()));
        assert_eq!(validate_agent_name(name), Ok(()));
        if validate_trust_domain(second).is_ok() {
            let id = internal_to_spiffe(first, second).expect("a registrable id maps");
            assert_eq!(id.to_internal().as_deref(), Ok(first));
        }
    }
    if let Ok(id) = internal_to_spiffe(first, second) {
        assert_eq!(id.trust_domain(), second);
        assert_eq!(id.segments().count(), 2);
    }
});
