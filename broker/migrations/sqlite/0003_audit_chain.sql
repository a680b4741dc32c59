-- The audit log is append-only (broker spec §8.5, hardened): rows are written once, complete
-- with their chain hashes, by a single INSERT, so every UPDATE and every DELETE is refused.
-- Someone with raw database access can drop these triggers; the hash chain then still makes
-- the change detectable (`cullis-broker audit verify`, GET /v1/admin/audit/verify).
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused');
END;
