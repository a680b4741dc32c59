"""Drives the unmodified `cullis-sdk==0.2.2` direct client (`CullisClient(url)` +
`login_from_pem`) against a broker, for `e2e/tests/sdk_022.rs`.

    python driver.py broker-flow CONFIG.json      # the whole direct flow, two orgs
    python driver.py accept-and-send CONFIG.json  # proxy exchange, step 1
    python driver.py receive CONFIG.json          # proxy exchange, step 2

CONFIG names the broker URL and the agents (id, org, cert and key PEM). Every check raises
with a message; the last line on stdout is a JSON summary the Rust test reads.
"""
import hashlib
import json
import sys
import threading
import time
import uuid
import warnings

# The direct client is deprecated in 0.2.x and says so on every call; the test runs it anyway.
warnings.simplefilter("ignore", DeprecationWarning)

from cullis_sdk import CullisClient  # noqa: E402
from cullis_sdk.crypto.e2e import (  # noqa: E402
    decrypt_from_agent,
    encrypt_for_agent,
    verify_inner_signature,
)
from cullis_sdk.crypto.message_signer import sign_message  # noqa: E402


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def login(base, agent):
    client = CullisClient(base)
    client.login_from_pem(agent["agent_id"], agent["org_id"], agent["cert_pem"], agent["key_pem"])
    check(client.server_role == "broker", f"x-cullis-role seen: {client.server_role!r}")
    return client


def last_seq(client, session_id):
    messages = client.poll(session_id)
    return messages[-1].seq if messages else -1


def exchange(buyer, buyer_id, seller, seller_id, label):
    """Open, accept, one E2E message each way (inner signature checked against cert_pem)."""
    session_id = buyer.open_session(seller_id, seller_id.split("::")[0], ["order.place"])
    seller.accept_session(session_id)
    sent = buyer.send(session_id, buyer_id, {"text": f"hello {label}"}, seller_id)
    check(sent["status"] == "accepted" and sent["msg_id"] is not None, f"send answer {sent}")
    got = seller.poll(session_id)
    check([m.payload for m in got] == [{"text": f"hello {label}"}], f"{label} seller got {got}")
    # The raw message: decrypt by hand to check the inner signature against the sender's
    # certificate from /v1/federation/agents/{id}/public-key (cert_pem, as 0.2.2 prefers).
    raw = seller._authed_request("GET", f"/v1/broker/sessions/{session_id}/messages").json()[0]
    payload, inner = decrypt_from_agent(seller._signing_key_pem, raw["payload"], session_id,
                                        buyer_id, client_seq=raw["client_seq"])
    cert = seller.get_agent_public_key(buyer_id)
    check("BEGIN CERTIFICATE" in cert, "public-key answer carries cert_pem")
    verify_inner_signature(cert, inner, session_id, buyer_id, raw["nonce"],
                           raw["signed_timestamp"], payload, client_seq=raw["client_seq"])
    seller.send(session_id, seller_id, {"text": f"reply {label}"}, buyer_id)
    back = buyer.poll(session_id)
    check([m.payload for m in back] == [{"text": f"reply {label}"}], f"{label} buyer got {back}")
    return session_id


def next_event(ws, wanted):
    for event in ws:
        if event.get("type") == wanted:
            return event
    raise AssertionError(f"socket ended before a {wanted} frame")


def push_with_resume(buyer, buyer_id, seller, seller_id, session_id):
    """WS push, a forced disconnect (a second socket for the agent replaces the first), and the
    resume that replays what was sent meanwhile. Returns the msg_ids seen."""
    ws = seller.connect_websocket()  # auto_ack: acknowledges every queued frame
    buyer.send(session_id, buyer_id, {"n": 1}, seller_id)
    first = next_event(ws, "new_message")
    check(first["queued"] is True and first["msg_id"], f"push {first}")
    check(seller.decrypt_payload(first["message"], session_id)["payload"] == {"n": 1}, "n=1")
    kicker = seller.connect_websocket(auto_reconnect=False)
    kicker.close()
    buyer.send(session_id, buyer_id, {"n": 2}, seller_id)
    buyer.send(session_id, buyer_id, {"n": 3}, seller_id)
    # The first socket was closed by the broker: the SDK reconnects and sends `resume`.
    replayed = [next_event(ws, "new_message"), next_event(ws, "new_message")]
    ws.close()
    payloads = [seller.decrypt_payload(e["message"], session_id)["payload"] for e in replayed]
    check(payloads == [{"n": 2}, {"n": 3}], f"replayed {payloads}")
    check(all(e.get("replayed") for e in replayed), f"replayed flags {replayed}")
    msg_ids = [first["msg_id"]] + [e["msg_id"] for e in replayed]
    # Acknowledging again is fine; a message that does not exist is not.
    check(seller.ack_message(session_id, first["msg_id"]) is True, "re-ack is 204")
    check(seller.ack_message(session_id, "999999") is False, "unknown msg_id is 404")
    return msg_ids


