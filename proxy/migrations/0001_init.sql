-- Settings of the organisation and the proxy (broker URL, org id, status, CA certificate, policy).
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Secrets (org secret, CA key, agent keys, API-key HMAC key), sealed with AES-256-GCM by the
-- local custody backend. With the Vault backend they live in Vault and this table stays empty.
CREATE TABLE IF NOT EXISTS secrets (
    name   TEXT PRIMARY KEY,
    sealed TEXT NOT NULL
);

-- Local agents. `name` is the part after `<org>::`, which the API key carries, so a key is
-- looked up by its name in O(1) and then compared in constant time.
CREATE TABLE IF NOT EXISTS internal_agents (
    agent_id     TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    capabilities TEXT NOT NULL DEFAULT '[]',
    api_key_hash TEXT NOT NULL,
    cert_pem     TEXT,
    created_at   TEXT NOT NULL,
    is_active    INTEGER NOT NULL DEFAULT 1
);

-- Append-only local audit log, SHA-256 hash-chained (entry_hash covers prev_hash + the row).
CREATE TABLE IF NOT EXISTS audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp   TEXT NOT NULL,
    agent_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    tool_name   TEXT,
    status      TEXT NOT NULL,
    detail      TEXT,
    request_id  TEXT,
    duration_ms REAL,
    prev_hash   TEXT NOT NULL,
    entry_hash  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_audit_agent ON audit_log(agent_id);
CREATE INDEX IF NOT EXISTS idx_audit_timestamp ON audit_log(timestamp);
CREATE INDEX IF NOT EXISTS idx_audit_request ON audit_log(request_id);

-- The next client_seq per (agent, session): persisted so a restart never reuses one.
CREATE TABLE IF NOT EXISTS client_seq (
    agent_id   TEXT NOT NULL,
    session_id TEXT NOT NULL,
    next_seq   INTEGER NOT NULL,
    PRIMARY KEY (agent_id, session_id)
);
