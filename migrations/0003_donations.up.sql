-- Donors, one-time and recurring donations, and received Stripe events.
-- Money is integer minor units with the currency beside it; fee + net = amount always.

CREATE TABLE donors (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email              text NOT NULL CHECK (email = lower(email) AND email LIKE '%_@_%'),
    name               text NOT NULL DEFAULT '',
    stripe_customer_id text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, email),
    -- Target of the composite foreign keys below: a row can only point at a donor of its own tenant.
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX donors_stripe_customer_idx ON donors (tenant_id, stripe_customer_id)
    WHERE stripe_customer_id IS NOT NULL;

CREATE TABLE recurring_donations (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id              uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    donor_id               uuid NOT NULL,
    amount_minor           bigint NOT NULL CHECK (amount_minor > 0),
    currency               text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    fee_basis_points       integer NOT NULL CHECK (fee_basis_points BETWEEN 0 AND 10000),
    billing_interval       text NOT NULL CHECK (billing_interval IN ('week', 'month', 'year')),
    fund                   text NOT NULL DEFAULT 'general',
    status                 text NOT NULL DEFAULT 'incomplete'
                           CHECK (status IN ('incomplete', 'active', 'past_due', 'canceled', 'incomplete_expired')),
    stripe_subscription_id text UNIQUE,
    -- SHA-256 of the token in the donor's cancel link.
    cancel_token_hash      bytea CHECK (length(cancel_token_hash) = 32),
    current_period_end     timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    canceled_at            timestamptz,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, donor_id) REFERENCES donors (tenant_id, id)
);
CREATE INDEX recurring_donations_status_idx ON recurring_donations (status, updated_at);

CREATE TABLE donations (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id                uuid NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    donor_id                 uuid NOT NULL,
    recurring_donation_id    uuid,
    kind                     text NOT NULL CHECK (kind IN ('one_time', 'recurring')),
    amount_minor             bigint NOT NULL CHECK (amount_minor > 0),
    currency                 text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    fee_minor                bigint NOT NULL CHECK (fee_minor >= 0),
    net_minor                bigint NOT NULL CHECK (net_minor >= 0),
    refunded_minor           bigint NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
    fund                     text NOT NULL DEFAULT 'general',
    status                   text NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'succeeded', 'failed', 'canceled', 'refunded', 'partially_refunded', 'disputed')),
    stripe_payment_intent_id text UNIQUE,
    stripe_invoice_id        text UNIQUE,
    stripe_charge_id         text,
    failure_reason           text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    succeeded_at             timestamptz,
    CHECK (fee_minor + net_minor = amount_minor),
    CHECK (refunded_minor <= amount_minor),
    CHECK ((kind = 'recurring') = (recurring_donation_id IS NOT NULL)),
    FOREIGN KEY (tenant_id, donor_id) REFERENCES donors (tenant_id, id),
    FOREIGN KEY (tenant_id, recurring_donation_id) REFERENCES recurring_donations (tenant_id, id)
);
-- Staff list their donations newest first, filtered by status.
CREATE INDEX donations_tenant_created_idx ON donations (tenant_id, created_at DESC);
CREATE INDEX donations_tenant_status_idx ON donations (tenant_id, status, created_at DESC);
-- process-donations reconciles what is still pending after a threshold.
CREATE INDEX donations_pending_idx ON donations (created_at) WHERE status = 'pending';
CREATE INDEX donations_recurring_idx ON donations (recurring_donation_id) WHERE recurring_donation_id IS NOT NULL;
CREATE INDEX donations_charge_idx ON donations (stripe_charge_id) WHERE stripe_charge_id IS NOT NULL;

CREATE TABLE stripe_events (
    -- Stripe's event id: the primary key is what makes redelivery a no-op.
    id           text PRIMARY KEY CHECK (id ~ '^evt_[A-Za-z0-9_]+$'),
    event_type   text NOT NULL,
    account      text,
    tenant_id    uuid REFERENCES tenants (id) ON DELETE SET NULL,
    livemode     boolean NOT NULL,
    stripe_created_at timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    outcome      text NOT NULL CHECK (outcome IN ('applied', 'ignored', 'stale')),
    payload      jsonb NOT NULL
);
-- cleanup-sessions drops event ids past their retention.
CREATE INDEX stripe_events_received_idx ON stripe_events (received_at);

ALTER TABLE donors ENABLE ROW LEVEL SECURITY;
ALTER TABLE donors FORCE ROW LEVEL SECURITY;
ALTER TABLE recurring_donations ENABLE ROW LEVEL SECURITY;
ALTER TABLE recurring_donations FORCE ROW LEVEL SECURITY;
ALTER TABLE donations ENABLE ROW LEVEL SECURITY;
ALTER TABLE donations FORCE ROW LEVEL SECURITY;
ALTER TABLE stripe_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE stripe_events FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON donors TO platform_app
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY tenant_isolation ON recurring_donations TO platform_app
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY tenant_isolation ON donations TO platform_app
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY service_all ON donors TO platform_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON recurring_donations TO platform_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON donations TO platform_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON stripe_events TO platform_service USING (true) WITH CHECK (true);

GRANT SELECT, INSERT, UPDATE ON donors, recurring_donations, donations TO platform_app, platform_service;
GRANT SELECT, INSERT, DELETE ON stripe_events TO platform_service;
