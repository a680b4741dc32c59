//! The three base64 forms the reference uses, each where the spec says (ref-auth-crypto §7.3):
//!
//! | form | where |
//! |---|---|
//! | [`std_padded`] (standard alphabet, padded) | `x5c` certificate entries |
//! | [`url_padded`] (URL-safe, padded) | message signatures, E2E cipher blob fields |
//! | [`url_unpadded`] (URL-safe, no padding) | JWS segments, JWK members, `ath`, `jkt`, `kid` |
//!
//! Decoding is lenient where a reference peer may send either form: the Python SDK pads, the
//! TypeScript SDK does not, and Python's `urlsafe_b64decode` also takes `+` and `/`. So
//! [`decode_lenient`] accepts both alphabets with or without padding, while still rejecting
//! any other character (Python silently skips those; accepting garbage is not worth copying).

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

const INDIFFERENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_encode_padding(false)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent);

const STANDARD_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, INDIFFERENT);
const URL_SAFE_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, INDIFFERENT);

/// Base64 input that is not valid in any of the accepted forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid base64")]
pub struct InvalidBase64;

/// Standard alphabet, padded (RFC 4648 §4).
pub fn std_padded(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// URL-safe alphabet, padded: Python's `urlsafe_b64encode`.
pub fn url_padded(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

/// URL-safe alphabet without padding: the JOSE form (RFC 7515 §2).
pub fn url_unpadded(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict JOSE decoding: URL-safe alphabet, padding optional (some peers re-add it).
pub fn decode_url(text: &str) -> Result<Vec<u8>, InvalidBase64> {
    URL_SAFE_ANY_PADDING.decode(text).map_err(|_| InvalidBase64)
}

/// Standard alphabet, padding optional (for `x5c`).
pub fn decode_std(text: &str) -> Result<Vec<u8>, InvalidBase64> {
    STANDARD_ANY_PADDING.decode(text).map_err(|_| InvalidBase64)
}

/// Either alphabet, padding optional: for values a Python or TypeScript peer produced.
pub fn decode_lenient(text: &str) -> Result<Vec<u8>, InvalidBase64> {
    let url_form = text.contains(['-', '_']);
    let std_form = text.contains(['+', '/']);
    match (url_form, std_form) {
        (true, true) => {
            // Python's decoder maps both alphabets onto one; do the same explicitly.
            let unified: String = text
                .chars()
                .map(|c| match c {
                    '+' => '-',
                    '/' => '_',
                    other => other,
                })
                .collect();
            decode_url(&unified)
        }
        (false, true) => decode_std(text),
        _ => decode_url(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_differ_exactly_where_the_spec_says() {
        let bytes = [0xfb, 0xff, 0xbf, 0x01];
        assert_eq!(std_padded(&bytes), "+/+/AQ==");
        assert_eq!(url_padded(&bytes), "-_-_AQ==");
        assert_eq!(url_unpadded(&bytes), "-_-_AQ");
    }

    #[test]
    fn lenient_decoding_accepts_every_form_a_peer_may_send() {
        let bytes = vec![0xfb, 0xff, 0xbf, 0x01];
        for text in ["+/+/AQ==", "+/+/AQ", "-_-_AQ==", "-_-_AQ", "-/+_AQ=="] {
            assert_eq!(decode_lenient(text).unwrap(), bytes, "{text}");
        }
    }

    #[test]
    fn garbage_is_refused_not_skipped() {
        assert_eq!(decode_lenient("ab!d"), Err(InvalidBase64));
        assert_eq!(decode_url("a+b/"), Err(InvalidBase64));
        assert_eq!(decode_std("a-b_"), Err(InvalidBase64));
        assert_eq!(decode_lenient("abcde"), Err(InvalidBase64));
    }
}
