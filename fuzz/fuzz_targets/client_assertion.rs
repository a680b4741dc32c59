//! Client assertions (`shared/src/jose/assertion.rs`) through the broker's login checks
//! (`POST /v1/auth/token`, ref-auth-crypto §2.3): parse the JWS and its `x5c[0]`, parse the leaf
//! certificate (`AgentLeaf`), verify it against the registered org CA with the SPIFFE SAN step,
//! then verify the assertion under the leaf key (algorithm, `crit`, time rules, `aud`, `sub`,
//! `iss`, `jti`).
//!
//! Raw mode (first byte even): the rest is an assertion. Sign mode (odd): `<header>\n<claims>`
//! signed ES256 with the fixture agent key; the seed headers carry the fixture agent
//! certificate in `x5c`, so the whole chain verifies and the claim checks get fuzzed. Bit 1
//! chooses whether a SPIFFE SAN is required.
//!
//! Invariant: whatever the input, an accepted login is the fixture agent (only the fixture CA
//! key can make a leaf that chains), and an accepted assertion has not expired.
#![no_main]

use cullis_fuzz::{split_selector, AGENT_KEY, NOW, ORG_CA, TRUST_DOMAIN};
use cullis_shared::jose::assertion::{AssertionRules, ClientAssertion, MAX_JTI_LEN};
use cullis_shared::pki::AgentLeaf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (selector, rest) = split_selector(data);
    let Some(token) = cullis_fuzz::compact_token(selector, rest, &AGENT_KEY) else {
        return;
    };
    let token = token.as_ref();
    let Ok(assertion) = ClientAssertion::parse(token) else {
        return;
    };
    assert!(!assertion.leaf_der().is_empty());
    let Ok(leaf) = AgentLeaf::parse(assertion.leaf_der()) else {
        return;
    };
    let require_spiffe_san = selector & 2 == 0;
    let Ok(agent) = leaf.verify(&ORG_CA, NOW, TRUST_DOMAIN, require_spiffe_san) else {
        return;
    };
    cullis_fuzz::trace("assertion: leaf verified");
    assert_eq!(agent.agent_id, cullis_fuzz::AGENT_ID);
    assert_eq!(agent.org_id, "acme");
    assert_eq!(agent.spiffe_id.as_str(), cullis_fuzz::AGENT_SPIFFE);
    let result = assertion.verify(
        &agent.public_key,
        &agent.agent_id,
        agent.spiffe_id.as_str(),
        NOW,
        AssertionRules::default(),
    );
    if let Ok(claims) = result {
        cullis_fuzz::trace("assertion: accepted");
        assert!(claims.exp > NOW, "an accepted assertion has not expired");
        assert!(!claims.jti.is_empty() && claims.jti.chars().count() <= MAX_JTI_LEN);
    }
});
