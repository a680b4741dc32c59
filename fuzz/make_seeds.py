#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ from the repo's test vectors
(shared/tests/vectors), strings from the unit tests, and tokens signed with the fixture keys
(fuzz/fixtures). Re-run after changing a vector or fixture: `python3 fuzz/make_seeds.py`.

Seed files are named `seed-*` so they stay apart from what libFuzzer adds. Input layouts (first
byte = selector) are described at the top of each target and in fuzz/README.md. Needs the
`cryptography` package (only to sign the seed tokens).
"""
import base64
import hashlib
import json
import os
import re
import shutil

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
VECTORS = os.path.join(REPO, "shared", "tests", "vectors")
CORPUS = os.path.join(HERE, "corpus")

NOW = 1_800_000_000
PRESENTED_TOKEN = "fuzz-access-token"


def load(path):
    with open(path) as f:
        return json.load(f)


def read(path):
    with open(path) as f:
        return f.read()


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def key(name):
    return serialization.load_pem_private_key(
        read(os.path.join(HERE, "fixtures", name)).encode(), None
    )


def es_sign(private, signing_input):
    size = (private.curve.key_size + 7) // 8
    try:  # RFC 6979 (cryptography >= 44): re-running gives the same seeds
        algorithm = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    except TypeError:
        algorithm = ec.ECDSA(hashes.SHA256())
    der = private.sign(signing_input, algorithm)
    r, s = decode_dss_signature(der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def jws(header, claims, private):
    signing_input = b64u(compact(header).encode()) + "." + b64u(compact(claims).encode())
    return signing_input + "." + b64u(es_sign(private, signing_input.encode()))


def ec_jwk(private):
    numbers = private.public_key().public_numbers()
    size = (private.curve.key_size + 7) // 8
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": b64u(numbers.x.to_bytes(size, "big")),
        "y": b64u(numbers.y.to_bytes(size, "big")),
    }


def thumbprint(jwk):
    return b64u(hashlib.sha256(canonical({k: jwk[k] for k in ("crv", "kty", "x", "y")}).encode()).digest())


def ath(token):
    return b64u(hashlib.sha256(token.encode()).digest())


class Corpus:
    def __init__(self, target):
        self.dir = os.path.join(CORPUS, target)
        if os.path.isdir(self.dir):
            for name in os.listdir(self.dir):
                if name.startswith("seed-"):
                    os.remove(os.path.join(self.dir, name))
        os.makedirs(self.dir, exist_ok=True)
        self.count = 0

    def add(self, name, data, selector=None):
        if isinstance(data, str):
            data = data.encode()
        if selector is not None:
            data = bytes([selector]) + data
        self.count += 1
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]
        with open(os.path.join(self.dir, f"seed-{self.count:03d}-{slug}"), "wb") as f:
            f.write(data)


broker = key("broker_token_key.pem")
agent = key("agent_key.pem")
agent_pem = read(os.path.join(HERE, "fixtures", "agent.pem"))
ca_pem = read(os.path.join(HERE, "fixtures", "org_ca.pem"))
agent_cert = x509.load_pem_x509_certificate(agent_pem.encode())
ca_cert = x509.load_pem_x509_certificate(ca_pem.encode())
agent_der = agent_cert.public_bytes(serialization.Encoding.DER)
ca_der = ca_cert.public_bytes(serialization.Encoding.DER)

dpop_vectors = load(os.path.join(VECTORS, "dpop_proof.json"))["vectors"]
dpop_key = serialization.load_pem_private_key(dpop_vectors[0]["private_key_pem"].encode(), None)
dpop_jwk = ec_jwk(dpop_key)
dpop_header = {"alg": "ES256", "jwk": dpop_jwk, "typ": "dpop+jwt"}
extra = load(os.path.join(VECTORS, "cullis_extra.json"))
broker_kid = thumbprint(ec_jwk(broker))


def access_claims(**overrides):
    claims = {
        "iss": "cullis-broker",
        "aud": "cullis",
        "sub": "spiffe://atn.local/acme/buyer",
        "agent_id": "acme::buyer",
        "org": "acme",
        "scope": ["order.read"],
        "iat": NOW,
        "exp": NOW + 1800,
        "jti": "fuzz-jti-1",
        "cnf": {"jkt": thumbprint(dpop_jwk)},
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def transaction_claims():
    claims = access_claims(cnf={}, jti="txn-1", sub="spiffe://atn.local/beta/seller")
    claims.update(
        {
            "token_type": "transaction",
            "act": {"sub": "acme::buyer"},
            "txn_type": "CREATE_ORDER",
            "resource_id": None,
            "payload_hash": "ab" * 32,
            "parent_jti": None,
        }
    )
    return claims


broker_header = {"alg": "ES256", "kid": broker_kid, "typ": "JWT"}
ACCESS_TOKEN = jws(broker_header, access_claims(), broker)

# ---------------------------------------------------------------------------------------------
c = Corpus("canonical_json")
for vector in load(os.path.join(VECTORS, "canonical_json.json"))["vectors"]:
    c.add(vector["name"], json.dumps(vector["input"], ensure_ascii=False))
for vector in extra["canonical_json"]:
    c.add(vector["name"], vector["input_text"])
for vector in load(os.path.join(VECTORS, "signed_canonical.json"))["vectors"]:
    c.add(vector["name"], json.dumps(vector.get("input", vector), ensure_ascii=False))
for vector in load(os.path.join(VECTORS, "aad_canonicalization.json"))["vectors"]:
    c.add(vector["name"], json.dumps(vector.get("input", vector)))
for text in [
    "[1, 1.0, 1.10, 1E2, -0.0, 18446744073709551615, -9223372036854775808]",
    '{ "z" : [ 1 , { "b" : null , "a" : true } ] , "a" : { } }',
    '{"a":1,"a":2}',
    '"q\\"b\\\\n\\nr\\rt\\tb\\bf\\fc\\u0001d\\u007f/\\u00e9\\ud83d\\ude00"',
    "[100.0, 2.675, 1e16, 1.5e16, 1e22, 1e300, 1e-5, 5e-324, 1.7976931348623157e308, 9007199254740993]",
    "-0",
    "123456789012345678901234567890",
]:
    c.add("unit", text)

# ---------------------------------------------------------------------------------------------
c = Corpus("jws")
for vector in dpop_vectors:
    c.add(vector["name"], vector["proof_jwt"], 0)
for vector in extra["dpop"]:
    c.add(vector["name"], vector["proof_jwt"], 0)
c.add("access_token", ACCESS_TOKEN, 0)
for token in ["", "a.b", "not.a.valid.jwt.at.all", "e30.e30.!!", "W10.e30.AA", "bm90anNvbg.e30.AA"]:
    c.add("malformed", token, 0)
for header, claims in [
    ({"alg": "ES256"}, {"sub": "a", "n": 1}),
    ({"alg": "ES256", "kid": "k", "typ": "JWT"}, {"exp": NOW + 1, "iat": NOW, "nbf": NOW}),
    ({"alg": "ES256", "crit": ["exp"]}, {"sub": "a"}),
    ({"alg": "ES256"}, [1]),
    ({"alg": "ES256"}, {"exp": "soon", "iat": 1.5}),
    ({"alg": "RS256"}, {"sub": "a"}),
    ({"alg": "none"}, {"sub": "a"}),
]:
    c.add("sign", compact(header) + "\n" + compact(claims), 1)

# ---------------------------------------------------------------------------------------------
c = Corpus("dpop")
# Variant (selector bits 1-2) 0 = the first vector's request; its proof verifies as-is.
c.add(dpop_vectors[0]["name"], dpop_vectors[0]["proof_jwt"], 0)
c.add(dpop_vectors[1]["name"], dpop_vectors[1]["proof_jwt"], 2)
for vector in extra["dpop"]:
    c.add(vector["name"], vector["proof_jwt"], 0)
requests = [
    ("POST", "https://broker.example.com/v1/auth/token", None, "server-nonce-fixed-001", 1_700_000_000),
    ("GET", "https://broker.example.com/v1/sessions/abc", PRESENTED_TOKEN, "server-nonce-fixed-002", 1_700_000_060),
    ("GET", "wss://broker.example.com/v1/broker/ws?x=1", PRESENTED_TOKEN, None, 1_700_000_000),
    ("POST", "http://127.0.0.1:8000/v1/auth/token", None, None, 1_700_000_000),
]
for variant, (htm, htu, token, nonce, iat) in enumerate(requests):
    claims = {"jti": f"seed-jti-{variant}", "htm": htm, "htu": htu, "iat": iat}
    if token:
        claims["ath"] = ath(token)
    if nonce:
        claims["nonce"] = nonce
    c.add(f"valid_{variant}", jws(dpop_header, claims, dpop_key), variant << 1)
    c.add(f"sign_{variant}", compact(dpop_header) + "\n" + compact(claims), (variant << 1) | 1)
base = {"jti": "j", "htm": "POST", "htu": requests[0][1], "iat": 1_700_000_000, "nonce": "server-nonce-fixed-001"}
for name, header, claims in [
    ("d02_typ", dict(dpop_header, typ="JWT"), base),
    ("d03_hs256", dict(dpop_header, alg="HS256"), base),
    ("d04_no_jwk", {"alg": "ES256", "typ": "dpop+jwt"}, base),
    ("d05_private", dict(dpop_header, jwk=dict(dpop_jwk, d="secret")), base),
    ("d06_okp", dict(dpop_header, jwk={"kty": "OKP", "crv": "Ed25519", "x": "AA"}), base),
    ("crit", dict(dpop_header, crit=["x"]), base),
    ("nbf", dpop_header, dict(base, nbf=1_700_000_060)),
    ("iat_string", dpop_header, dict(base, iat="1700000000")),
    ("iat_float", dpop_header, dict(base, iat=1_699_999_999.5)),
    ("htu_params", dpop_header, dict(base, htu="HTTPS://Broker.Example.com/v1/auth/token;p=1?q#f")),
    ("previous_nonce", dpop_header, dict(base, nonce="abc")),
    ("jti_number", dpop_header, dict(base, jti=7)),
]:
    c.add(name, compact(header) + "\n" + compact(claims), 1)

# ---------------------------------------------------------------------------------------------
c = Corpus("client_assertion")
assertion_header = {"alg": "ES256", "typ": "JWT", "x5c": [base64.b64encode(agent_der).decode()]}
assertion_claims = {
    "sub": "acme::buyer",
    "iss": "acme::buyer",
    "aud": "agent-trust-broker",
    "iat": NOW,
    "exp": NOW + 300,
    "jti": "seed-assertion-1",
}
c.add("valid", jws(assertion_header, assertion_claims, agent), 0)
c.add("valid_no_san_required", jws(assertion_header, assertion_claims, agent), 2)
c.add("garbage", "garbage", 0)
for name, header, claims in [
    ("sign_valid", assertion_header, assertion_claims),
    ("spiffe_sub", assertion_header, dict(assertion_claims, sub="spiffe://atn.local/acme/buyer", iss="spiffe://atn.local/acme/buyer", aud=["x", "agent-trust-broker"])),
    ("t20_aud", assertion_header, dict(assertion_claims, aud="someone-else")),
    ("t20_exp_string", assertion_header, dict(assertion_claims, exp=str(NOW + 300))),
    ("t20_iat_future", assertion_header, dict(assertion_claims, iat=NOW + 6)),
    ("t20_nbf", assertion_header, dict(assertion_claims, nbf=NOW + 1)),
    ("t21_sub", assertion_header, dict(assertion_claims, sub="acme::seller")),
    ("t22_iss", assertion_header, dict(assertion_claims, iss="spiffe://other.td/acme/buyer")),
    ("t24_jti_long", assertion_header, dict(assertion_claims, jti="x" * 129)),
    ("x5c_empty", dict(assertion_header, x5c=[]), assertion_claims),
    ("x5c_string", dict(assertion_header, x5c="abc"), assertion_claims),
    ("x5c_not_b64", dict(assertion_header, x5c=["!!not base64!!"]), assertion_claims),
    ("x5c_urlsafe", dict(assertion_header, x5c=[b64u(agent_der)]), assertion_claims),
    ("ps256", dict(assertion_header, alg="PS256"), assertion_claims),
]:
    c.add(name, compact(header) + "\n" + compact(claims), 1)

# ---------------------------------------------------------------------------------------------
c = Corpus("access_token")
c.add("valid", ACCESS_TOKEN, 0)
c.add("transaction", jws(broker_header, transaction_claims(), broker), 0)
c.add("expired", jws(broker_header, access_claims(exp=NOW), broker), 0)
for name, header, claims in [
    ("sign_valid", broker_header, access_claims()),
    ("sign_transaction", broker_header, transaction_claims()),
    ("aud_list", broker_header, access_claims(aud=["cullis", "x"])),
    ("token_type_access", broker_header, dict(access_claims(), token_type="access")),
    ("token_type_other", broker_header, dict(access_claims(), token_type=5)),
    ("missing_org", broker_header, access_claims(org=None)),
    ("no_cnf", broker_header, access_claims(cnf=None)),
    ("iss", broker_header, access_claims(iss="someone")),
    ("iat_future", broker_header, access_claims(iat=NOW + 6)),
    ("crit", dict(broker_header, crit=["exp"]), access_claims()),
    ("rs256", dict(broker_header, alg="RS256"), access_claims()),
]:
    c.add(name, compact(header) + "\n" + compact(claims), 1)

# ---------------------------------------------------------------------------------------------
c = Corpus("envelope")
pairs = load(os.path.join(VECTORS, "sdk022", "envelopes.json"))["vectors"] + extra["envelopes"]
for index, vector in enumerate(pairs):
    blob = vector.get("blob", vector.get("payload"))
    inbox = {
        "session_id": vector["session_id"],
        "seq": index + 1,
        "sender_agent_id": vector["sender_agent_id"],
        "payload": blob,
        "nonce": vector["nonce"],
        "timestamp": "2026-12-05T12:00:00.123456Z",
        "signature": vector.get("outer_signature", vector.get("signature")),
        "client_seq": vector["client_seq"],
        "signed_timestamp": vector["timestamp"],
    }
    c.add(f"inbox_{vector['name']}", json.dumps(inbox, ensure_ascii=False), index << 1)
    envelope = {
        "session_id": vector["session_id"],
        "sender_agent_id": vector["sender_agent_id"],
        "payload": blob,
        "nonce": vector["nonce"],
        "timestamp": vector["timestamp"],
        "signature": vector.get("outer_signature", vector.get("signature")),
    }
    if vector["client_seq"] is not None:
        envelope["client_seq"] = vector["client_seq"]
    c.add(f"envelope_{vector['name']}", json.dumps(envelope, ensure_ascii=False), index << 1)
first = pairs[0]
c.add("plaintext_vector0", canonical({"inner_signature": first["inner_signature"], "payload": first["payload"]}), 1)
c.add("plaintext_bad_sig", canonical({"inner_signature": "SIG", "payload": {"text": "hello"}}), 1)
c.add("plaintext_no_payload", canonical({"inner_signature": "SIG"}), 1)
c.add("plaintext_array", "[1,2]", 1)

# ---------------------------------------------------------------------------------------------
c = Corpus("x509")
c.add("agent_der", agent_der, 0)
c.add("agent_der_san_optional", agent_der, 4)
c.add("ca_der_as_leaf", ca_der, 0)
c.add("ca_pem", ca_pem, 1)
c.add("agent_pem", agent_pem, 1)
c.add("agent_pem_with_text", "subject=acme::buyer\n" + agent_pem + ca_pem, 1)
for text in ["", "not a pem", "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----",
             "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]:
    c.add("bad_pem", text, 1)
spki = lambda k: k.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
spki_pem = lambda k: k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
c.add("spki_agent", spki(agent), 2)
c.add("spki_pem_broker", spki_pem(broker), 2)
rsa_vector = load(os.path.join(VECTORS, "rsa_oaep_wrap.json"))["vectors"][0]
c.add("spki_pem_rsa", rsa_vector["public_key_pem"], 2)
p384_sender = load(os.path.join(VECTORS, "sdk022", "envelopes.json"))["vectors"][1]["recipient_private_key_pem"]
c.add("spki_p384", spki(serialization.load_pem_private_key(p384_sender.encode(), None)), 2)
for serial in ["2002", "0x00AbC", "0X0", "00", "", "xyz", " 1f "]:
    c.add("serial", serial, 3)

# ---------------------------------------------------------------------------------------------
c = Corpus("spiffe")
spiffe_source = read(os.path.join(REPO, "shared", "src", "pki", "spiffe.rs"))
for text in sorted(set(re.findall(r'"(spiffe://[^"]*|[a-zA-Z0-9._-]*::[^"]*)"', spiffe_source))):
    c.add("unit", text.replace("\\n", "\n"))
for text in ["spiffe://atn.local/acme/buyer", "acme::buyer\natn.local", "orgA::sales\natn.local",
             "spiffe://atn.local/orgA/sales\nexample.org", "acme::buyer\nAtn.Local", "a" * 129 + "::b\ntd"]:
    c.add("pair", text)

# ---------------------------------------------------------------------------------------------
c = Corpus("ws_frame")
ws_proof = jws(
    dpop_header,
    {"jti": "ws-jti-1", "htm": "GET", "htu": "wss://broker.example.com/v1/broker/ws", "iat": NOW,
     "ath": ath(ACCESS_TOKEN), "nonce": "ws-nonce-current"},
    dpop_key,
)
auth = compact({"type": "auth", "token": ACCESS_TOKEN, "dpop_proof": ws_proof})
c.add("auth_valid_text", auth, 0)
c.add("auth_valid_binary", auth, 1)
c.add("auth_no_proof", compact({"type": "auth", "token": ACCESS_TOKEN}), 0)
ws_source = read(os.path.join(REPO, "shared", "src", "wire", "ws.rs"))
sid = "11111111-2222-3333-4444-555555555555"
for text in re.findall(r'r#"(\{.*?\})"#', ws_source):
    text = text.replace("{{", "{").replace("}}", "}").replace("{SID}", sid)
    c.add("unit", text, 0)

# ---------------------------------------------------------------------------------------------
c = Corpus("proxy_mcp")
sid = "5a0c6f2e-3b7d-4e1a-9c2b-8d7e6f5a4b3c"


def rpc(method, params=None, id=1):
    message = {"jsonrpc": "2.0", "method": method}
    if id is not None:
        message["id"] = id
    if params is not None:
        message["params"] = params
    return compact(message)


tool_calls = {
    "cullis_discover": {"capabilities": ["order.read"], "q": "bolts", "limit": 5, "cursor": "abc"},
    "cullis_open_session": {"target_agent_id": "beta::seller", "target_org_id": "beta", "capabilities": ["order.read"]},
    "cullis_accept_session": {"session_id": sid},
    "cullis_send": {"session_id": sid, "recipient_agent_id": "beta::seller", "payload": {"text": "hi", "n": 1.5}},
    "cullis_receive": {"session_id": sid, "after": 3},
    "cullis_list_sessions": {"status": "active"},
    "cullis_close_session": {"session_id": sid},
    "cullis_invoke_tool": {"session_id": sid, "tool_name": "quote", "parameters": {"sku": "M8"}},
}
c.add("initialize", rpc("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}), 0)
c.add("initialize_old", rpc("initialize", {"protocolVersion": "2025-03-26"}, id="init"), 0)
c.add("initialize_notification", rpc("initialize", {}, id=None), 0)
c.add("initialized", rpc("notifications/initialized", id=None), 64)
c.add("ping", rpc("ping", id=7), 0)
c.add("tools_list", rpc("tools/list", {}, id=2), 0)
for name, args in tool_calls.items():
    c.add(f"call_{name}", rpc("tools/call", {"name": name, "arguments": args}, id=3), 0)
c.add("call_send_text", rpc("tools/call", {"name": "cullis_send", "arguments": {"session_id": sid, "recipient_agent_id": "beta::seller", "payload": "plain text"}}), 0)
c.add("call_discover_null", rpc("tools/call", {"name": "cullis_discover", "arguments": None}), 0)
c.add("call_unknown", rpc("tools/call", {"name": "no_such_tool"}), 0)
c.add("call_no_name", rpc("tools/call", {}), 0)
c.add("unknown_method", rpc("resources/list", {}, id=4), 0)
c.add("response", compact({"jsonrpc": "2.0", "id": 9, "result": {}}), 0)
c.add("error_response", compact({"jsonrpc": "2.0", "id": "x", "error": {"code": -1, "message": "no"}}), 0)
c.add("batch", "[" + rpc("ping") + "," + rpc("tools/list", id=2) + "]", 0)
c.add("bad_version", compact({"jsonrpc": "1.0", "method": "ping", "id": 1}), 0)
c.add("bad_id", compact({"jsonrpc": "2.0", "method": "ping", "id": {"a": 1}}), 0)
c.add("not_json", "{", 0)
c.add("no_auth", rpc("ping"), 4)
c.add("no_session", rpc("ping"), 8)
c.add("evil_origin", rpc("ping"), 16)
c.add("loopback_origin", rpc("ping"), 32)
c.add("bad_protocol_version", rpc("ping"), 128)
c.add("delete", "", 2)
c.add("get", "", 3)

# ---------------------------------------------------------------------------------------------
c = Corpus("proxy_egress")
for name, line, body in [
    ("open", "POST sessions", {"target_agent_id": "beta::seller", "target_org_id": "beta", "capabilities": ["order.read"]}),
    ("open_long", "POST sessions", {"target_agent_id": "b" * 300, "target_org_id": "beta", "capabilities": ["x"] * 51}),
    ("list", "GET sessions?status=active", None),
    ("accept", f"POST sessions/{sid}/accept", None),
    ("close", f"POST sessions/{sid}/close", None),
    ("send", "POST send", {"session_id": sid, "payload": {"text": "hi"}, "recipient_agent_id": "beta::seller"}),
    ("send_missing", "POST send", {"session_id": sid}),
    ("send_array", "POST send", [sid, {"a": 1}, "beta::seller"]),
    ("messages", f"GET messages/{sid}?after=3", None),
    ("messages_bad_after", f"GET messages/{sid}?after=x", None),
    ("ack", f"POST messages/{sid}/5/ack", None),
    ("discover", "POST discover", {"capabilities": ["order.read"], "q": "bolts", "limit": 5, "cursor": "c"}),
    ("discover_empty", "POST discover", None),
    ("tools_invoke", "POST tools/invoke", {"session_id": sid, "tool_name": "quote", "parameters": {"sku": "M8"}}),
    ("wrong_method", "DELETE send", None),
    ("unknown", "GET nowhere", None),
]:
    text = line + "\n" + (compact(body) if body is not None else "")
    c.add(name, text, 0)
c.add("no_key", "POST send\n{}", 1)
c.add("wrong_key", "GET sessions", 2)
c.add("not_json", "POST send\n{\"session_id\":", 0)

for target in sorted(os.listdir(CORPUS)):
    print(f"{target}: {len(os.listdir(os.path.join(CORPUS, target)))} files")
