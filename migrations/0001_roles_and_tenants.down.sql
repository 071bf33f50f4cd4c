DROP TABLE tenant_domains;
DROP TABLE tenant_subscriptions;
DROP TABLE tenants;
DROP TABLE plans;
DROP FUNCTION notify_tenant_change();
REVOKE ALL ON schema_migrations FROM platform_app, platform_service, platform_edge;
REVOKE USAGE ON SCHEMA public FROM platform_app, platform_service, platform_edge;
DROP FUNCTION app_current_tenant();
-- Roles are cluster-wide: another database of the cluster may still use them, in which case
-- they are kept (and reused by the next up migration).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['platform_app', 'platform_service', 'platform_edge'] LOOP
        BEGIN
            EXECUTE format('DROP ROLE IF EXISTS %I', r);
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'role % is still used elsewhere in the cluster; kept', r;
        END;
    END LOOP;
END
$$;
