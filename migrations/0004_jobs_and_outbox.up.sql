-- The job queue, cron run history, the email outbox and generated reports.

CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.-]*$'),
    tenant_id        uuid REFERENCES tenants (id) ON DELETE CASCADE,
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Lower runs first.
    priority         smallint NOT NULL DEFAULT 100,
    state            text NOT NULL DEFAULT 'available'
                     CHECK (state IN ('available', 'running', 'retryable', 'completed', 'discarded', 'cancelled')),
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     integer NOT NULL DEFAULT 20 CHECK (max_attempts > 0),
    run_at           timestamptz NOT NULL DEFAULT now(),
    -- Jobs that must not be queued twice while one is pending carry a key.
    unique_key       text,
    locked_by        text,
    lease_expires_at timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempted_at     timestamptz,
    finished_at      timestamptz,
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL))
);
-- The consumer's fetch: runnable jobs by priority then due time.
CREATE INDEX jobs_fetch_idx ON jobs (priority, run_at, id) WHERE state IN ('available', 'retryable');
-- Rescue of expired leases.
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE state = 'running';
CREATE UNIQUE INDEX jobs_unique_key_idx ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available', 'running', 'retryable');
-- Queue depth per tenant, for fair share.
CREATE INDEX jobs_tenant_idx ON jobs (tenant_id, state) WHERE tenant_id IS NOT NULL;
-- Pruning finished jobs.
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE cron_runs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job            text NOT NULL CHECK (job ~ '^[a-z][a-z0-9-]*$'),
    trigger        text NOT NULL CHECK (trigger IN ('http', 'scheduler', 'cli')),
    scheduled_for  timestamptz,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    outcome        text NOT NULL DEFAULT 'running'
                   CHECK (outcome IN ('running', 'succeeded', 'failed', 'skipped')),
    counts         jsonb NOT NULL DEFAULT '{}'::jsonb,
    error          text,
    CHECK ((outcome = 'running') = (finished_at IS NULL))
);
-- One running instance per job across every trigger path: overlap fails on this index.
CREATE UNIQUE INDEX cron_runs_one_running_idx ON cron_runs (job) WHERE outcome = 'running';
CREATE INDEX cron_runs_job_started_idx ON cron_runs (job, started_at DESC);

CREATE TABLE email_outbox (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid REFERENCES tenants (id) ON DELETE CASCADE,
    -- Derived from what caused the email (e.g. "receipt:<donation id>") so it is queued once.
    idempotency_key  text NOT NULL UNIQUE,
    template         text NOT NULL CHECK (template IN ('donation_receipt', 'recurring_failed', 'weekly_report', 'admin_summary')),
    to_address       text NOT NULL CHECK (to_address LIKE '%_@_%'),
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- Message-ID sent with the mail, fixed before the first attempt so retries are recognisable.
    message_id       text,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE status IN ('pending', 'sending');

CREATE TABLE reports (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- NULL for the platform-wide summary.
    tenant_id    uuid REFERENCES tenants (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('weekly_tenant', 'weekly_platform')),
    period_start date NOT NULL,
    period_end   date NOT NULL CHECK (period_end > period_start),
    summary      jsonb NOT NULL DEFAULT '{}'::jsonb,
    csv          text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'weekly_platform') = (tenant_id IS NULL)),
    UNIQUE NULLS NOT DISTINCT (tenant_id, kind, period_start)
);

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
ALTER TABLE email_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_outbox FORCE ROW LEVEL SECURITY;
ALTER TABLE reports ENABLE ROW LEVEL SECURITY;
ALTER TABLE reports FORCE ROW LEVEL SECURITY;

-- Tenant requests may enqueue work and outbox mail for their own tenant, and read reports.
CREATE POLICY tenant_isolation ON jobs TO platform_app
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY tenant_isolation ON email_outbox TO platform_app
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY tenant_isolation ON reports TO platform_app
    USING (tenant_id = app_current_tenant());
CREATE POLICY service_all ON jobs TO platform_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON email_outbox TO platform_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON reports TO platform_service USING (true) WITH CHECK (true);

GRANT SELECT, INSERT ON jobs, email_outbox TO platform_app;
GRANT SELECT ON reports TO platform_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON jobs, email_outbox, reports, cron_runs TO platform_service;
