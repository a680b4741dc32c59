-- Requests for quotes and the quotes received (SQLite).
CREATE TABLE rfq_requests (
    rfq_id              TEXT PRIMARY KEY,
    initiator_agent_id  TEXT NOT NULL,
    initiator_org_id    TEXT NOT NULL,
    capability_filter   TEXT NOT NULL,
    payload_json        TEXT NOT NULL,
    status              TEXT NOT NULL,
    timeout_seconds     INTEGER NOT NULL DEFAULT 30,
    matched_agents_json TEXT NOT NULL DEFAULT '[]',
    created_at          TEXT NOT NULL,
    closed_at           TEXT
);
CREATE INDEX ix_rfq_requests_initiator_agent_id ON rfq_requests(initiator_agent_id);
CREATE INDEX ix_rfq_requests_initiator_org_id ON rfq_requests(initiator_org_id);
CREATE INDEX ix_rfq_requests_status ON rfq_requests(status);

CREATE TABLE rfq_responses (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    rfq_id             TEXT NOT NULL,
    responder_agent_id TEXT NOT NULL,
    responder_org_id   TEXT NOT NULL,
    response_payload   TEXT NOT NULL,
    received_at        TEXT NOT NULL,
    CONSTRAINT uq_rfq_responder UNIQUE (rfq_id, responder_agent_id)
);
CREATE INDEX ix_rfq_responses_rfq_id ON rfq_responses(rfq_id);
