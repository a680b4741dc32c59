-- The audit log is append-only (broker spec §8.5, hardened): rows are written once, complete
-- with their chain hashes, by a single INSERT, so every UPDATE, DELETE and TRUNCATE is refused.
-- Someone with raw database access can drop these triggers; the hash chain then still makes
-- the change detectable (`cullis-broker audit verify`, GET /v1/admin/audit/verify).
CREATE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
