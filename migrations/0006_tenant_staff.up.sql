-- Tenant staff accounts (owners and staff of one tenant), and their sessions.

CREATE TABLE tenant_users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email           text NOT NULL CHECK (email = lower(email) AND email LIKE '%_@_%'),
    display_name    text NOT NULL DEFAULT '',
    -- PHC string (argon2id).
    password_hash   text NOT NULL,
    role            text NOT NULL DEFAULT 'staff' CHECK (role IN ('owner', 'staff')),
    failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_until    timestamptz,
    last_login_at   timestamptz,
    disabled_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, email),
    UNIQUE (tenant_id, id)
);

-- A staff session can only belong to a staff member of the same tenant.
ALTER TABLE sessions ADD CONSTRAINT sessions_staff_fk
    FOREIGN KEY (tenant_id, staff_user_id) REFERENCES tenant_users (tenant_id, id) ON DELETE CASCADE;
ALTER TABLE sessions ADD CONSTRAINT sessions_staff_user_present
    CHECK (kind <> 'tenant_staff' OR staff_user_id IS NOT NULL);

ALTER TABLE tenant_users ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_users TO platform_app
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY service_all ON tenant_users TO platform_service USING (true) WITH CHECK (true);

GRANT SELECT, UPDATE ON tenant_users TO platform_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_users TO platform_service;
