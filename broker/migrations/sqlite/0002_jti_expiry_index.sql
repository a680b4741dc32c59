-- Purging expired client-assertion ids must not scan the table.
CREATE INDEX ix_jti_blacklist_expires_at ON jti_blacklist(expires_at);
