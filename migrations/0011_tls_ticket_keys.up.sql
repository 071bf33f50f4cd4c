-- Session-ticket keys shared by every router instance: a ticket issued by one instance
-- resumes on any other. Keys are sealed by the router (AES-256-GCM, CERT_ENCRYPTION_KEY)
-- before they reach the database. Rotated by whichever instance finds the newest key due
-- (under an advisory lock); expired keys are deleted by the same step.
CREATE TABLE tls_ticket_keys (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_encrypted bytea NOT NULL,
    -- New tickets are encrypted with the newest key whose active_from has passed; a key is
    -- written ahead of time so every instance can decrypt with it before anyone encrypts.
    active_from   timestamptz NOT NULL,
    -- Tickets sealed with this key are refused after this.
    expires_at    timestamptz NOT NULL CHECK (expires_at > active_from),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tls_ticket_keys_expires_idx ON tls_ticket_keys (expires_at);

GRANT SELECT, INSERT, DELETE ON tls_ticket_keys TO platform_edge;
GRANT USAGE ON SEQUENCE tls_ticket_keys_id_seq TO platform_edge;
