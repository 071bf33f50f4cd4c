-- Sessions end when the account does, and the tenant role loses the columns it never needs.
--
-- 1. Disabling an account, changing its role or password, or deleting it deletes its sessions
--    in the same transaction, whoever makes the change (the API, the CLI or an operator's SQL).
--    The function runs as the caller (no SECURITY DEFINER): the platform's roles already may
--    delete the sessions they can see, and the row-level policies still apply.
CREATE FUNCTION end_sessions_of_changed_admin() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.disabled_at IS DISTINCT FROM OLD.disabled_at AND NEW.disabled_at IS NULL THEN
        RETURN NEW; -- re-enabling opens nothing
    END IF;
    DELETE FROM sessions WHERE admin_user_id = NEW.id;
    RETURN NEW;
END $$;

CREATE TRIGGER admin_users_end_sessions
    AFTER UPDATE OF disabled_at, role, password_hash ON admin_users
    FOR EACH ROW
    WHEN (OLD.disabled_at IS DISTINCT FROM NEW.disabled_at
          OR OLD.role IS DISTINCT FROM NEW.role
          OR OLD.password_hash IS DISTINCT FROM NEW.password_hash)
    EXECUTE FUNCTION end_sessions_of_changed_admin();

CREATE FUNCTION end_sessions_of_changed_staff() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.disabled_at IS DISTINCT FROM OLD.disabled_at AND NEW.disabled_at IS NULL THEN
        RETURN NEW;
    END IF;
    DELETE FROM sessions WHERE staff_user_id = NEW.id AND tenant_id = NEW.tenant_id;
    RETURN NEW;
END $$;

CREATE TRIGGER tenant_users_end_sessions
    AFTER UPDATE OF disabled_at, role, password_hash ON tenant_users
    FOR EACH ROW
    WHEN (OLD.disabled_at IS DISTINCT FROM NEW.disabled_at
          OR OLD.role IS DISTINCT FROM NEW.role
          OR OLD.password_hash IS DISTINCT FROM NEW.password_hash)
    EXECUTE FUNCTION end_sessions_of_changed_staff();

-- (Deleting an account already deletes its sessions: both foreign keys cascade.)

-- 2. The tenant role (platform_app) may change its own tenant's name and settings, never its
--    status, plan or payment account: those are the platform's decisions (platform_service).
REVOKE UPDATE ON tenants FROM platform_app;
GRANT UPDATE (name, settings, updated_at) ON tenants TO platform_app;
