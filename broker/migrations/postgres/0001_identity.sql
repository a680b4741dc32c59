-- Identity state of the broker (PostgreSQL). Timestamps are RFC 3339 UTC text with six fraction
-- digits (sortable); `token_invalidated_at` and `expires_at` of single-use ids are Unix seconds.
CREATE TABLE organizations (
    org_id          TEXT PRIMARY KEY,
    display_name    TEXT NOT NULL,
    secret_hash     TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'active',
    registered_at   TEXT NOT NULL,
    metadata_json   TEXT NOT NULL DEFAULT '{}',
    ca_certificate  TEXT,
    webhook_url     TEXT
);

CREATE TABLE agents (
    agent_id              TEXT PRIMARY KEY,
    org_id                TEXT NOT NULL REFERENCES organizations(org_id),
    display_name          TEXT NOT NULL,
    description           TEXT NOT NULL DEFAULT '',
    capabilities_json     TEXT NOT NULL DEFAULT '[]',
    metadata_json         TEXT NOT NULL DEFAULT '{}',
    is_active             BIGINT NOT NULL DEFAULT 1,
    registered_at         TEXT NOT NULL,
    cert_pem              TEXT,
    cert_thumbprint       TEXT,
    token_invalidated_at  BIGINT
);
CREATE INDEX ix_agents_org_id ON agents(org_id);

CREATE TABLE bindings (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id       TEXT NOT NULL,
    agent_id     TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending',
    scope_json   TEXT NOT NULL DEFAULT '[]',
    approved_at  TEXT,
    approved_by  TEXT,
    created_at   TEXT NOT NULL,
    CONSTRAINT uq_binding_org_agent UNIQUE (org_id, agent_id)
);

CREATE TABLE policies (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    policy_id    TEXT NOT NULL UNIQUE,
    org_id       TEXT NOT NULL,
    policy_type  TEXT NOT NULL,
    rules_json   TEXT NOT NULL,
    is_active    BIGINT NOT NULL DEFAULT 1,
    created_at   TEXT NOT NULL
);
CREATE INDEX ix_policies_org_id ON policies(org_id);

CREATE TABLE invite_tokens (
    id              TEXT PRIMARY KEY,
    token_hash      TEXT NOT NULL UNIQUE,
    label           TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    used            BIGINT NOT NULL DEFAULT 0,
    used_at         TEXT,
    used_by_org_id  TEXT,
    revoked         BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE revoked_certs (
    serial_hex      TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL,
    revoked_at      TEXT NOT NULL,
    revoked_by      TEXT NOT NULL,
    reason          TEXT,
    cert_not_after  TEXT NOT NULL,
    agent_id        TEXT
);
CREATE INDEX ix_revoked_certs_org_id ON revoked_certs(org_id);

CREATE TABLE jti_blacklist (
    jti         TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    timestamp      TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    agent_id       TEXT,
    session_id     TEXT,
    org_id         TEXT,
    details        TEXT,
    result         TEXT NOT NULL,
    entry_hash     TEXT,
    previous_hash  TEXT
);
CREATE INDEX ix_audit_log_event_type ON audit_log(event_type);
CREATE INDEX ix_audit_log_org_id ON audit_log(org_id);
