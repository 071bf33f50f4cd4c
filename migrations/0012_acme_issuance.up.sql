-- ACME issuance state (issue 18): one row per name the router orders certificates for, and a
-- log of orders that the per-name and global budgets count. Certificates themselves live in
-- `certificates` (0005/0011); challenge tokens in `acme_challenges` (0005).

CREATE TABLE acme_names (
    name               text PRIMARY KEY CHECK (name = lower(name) AND length(name) <= 253),
    -- What the admin sees as the certificate status: none (no row), pending (first order in
    -- progress or waiting), issued, renewing (a valid certificate is being replaced), failed.
    state              text NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'issued', 'renewing', 'failed')),
    -- Consecutive failed orders (any cause) and consecutive failed validations; both reset
    -- on success. Repeated failed validations pause the name (Let's Encrypt pauses too).
    failures           integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    failed_validations integer NOT NULL DEFAULT 0 CHECK (failed_validations >= 0),
    last_error         text,
    -- No order before this (backoff, Retry-After, budgets).
    next_attempt_at    timestamptz,
    -- When the current certificate is renewed: a random point in ARI's window, else two
    -- thirds of its lifetime.
    renew_at           timestamptz,
    -- ARI's Retry-After: when to ask for the window again.
    ari_checked_until  timestamptz,
    paused_until       timestamptz,
    -- One issuer per name across instances: whoever holds an unexpired lease.
    lease_owner        uuid,
    lease_until        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX acme_names_due_idx ON acme_names (renew_at) WHERE state = 'issued';

CREATE TABLE acme_orders (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('issue', 'renew')),
    -- The router instance that placed it.
    instance    uuid NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome     text CHECK (outcome IN ('issued', 'failed', 'invalid', 'rate_limited')),
    error       text
);
CREATE INDEX acme_orders_name_idx ON acme_orders (name, started_at);
CREATE INDEX acme_orders_started_idx ON acme_orders (started_at);

-- The router writes; the platform's admin API reads the status.
GRANT SELECT, INSERT, UPDATE, DELETE ON acme_names, acme_orders TO platform_edge;
GRANT SELECT ON acme_names, acme_orders TO platform_service;

-- A domain that becomes verified tells the routers at once (tenant_changed carries no
-- status): they order its certificate without waiting for the next scan.
CREATE FUNCTION notify_domain_verified() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('domain_verified', NEW.domain);
    RETURN NULL;
END
$$;
CREATE TRIGGER tenant_domains_verified_insert AFTER INSERT ON tenant_domains
    FOR EACH ROW WHEN (NEW.status IN ('verified', 'active'))
    EXECUTE FUNCTION notify_domain_verified();
CREATE TRIGGER tenant_domains_verified_update AFTER UPDATE OF status ON tenant_domains
    FOR EACH ROW WHEN (NEW.status IN ('verified', 'active') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION notify_domain_verified();
