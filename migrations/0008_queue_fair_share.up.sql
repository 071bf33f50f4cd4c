-- Queue support for the workers: a per-tenant index for fair-share fetching, a head index for
-- jobs that belong to no tenant, a wake-up notification on insert, and vacuum settings that
-- keep the head of the queue free of dead tuples under sustained load.

-- Fair share: the runnable jobs of one tenant, in the order they should run.
CREATE INDEX jobs_runnable_tenant_idx ON jobs (tenant_id, priority, run_at, id)
    WHERE state IN ('available', 'retryable') AND tenant_id IS NOT NULL;
-- Platform-wide jobs (no tenant).
CREATE INDEX jobs_runnable_system_idx ON jobs (priority, run_at, id)
    WHERE state IN ('available', 'retryable') AND tenant_id IS NULL;

-- One notification per inserting statement; delivered at commit, so a consumer never wakes for
-- a job it cannot see yet. Consumers also poll, so a lost notification only delays work.
CREATE FUNCTION jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobs_available', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER jobs_notify AFTER INSERT ON jobs FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify();

-- Every claim and completion rewrites a row: vacuum this table early and without throttling.
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
                      autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0.02);

