-- Discovery at scale (issue 18): each capability is a row (so `capability=x` is an index
-- lookup, not a scan of every agent's JSON list), and the registration order — the order
-- discovery pages follow — is an index, for all agents and per org.
CREATE TABLE agent_capabilities (
    capability  TEXT NOT NULL,
    agent_id    TEXT NOT NULL REFERENCES agents(agent_id),
    PRIMARY KEY (capability, agent_id)
);

INSERT INTO agent_capabilities (capability, agent_id)
    SELECT DISTINCT c.value, a.agent_id
    FROM agents a, jsonb_array_elements_text(a.capabilities_json::jsonb) AS c(value)
ON CONFLICT DO NOTHING;

CREATE INDEX ix_agents_registration ON agents(registered_at, agent_id);
CREATE INDEX ix_agents_org_registration ON agents(org_id, registered_at, agent_id);
-- The new index starts with org_id: it serves every lookup the old one did.
DROP INDEX ix_agents_org_id;
