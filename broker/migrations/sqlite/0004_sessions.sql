-- Sessions, their messages and the agents' notification inbox (SQLite).
CREATE TABLE sessions (
    session_id              TEXT PRIMARY KEY,
    initiator_agent_id      TEXT NOT NULL,
    initiator_org_id        TEXT NOT NULL,
    target_agent_id         TEXT NOT NULL,
    target_org_id           TEXT NOT NULL,
    status                  TEXT NOT NULL,
    requested_capabilities  TEXT NOT NULL DEFAULT '[]',
    created_at              TEXT NOT NULL,
    expires_at              TEXT NOT NULL,
    closed_at               TEXT,
    -- The broker-assigned sequence of the next message; bumped in the same transaction as
    -- the message insert, so sequences have no gaps or duplicates under concurrency.
    next_seq                INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX ix_sessions_initiator ON sessions(initiator_agent_id);
CREATE INDEX ix_sessions_target ON sessions(target_agent_id);

CREATE TABLE session_messages (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id       TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    sender_agent_id  TEXT NOT NULL,
    payload          TEXT NOT NULL,
    nonce            TEXT NOT NULL UNIQUE,
    timestamp        TEXT NOT NULL,
    signed_timestamp INTEGER NOT NULL,
    signature        TEXT,
    client_seq       INTEGER,
    CONSTRAINT uq_session_seq UNIQUE (session_id, seq)
);

CREATE TABLE notifications (
    id                 TEXT PRIMARY KEY,
    recipient_type     TEXT NOT NULL,
    recipient_id       TEXT NOT NULL,
    org_id             TEXT,
    notification_type  TEXT NOT NULL,
    title              TEXT NOT NULL,
    body               TEXT,
    reference_id       TEXT,
    is_read            INTEGER NOT NULL DEFAULT 0,
    is_acted           INTEGER NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL,
    acted_at           TEXT
);
CREATE INDEX ix_notifications_recipient ON notifications(recipient_id);
