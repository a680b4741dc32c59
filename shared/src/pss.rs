//! RSASSA-PSS verification that accepts any salt length (RFC 8017 §9.1.2, recovering sLen from
//! the position of the 0x01 separator), as the reference's verifier does.
//!
//! Only the public-key operation is involved, so timing is not a concern here. The fast path for
//! the common case (the maximum salt the reference signs with) lives in
//! [`crate::keys::PublicKey::verify_message`]; this is the fallback for every other length.

use crate::keys::KeyError;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use sha2::{Digest, Sha256};

const HASH_LEN: usize = 32;

/// Verifies an RSASSA-PSS / SHA-256 / MGF1-SHA-256 signature with any salt length.
pub(crate) fn verify_any_salt(
    n: &[u8],
    e: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), KeyError> {
    let key = RsaPublicKey::new_with_max_size(
        BigUint::from_bytes_be(n),
        BigUint::from_bytes_be(e),
        16384,
    )
    .map_err(|_| KeyError::InvalidDer)?;
    let modulus_len = key.size();
    if signature.len() != modulus_len {
        return Err(KeyError::CryptoFailure);
    }
    let s = BigUint::from_bytes_be(signature);
    if &s >= key.n() {
        return Err(KeyError::CryptoFailure);
    }
    let m = rsa::hazmat::rsa_encrypt(&key, &s).map_err(|_| KeyError::CryptoFailure)?;
    let em_bits = key.n().bits() - 1;
    let em_len = em_bits.div_ceil(8);
    let m_bytes = m.to_bytes_be();
    if m_bytes.len() > em_len {
        return Err(KeyError::CryptoFailure);
    }
    let mut em = vec![0u8; em_len];
    em[em_len - m_bytes.len()..].copy_from_slice(&m_bytes);
    emsa_pss_verify(&Sha256::digest(message), &em, em_bits)
}

fn emsa_pss_verify(m_hash: &[u8], em: &[u8], em_bits: usize) -> Result<(), KeyError> {
    let fail = Err(KeyError::CryptoFailure);
    let em_len = em.len();
    if em_len < HASH_LEN + 2 || em[em_len - 1] != 0xbc {
        return fail;
    }
    let (masked_db, rest) = em.split_at(em_len - HASH_LEN - 1);
    let h = &rest[..HASH_LEN];
    let unused_bits = 8 * em_len - em_bits;
    let top_mask = 0xffu8.checked_shr(unused_bits as u32).unwrap_or(0);
    if masked_db[0] & !top_mask != 0 {
        return fail;
    }
    let mut db = mgf1_sha256(h, masked_db.len());
    for (byte, mask) in db.iter_mut().zip(masked_db) {
        *byte ^= mask;
    }
    db[0] &= top_mask;
    let Some(separator) = db.iter().position(|b| *b != 0) else {
        return fail;
    };
    if db[separator] != 0x01 {
        return fail;
    }
    let salt = &db[separator + 1..];
    let mut hasher = Sha256::new();
    hasher.update([0u8; 8]);
    hasher.update(m_hash);
    hasher.update(salt);
    if hasher.finalize()[..] == *h {
        Ok(())
    } else {
        fail
    }
}

fn mgf1_sha256(seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + HASH_LEN);
    let mut counter = 0u32;
    while out.len() < len {
        let mut hasher = Sha256::new();
        hasher.update(seed);
        hasher.update(counter.to_be_bytes());
        out.extend_from_slice(&hasher.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}
