-- Broker token-signing keys (rotation) and transaction tokens (SQLite).
-- Private keys stay in the KMS; this table holds what every replica must agree on: which key
-- signs, which public keys verify, and which are cut off.
CREATE TABLE broker_signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    public_key_pem  TEXT NOT NULL,
    -- next (published, not yet signing) | active | previous (verifying until its tokens
    -- expire) | retired (emergency cut-off)
    status          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    activated_at    INTEGER,
    deactivated_at  INTEGER,
    retired_at      INTEGER
);
CREATE UNIQUE INDEX ux_broker_signing_keys_one_active ON broker_signing_keys(status) WHERE status = 'active';

CREATE TABLE transaction_tokens (
    jti             TEXT PRIMARY KEY,
    txn_type        TEXT NOT NULL,
    agent_id        TEXT NOT NULL,
    org_id          TEXT NOT NULL,
    resource_id     TEXT,
    payload_hash    TEXT NOT NULL,
    approved_by     TEXT NOT NULL,
    parent_jti      TEXT,
    rfq_id          TEXT,
    target_agent_id TEXT,
    status          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    consumed_at     TEXT,
    expires_at      INTEGER NOT NULL
);
CREATE INDEX ix_transaction_tokens_agent_id ON transaction_tokens(agent_id);