def idempotent_resend_and_ttl(buyer, buyer_id, seller, seller_id, session_id):
    after = last_seq(seller, session_id)
    one = buyer.send(session_id, buyer_id, {"order": 1}, seller_id,
                     ttl_seconds=600, idempotency_key="order-1")
    again = buyer.send(session_id, buyer_id, {"order": 1}, seller_id,
                       ttl_seconds=600, idempotency_key="order-1")
    check(one["status"] == "queued" and one["deduped"] is False, f"first {one}")
    check(again["msg_id"] == one["msg_id"] and again["deduped"] is True, f"resend {again}")
    got = seller.poll(session_id, after=after)
    check([m.payload for m in got] == [{"order": 1}], f"one message for the key: {got}")
    # A message nobody acknowledged within its time to live is no longer delivered.
    short = buyer.send(session_id, buyer_id, {"short": True}, seller_id, ttl_seconds=1)
    time.sleep(2.5)
    later = seller.poll(session_id, after=got[-1].seq)
    check(later == [], f"expired message still delivered: {later}")
    check(seller.ack_message(session_id, short["msg_id"]) is False, "expired ack is 409")
    return one["msg_id"]


def rfq(buyer, seller):
    ws = seller.connect_websocket()
    seen = {}

    def supplier():
        event = next_event(ws, "rfq_request")
        seen["event"] = event
        seller.respond_to_rfq(event["rfq_id"], {"price": 42})

    thread = threading.Thread(target=supplier)
    thread.start()
    result = buyer.create_rfq(["rfq.quote"], {"sku": "M8-BOLT", "qty": 1000}, timeout_seconds=8)
    thread.join(timeout=10)
    ws.close()
    event = seen.get("event")
    check(event is not None and event["rfq_id"] == result.rfq_id, f"rfq_request pushed: {event}")
    check(event["payload"] == {"sku": "M8-BOLT", "qty": 1000}, f"rfq payload {event}")
    check(result.status == "closed", f"rfq status {result.status}")
    check([q.payload for q in result.quotes] == [{"price": 42}], f"quotes {result.quotes}")
    return result.rfq_id


def canonical(value):
    """The canonical JSON both sides hash (sorted keys, no spaces, ASCII escapes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sealed_envelope(client, session_id, sender_id, recipient_id, payload):
    """What 0.2.2's ``send`` posts, built with its own crypto (``send`` has no header argument)."""
    nonce, timestamp = str(uuid.uuid4()), int(time.time())
    client_seq = client._client_seq.get(session_id, 0)
    client._client_seq[session_id] = client_seq + 1
    key = client._signing_key_pem
    inner = sign_message(key, session_id, sender_id, nonce, timestamp, payload,
                         client_seq=client_seq)
    blob = encrypt_for_agent(client.get_agent_public_key(recipient_id), payload, inner,
                             session_id, sender_id, client_seq=client_seq)
    outer = sign_message(key, session_id, sender_id, nonce, timestamp, blob,
                         client_seq=client_seq)
    return {"session_id": session_id, "sender_agent_id": sender_id, "payload": blob,
            "nonce": nonce, "timestamp": timestamp, "signature": outer, "client_seq": client_seq}


def post_with_transaction_token(client, envelope, token):
    """POST the envelope with the SDK's DPoP headers plus ``X-Transaction-Token``."""
    path = f"/v1/broker/sessions/{envelope['session_id']}/messages"
    for _ in range(2):  # a DPoP nonce challenge is answered once, as the SDK does
        headers = {**client._headers("POST", path), "X-Transaction-Token": token}
        resp = client._http.request("POST", f"{client.base}{path}", headers=headers,
                                    json=envelope)
        client._update_nonce(resp)
        if not (resp.status_code == 401 and "use_dpop_nonce" in resp.text):
            return resp
    return resp


