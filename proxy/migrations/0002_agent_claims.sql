-- An agent name being created: claimed before any broker call, so two creates of one name
-- cannot both run (the second gets 409). Removed when the create ends; a claim left behind by a
-- process that died mid-create is taken over once it is older than a few minutes.
CREATE TABLE IF NOT EXISTS agent_claims (
    name       TEXT PRIMARY KEY,
    claimed_at INTEGER NOT NULL
);
