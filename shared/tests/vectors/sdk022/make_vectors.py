"""Known-answer envelopes produced by the published SDK `cullis-sdk==0.2.2` (PyPI).

Run once with the SDK's own venv (see README.md); the output, `envelopes.json`, is committed and
read by `shared/tests/sdk022_vectors.rs`. Everything is generated fresh (keys, nonces, AES keys),
so re-running gives different, equally valid vectors.
"""
import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import cullis_sdk
from cullis_sdk.crypto.e2e import encrypt_for_agent
from cullis_sdk.crypto.message_signer import sign_message


def pem_private(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def pem_public(key) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    ).decode()


def vector(name, sender, recipient, client_seq):
    session_id = "5a0c6f2e-3b7d-4e1a-9c2b-8d7e6f5a4b3c"
    sender_agent_id = "acme::buyer"
    nonce = f"nonce-{name}"
    timestamp = 1_780_000_000
    payload = {"order": {"sku": "M8-BOLT", "qty": 1000, "note": "naïve ☃"}, "n": 1.5}
    inner = sign_message(pem_private(sender), session_id, sender_agent_id, nonce, timestamp,
                         payload, client_seq=client_seq)
    blob = encrypt_for_agent(pem_public(recipient), payload, inner, session_id,
                             sender_agent_id, client_seq=client_seq)
    outer = sign_message(pem_private(sender), session_id, sender_agent_id, nonce, timestamp,
                         blob, client_seq=client_seq)
    return {
        "name": name,
        "recipient_private_key_pem": pem_private(recipient),
        "sender_public_key_pem": pem_public(sender),
        "session_id": session_id,
        "sender_agent_id": sender_agent_id,
        "nonce": nonce,
        "timestamp": timestamp,
        "client_seq": client_seq,
        "payload": payload,
        "inner_signature": inner,
        "blob": blob,
        "outer_signature": outer,
    }


def main() -> None:
    ec_sender = ec.generate_private_key(ec.SECP256R1())
    rsa_sender = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    vectors = [
        vector("ec_p256_to_ec_p256", ec_sender, ec.generate_private_key(ec.SECP256R1()), 0),
        vector("ec_p256_to_ec_p384", ec_sender, ec.generate_private_key(ec.SECP384R1()), 7),
        vector("rsa_to_rsa", rsa_sender,
               rsa.generate_private_key(public_exponent=65537, key_size=2048), 3),
        vector("ec_p256_to_rsa_no_seq", ec_sender,
               rsa.generate_private_key(public_exponent=65537, key_size=2048), None),
    ]
    json.dump({"sdk": f"cullis-sdk {cullis_sdk.__version__}", "vectors": vectors}, sys.stdout,
              indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
