-- The operator console's own settings (the admin's console password hash), shared by replicas.
CREATE TABLE console_settings (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
