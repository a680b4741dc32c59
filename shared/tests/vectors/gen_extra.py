#!/usr/bin/env python3
"""Regenerates `cullis_extra.json`: vectors the reference set lacks, produced with Python's
`json` and `cryptography` following the reference algorithms (ref-auth-crypto §5-§7), so the Rust
tests check against an independent implementation. Maintainer-only; tests read the JSON file.

    python3 shared/tests/vectors/gen_extra.py > shared/tests/vectors/cullis_extra.json
"""
import base64, json, os, time, uuid
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

def b64u(b):  # padded urlsafe, as the reference
    return base64.urlsafe_b64encode(b).decode()

def b64np(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def pem_priv(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()

def pem_pub(k):
    return k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

def sign_message(key, session, sender, nonce, ts, seq, payload):
    parts = [session, sender, nonce, str(ts)] + ([str(seq)] if seq is not None else []) + [canon(payload)]
    data = "|".join(parts).encode()
    if isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH), hashes.SHA256())
    else:
        sig = key.sign(data, ec.ECDSA(hashes.SHA256()))
    return b64u(sig)

def encrypt_for(recipient_pub, payload, inner_sig, session, sender, seq):
    aes_key, iv = os.urandom(32), os.urandom(12)
    aad = f"{session}|{sender}" + (f"|{seq}" if seq is not None else "")
    plaintext = json.dumps({"inner_signature": inner_sig, "payload": payload}, sort_keys=True, separators=(",", ":")).encode()
    ct = AESGCM(aes_key).encrypt(iv, plaintext, aad.encode())
    blob = {"ciphertext": b64u(ct), "iv": b64u(iv)}
    if isinstance(recipient_pub, rsa.RSAPublicKey):
        blob["encrypted_key"] = b64u(recipient_pub.encrypt(aes_key, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)))
    else:
        eph = ec.generate_private_key(recipient_pub.curve)
        z = eph.exchange(ec.ECDH(), recipient_pub)
        k = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"cullis-e2e-v1").derive(z)
        blob["encrypted_key"] = b64u(bytes(a ^ b for a, b in zip(aes_key, k)))
        blob["ephemeral_pubkey"] = b64u(eph.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return blob

def envelope_vector(name, sender_key, recipient_key, seq):
    session, sender, nonce, ts = str(uuid.uuid4()), "acme::buyer", str(uuid.uuid4()), 1700000000
    payload = {"order": {"sku": "A-1", "qty": 3, "price": 12.5, "note": "naïve ☃ 😀"}, "refs": [1, 2.0, None, True]}
    inner = sign_message(sender_key, session, sender, nonce, ts, seq, payload)
    blob = encrypt_for(recipient_key.public_key(), payload, inner, session, sender, seq)
    outer = sign_message(sender_key, session, sender, nonce, ts, seq, blob)
    return {"name": name, "version": 1, "recipient_private_key_pem": pem_priv(recipient_key),
            "sender_public_key_pem": pem_pub(sender_key), "session_id": session, "sender_agent_id": sender,
            "nonce": nonce, "timestamp": ts, "client_seq": seq, "payload": blob, "signature": outer,
            "expected_payload": payload, "expected_inner_signature": inner}

def dpop_ps256():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    nums = key.public_key().public_numbers()
    n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
    jwk = {"e": b64np(nums.e.to_bytes(3, "big")), "kty": "RSA", "n": b64np(n)}
    header = {"alg": "PS256", "jwk": jwk, "typ": "dpop+jwt"}
    claims = {"jti": "ps256-jti-1", "htm": "POST", "htu": "https://broker.example.com/v1/auth/token", "iat": 1700000000, "nonce": "abc"}
    signing_input = (b64np(canon(header).encode()) + "." + b64np(json.dumps(claims, separators=(",", ":")).encode())).encode()
    sig = key.sign(signing_input, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    import hashlib
    jkt = b64np(hashlib.sha256(canon({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}).encode()).digest())
    return {"name": "dpop_ps256_salt32", "version": 1, "proof_jwt": signing_input.decode() + "." + b64np(sig),
            "expected_jkt": jkt, "expected_claims": claims}

CANONICAL_INPUTS = [
    '{"text":"\\u00fc\\u00e9 \\u2603 \\ud83d\\ude00 \\u007f \\u0001 \\t\\n\\"\\\\/","\\uffff":1,"\\ud83d\\ude00":2,"Z":3,"a":4}',
    '[1e16, 1e15, 1.5e16, 1e22, 1e-05, 0.0001, 0.00012, 3.14, 0.30000000000000004, -0.0, 100.0, 1E2, 1.10, 5e-324, 1.7976931348623157e308, 123456.789, -2.5]',
    '{"nested":{"b":[{"y":null,"x":false}],"a":{}},"int":18446744073709551615,"neg":-9223372036854775808}',
]

def main():
    out = {"$schema": "cullis-test-vectors-v1", "primitive": "cullis_extra",
           "warning": "DO NOT USE THESE KEYS IN PRODUCTION — test vectors only",
           "header": "Vectors the reference set lacks, generated with Python json + cryptography by gen_extra.py.",
           "canonical_json": [{"name": f"canonical_{i}", "version": 1, "input_text": t, "expected_string": canon(json.loads(t))}
                              for i, t in enumerate(CANONICAL_INPUTS)],
           "envelopes": [
               envelope_vector("ec_p256_recipient_p256_sender", ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1()), 0),
               envelope_vector("ec_p384_recipient_p384_sender", ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1()), 5),
               envelope_vector("rsa_recipient_rsa_sender_no_seq", rsa.generate_private_key(public_exponent=65537, key_size=2048), rsa.generate_private_key(public_exponent=65537, key_size=2048), None),
           ],
           "dpop": [dpop_ps256()]}
    print(json.dumps(out, indent=1, ensure_ascii=False))

main()
