-- Platform admins, login sessions (admin and tenant staff) and the audit log.

CREATE TABLE admin_users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email           text NOT NULL CHECK (email = lower(email) AND email LIKE '%_@_%'),
    display_name    text NOT NULL DEFAULT '',
    -- PHC string (argon2id); never the password.
    password_hash   text NOT NULL,
    role            text NOT NULL DEFAULT 'admin' CHECK (role IN ('owner', 'admin', 'viewer')),
    failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_until    timestamptz,
    last_login_at   timestamptz,
    disabled_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX admin_users_email_idx ON admin_users (email);

CREATE TABLE sessions (
    -- SHA-256 of the cookie token: a leaked table does not yield usable sessions.
    token_hash          bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    kind                text NOT NULL CHECK (kind IN ('admin', 'tenant_staff')),
    admin_user_id       uuid REFERENCES admin_users (id) ON DELETE CASCADE,
    tenant_id           uuid REFERENCES tenants (id) ON DELETE CASCADE,
    -- Staff user id; the staff table arrives with the tenant-accounts migration.
    staff_user_id       uuid,
    csrf_token_hash     bytea NOT NULL CHECK (length(csrf_token_hash) = 32),
    ip                  inet,
    user_agent          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_seen_at        timestamptz NOT NULL DEFAULT now(),
    idle_expires_at     timestamptz NOT NULL,
    absolute_expires_at timestamptz NOT NULL,
    CHECK ((kind = 'admin' AND admin_user_id IS NOT NULL AND tenant_id IS NULL)
        OR (kind = 'tenant_staff' AND tenant_id IS NOT NULL AND admin_user_id IS NULL)),
    CHECK (idle_expires_at <= absolute_expires_at)
);
-- cleanup-sessions deletes by expiry.
CREATE INDEX sessions_absolute_expiry_idx ON sessions (absolute_expires_at);
CREATE INDEX sessions_idle_expiry_idx ON sessions (idle_expires_at);
CREATE INDEX sessions_admin_user_idx ON sessions (admin_user_id) WHERE admin_user_id IS NOT NULL;
CREATE INDEX sessions_tenant_idx ON sessions (tenant_id) WHERE tenant_id IS NOT NULL;

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor_type  text NOT NULL CHECK (actor_type IN ('admin', 'tenant_staff', 'system', 'stripe')),
    actor_id    text,
    tenant_id   uuid REFERENCES tenants (id) ON DELETE SET NULL,
    action      text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.]*$'),
    target_type text,
    target_id   text,
    ip          inet,
    user_agent  text,
    request_id  text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_occurred_idx ON audit_log (occurred_at DESC);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, occurred_at DESC) WHERE tenant_id IS NOT NULL;

ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON sessions TO platform_app
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY service_all ON sessions TO platform_service USING (true) WITH CHECK (true);
CREATE POLICY tenant_isolation ON audit_log TO platform_app
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY service_all ON audit_log TO platform_service USING (true) WITH CHECK (true);

GRANT SELECT, INSERT, UPDATE ON admin_users TO platform_service;
GRANT SELECT, INSERT, UPDATE, DELETE ON sessions TO platform_app, platform_service;
-- The audit log is append-only for every application role.
GRANT SELECT, INSERT ON audit_log TO platform_app, platform_service;