def transaction_token(buyer, buyer_id, seller, seller_id, session_id):
    """0.2.2's ``request_transaction_token`` bound to the hash of the sealed payload; the token
    authorises exactly one send of exactly that payload."""
    order = {"order": "PO-7", "qty": 3}
    envelope = sealed_envelope(buyer, session_id, buyer_id, seller_id, order)
    digest = hashlib.sha256(canonical(envelope["payload"]).encode()).hexdigest()
    issued = buyer.request_transaction_token("CREATE_ORDER", digest, session_id=session_id,
                                             counterparty_agent_id=seller_id)
    check(set(issued) >= {"transaction_token", "jti", "txn_type", "expires_in"}, f"{issued}")
    check(issued["txn_type"] == "CREATE_ORDER", f"txn_type {issued}")
    token = issued["transaction_token"]
    sent = post_with_transaction_token(buyer, envelope, token)
    check(sent.status_code == 202, f"send with token: {sent.status_code} {sent.text}")
    again = sealed_envelope(buyer, session_id, buyer_id, seller_id, order)
    replay = post_with_transaction_token(buyer, again, token)
    check(replay.status_code == 403 and "Transaction token invalid" in replay.text,
          f"token used twice: {replay.status_code} {replay.text}")
    other = sealed_envelope(buyer, session_id, buyer_id, seller_id, {"order": "PO-8"})
    fresh = buyer.request_transaction_token("CREATE_ORDER", digest, session_id=session_id)
    wrong = post_with_transaction_token(buyer, other, fresh["transaction_token"])
    check(wrong.status_code == 403, f"token for another payload: {wrong.status_code} {wrong.text}")
    return issued["jti"]


def broker_flow(cfg):
    base, agents = cfg["base"], cfg["agents"]
    clients = {name: login(base, agent) for name, agent in agents.items()}
    ids = {name: agent["agent_id"] for name, agent in agents.items()}
    found = clients["buyer_ec"].discover(capabilities=["order.place"])
    found_ids = {a.agent_id for a in found}
    check({ids["seller_rsa"], ids["seller_ec"]} <= found_ids, f"discover {found_ids}")
    check(ids["buyer_rsa"] not in found_ids, "own org left out")
    check([a.agent_id for a in clients["buyer_ec"].discover(q="seller-ec")] == [ids["seller_ec"]],
          "discover by q")
    rsa_session = exchange(clients["buyer_rsa"], ids["buyer_rsa"], clients["seller_rsa"],
                           ids["seller_rsa"], "rsa")
    ec_session = exchange(clients["buyer_ec"], ids["buyer_ec"], clients["seller_ec"],
                          ids["seller_ec"], "ec")
    pushed = push_with_resume(clients["buyer_ec"], ids["buyer_ec"], clients["seller_ec"],
                              ids["seller_ec"], ec_session)
    keyed = idempotent_resend_and_ttl(clients["buyer_ec"], ids["buyer_ec"], clients["seller_ec"],
                                      ids["seller_ec"], ec_session)
    rfq_id = rfq(clients["buyer_ec"], clients["seller_ec"])
    txn_jti = transaction_token(clients["buyer_ec"], ids["buyer_ec"], clients["seller_ec"],
                                ids["seller_ec"], ec_session)
    for session_id in (rsa_session, ec_session):
        clients["buyer_ec" if session_id == ec_session else "buyer_rsa"].close_session(session_id)
    closed = {s.session_id: s.status for s in clients["buyer_ec"].list_sessions()}
    check(closed.get(ec_session) == "closed", f"closed {closed}")
    return {"ec_session": ec_session, "rsa_session": rsa_session, "pushed_msg_ids": pushed,
            "keyed_msg_id": keyed, "rfq_id": rfq_id, "transaction_jti": txn_jti}


def accept_and_send(cfg):
    """The 0.2.2 agent accepts the proxy agent's session and sends to it (sealed v2)."""
    me = login(cfg["base"], cfg["agents"]["sdk"])
    session_id, peer = cfg["session_id"], cfg["peer_agent_id"]
    me.accept_session(session_id)
    sent = me.send(session_id, cfg["agents"]["sdk"]["agent_id"], {"text": "from sdk 0.2.2"}, peer)
    return {"msg_id": sent["msg_id"]}


def receive(cfg):
    """The 0.2.2 agent opens what the proxy agent sealed to it."""
    me = login(cfg["base"], cfg["agents"]["sdk"])
    got = me.poll(cfg["session_id"])
    payloads = [m.payload for m in got if m.sender_agent_id == cfg["peer_agent_id"]]
    check(payloads == [{"text": "from the proxy"}], f"received {payloads}")
    return {"received": payloads}


def main():
    command, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        cfg = json.load(f)
    flows = {"broker-flow": broker_flow, "accept-and-send": accept_and_send, "receive": receive}
    print(json.dumps(flows[command](cfg)), flush=True)


if __name__ == "__main__":
    main()
