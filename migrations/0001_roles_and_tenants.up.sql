-- Roles, tenants, plans, subscriptions and custom domains.
--
-- Roles (cluster-wide, NOLOGIN; deployments create login users that are members):
--   platform_app      tenant-scoped requests; row-level security limits it to the tenant named
--                     by the transaction-local setting app.tenant_id.
--   platform_service  cross-tenant work: admin API, webhooks, workers.
--   platform_edge     the router: reads routing data, writes ACME state.
-- None of them owns a table, so FORCE ROW LEVEL SECURITY applies to all of them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'platform_app') THEN
        CREATE ROLE platform_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'platform_service') THEN
        CREATE ROLE platform_service NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'platform_edge') THEN
        CREATE ROLE platform_edge NOLOGIN;
    END IF;
END
$$;

-- The tenant of the current transaction, or NULL. NULLIF matters: once a transaction-local
-- setting has been used in a session, reading it later yields '' rather than NULL.
CREATE FUNCTION app_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

GRANT USAGE ON SCHEMA public TO platform_app, platform_service, platform_edge;
GRANT EXECUTE ON FUNCTION app_current_tenant() TO platform_app, platform_service, platform_edge;
-- Readiness checks compare applied migrations with the binary's (table made by the runner).
GRANT SELECT ON schema_migrations TO platform_app, platform_service, platform_edge;

CREATE TABLE plans (
    id                  text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_]{1,31}$'),
    name                text NOT NULL,
    monthly_price_minor bigint NOT NULL CHECK (monthly_price_minor >= 0),
    currency            text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    rate_limit_rps      integer NOT NULL CHECK (rate_limit_rps > 0),
    rate_limit_burst    integer NOT NULL CHECK (rate_limit_burst >= 0),
    max_custom_domains  integer NOT NULL CHECK (max_custom_domains >= 0),
    active              boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now()
);

INSERT INTO plans (id, name, monthly_price_minor, currency, rate_limit_rps, rate_limit_burst, max_custom_domains)
VALUES ('starter', 'Starter', 0, 'usd', 10, 20, 0),
       ('growth', 'Growth', 4900, 'usd', 30, 60, 2),
       ('network', 'Network', 19900, 'usd', 100, 200, 20);

CREATE TABLE tenants (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug                  text NOT NULL UNIQUE
                          CHECK (slug ~ '^[a-z][a-z0-9-]{1,61}[a-z0-9]$' AND slug NOT LIKE '%--%'),
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status                text NOT NULL DEFAULT 'trial'
                          CHECK (status IN ('trial', 'active', 'suspended', 'cancelled')),
    plan_id               text NOT NULL DEFAULT 'starter' REFERENCES plans (id),
    -- Branding, donation settings and funds; shape owned by the platform crate.
    settings              jsonb NOT NULL DEFAULT '{}'::jsonb,
    stripe_account_id     text UNIQUE CHECK (stripe_account_id ~ '^acct_[A-Za-z0-9]+$'),
    stripe_account_status text NOT NULL DEFAULT 'not_connected'
                          CHECK (stripe_account_status IN ('not_connected', 'pending', 'restricted', 'enabled', 'rejected')),
    suspended_reason      text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    status_changed_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenants_status_idx ON tenants (status);

CREATE TABLE tenant_subscriptions (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id              uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    plan_id                text NOT NULL REFERENCES plans (id),
    status                 text NOT NULL
                           CHECK (status IN ('trialing', 'active', 'past_due', 'canceled')),
    amount_minor           bigint NOT NULL CHECK (amount_minor >= 0),
    currency               text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    billing_interval       text NOT NULL DEFAULT 'month' CHECK (billing_interval IN ('month', 'year')),
    stripe_subscription_id text UNIQUE,
    trial_ends_at          timestamptz,
    current_period_start   timestamptz,
    current_period_end     timestamptz,
    canceled_at            timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
-- At most one live subscription per tenant.
CREATE UNIQUE INDEX tenant_subscriptions_live_idx ON tenant_subscriptions (tenant_id)
    WHERE status <> 'canceled';

CREATE TABLE tenant_domains (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    domain             text NOT NULL CHECK (domain = lower(domain) AND length(domain) <= 253),
    status             text NOT NULL DEFAULT 'pending_verification'
                       CHECK (status IN ('pending_verification', 'verified', 'active', 'failed', 'removed')),
    cert_status        text NOT NULL DEFAULT 'none'
                       CHECK (cert_status IN ('none', 'pending', 'issued', 'failed', 'expired')),
    verification_token text NOT NULL,
    failure_reason     text,
    verified_at        timestamptz,
    last_checked_at    timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    removed_at         timestamptz
);
-- A name belongs to one tenant at a time; removed rows stay for history.
CREATE UNIQUE INDEX tenant_domains_domain_live_idx ON tenant_domains (domain)
    WHERE status <> 'removed';
CREATE INDEX tenant_domains_tenant_idx ON tenant_domains (tenant_id);
-- The verification job scans pending names by age.
CREATE INDEX tenant_domains_pending_idx ON tenant_domains (last_checked_at NULLS FIRST)
    WHERE status = 'pending_verification';

-- Routing changes are pushed to routers, which drop the affected cache entries.
CREATE FUNCTION notify_tenant_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    row_data record;
BEGIN
    IF TG_OP = 'DELETE' THEN row_data := OLD; ELSE row_data := NEW; END IF;
    IF TG_TABLE_NAME = 'tenants' THEN
        PERFORM pg_notify('tenant_changed', json_build_object('tenant_id', row_data.id, 'slug', row_data.slug)::text);
    ELSE
        PERFORM pg_notify('tenant_changed', json_build_object('tenant_id', row_data.tenant_id, 'domain', row_data.domain)::text);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER tenants_notify AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION notify_tenant_change();
CREATE TRIGGER tenant_domains_notify AFTER INSERT OR UPDATE OR DELETE ON tenant_domains
    FOR EACH ROW EXECUTE FUNCTION notify_tenant_change();

-- Row-level security.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
ALTER TABLE tenant_subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_subscriptions FORCE ROW LEVEL SECURITY;
ALTER TABLE tenant_domains ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_domains FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON tenants TO platform_app
    USING (id = app_current_tenant()) WITH CHECK (id = app_current_tenant());
CREATE POLICY tenant_isolation ON tenant_subscriptions TO platform_app
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY tenant_isolation ON tenant_domains TO platform_app
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());

CREATE POLICY service_all ON tenants TO platform_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON tenant_subscriptions TO platform_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON tenant_domains TO platform_service USING (true) WITH CHECK (true);

CREATE POLICY edge_read ON tenants FOR SELECT TO platform_edge USING (true);
CREATE POLICY edge_read ON tenant_domains FOR SELECT TO platform_edge USING (true);

GRANT SELECT ON plans TO platform_app, platform_service, platform_edge;
GRANT INSERT, UPDATE ON plans TO platform_service;
-- Tenants edit their own profile; creating, suspending and deleting tenants is admin work.
GRANT SELECT, UPDATE ON tenants TO platform_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON tenants TO platform_service;
GRANT SELECT (id, slug, name, status, plan_id) ON tenants TO platform_edge;
GRANT SELECT ON tenant_subscriptions TO platform_app;
GRANT SELECT, INSERT, UPDATE ON tenant_subscriptions TO platform_service;
GRANT SELECT ON tenant_domains TO platform_app;
GRANT SELECT, INSERT, UPDATE ON tenant_domains TO platform_service;
GRANT SELECT ON tenant_domains TO platform_edge;
