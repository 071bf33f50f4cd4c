ALTER TABLE jobs RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
                        autovacuum_vacuum_cost_delay, autovacuum_analyze_scale_factor);
DROP TRIGGER IF EXISTS jobs_notify ON jobs;
DROP FUNCTION IF EXISTS jobs_notify();
DROP INDEX IF EXISTS jobs_runnable_system_idx;
DROP INDEX IF EXISTS jobs_runnable_tenant_idx;
