-- Routers keep each tenant's plan limit (rate, burst) in their tenant cache. A tenant moving to
-- another plan already notifies (tenants trigger); a plan's own limits changing did not, so
-- routers enforced the old numbers until their cache entries expired. `{"plan": id}` on
-- tenant_changed asks every router to drop what it cached from that plan.
CREATE FUNCTION notify_plan_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tenant_changed', json_build_object('plan', NEW.id)::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER plans_notify AFTER UPDATE ON plans
    FOR EACH ROW
    WHEN (OLD.rate_limit_rps IS DISTINCT FROM NEW.rate_limit_rps
          OR OLD.rate_limit_burst IS DISTINCT FROM NEW.rate_limit_burst
          OR OLD.active IS DISTINCT FROM NEW.active)
    EXECUTE FUNCTION notify_plan_change();
