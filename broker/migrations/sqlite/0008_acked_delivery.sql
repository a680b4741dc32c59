-- At-least-once delivery as cullis-sdk 0.2.x expects it (docs/sdk-generations.md): a sender's
-- idempotency key per message (a resend returns the first message), an optional time to live
-- for messages not yet acknowledged, and the recipient's acknowledgement.
ALTER TABLE session_messages ADD COLUMN idempotency_key TEXT;
-- Unix seconds; NULL = the message lives as long as its session (the first generation's rule).
ALTER TABLE session_messages ADD COLUMN expires_at INTEGER;
ALTER TABLE session_messages ADD COLUMN acked_at TEXT;
CREATE UNIQUE INDEX ux_session_messages_idempotency
    ON session_messages (session_id, sender_agent_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
