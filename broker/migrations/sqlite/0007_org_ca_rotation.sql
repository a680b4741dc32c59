-- Org CA rotation (`POST /v1/registry/orgs/{org_id}/ca/rotate`): the CA a rotation replaced
-- keeps signing valid logins until `previous_ca_until` (unix seconds), so the org can re-issue
-- its agents' certificates one by one without any of them failing to log in meanwhile.
ALTER TABLE organizations ADD COLUMN previous_ca_certificate TEXT;
ALTER TABLE organizations ADD COLUMN previous_ca_until BIGINT;
