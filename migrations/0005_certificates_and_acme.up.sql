-- TLS certificates and ACME state, shared by every router instance.
-- Private keys are encrypted by the router before they reach the database.

CREATE TABLE acme_accounts (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    directory_url         text NOT NULL UNIQUE,
    contact               text,
    -- Account credentials (JSON), sealed with the router's key-encryption key.
    credentials_encrypted bytea NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE certificates (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Exact name or a wildcard such as '*.platform.example'.
    domain                text NOT NULL UNIQUE CHECK (domain = lower(domain)),
    tenant_id             uuid REFERENCES tenants (id) ON DELETE CASCADE,
    status                text NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'issued', 'failed', 'expired')),
    chain_pem             text,
    private_key_encrypted bytea,
    not_before            timestamptz,
    not_after             timestamptz,
    -- When renewal should start: ARI's window when offered, else two thirds of the lifetime.
    renew_after           timestamptz,
    attempts              integer NOT NULL DEFAULT 0,
    next_attempt_at       timestamptz,
    last_error            text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'issued' OR (chain_pem IS NOT NULL AND private_key_encrypted IS NOT NULL AND not_after IS NOT NULL))
);
CREATE INDEX certificates_renew_idx ON certificates (renew_after) WHERE status = 'issued';
CREATE INDEX certificates_retry_idx ON certificates (next_attempt_at) WHERE status IN ('pending', 'failed');

CREATE TABLE acme_challenges (
    -- HTTP-01 token from the URL path /.well-known/acme-challenge/<token>.
    token             text PRIMARY KEY CHECK (token ~ '^[A-Za-z0-9_-]+$'),
    domain            text NOT NULL,
    key_authorization text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL
);
CREATE INDEX acme_challenges_expires_idx ON acme_challenges (expires_at);

ALTER TABLE certificates ENABLE ROW LEVEL SECURITY;
ALTER TABLE certificates FORCE ROW LEVEL SECURITY;
-- Tenants see their certificate's status, never the key (column grants below).
CREATE POLICY tenant_isolation ON certificates FOR SELECT TO platform_app
    USING (tenant_id = app_current_tenant());
CREATE POLICY service_all ON certificates TO platform_service USING (true) WITH CHECK (true);
CREATE POLICY edge_all ON certificates TO platform_edge USING (true) WITH CHECK (true);

GRANT SELECT (id, domain, tenant_id, status, not_before, not_after, last_error) ON certificates TO platform_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON certificates, acme_accounts, acme_challenges TO platform_edge;
GRANT SELECT, DELETE ON certificates, acme_challenges TO platform_service;
