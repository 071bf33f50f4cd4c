REVOKE UPDATE (name, settings, updated_at) ON tenants FROM platform_app;
GRANT UPDATE ON tenants TO platform_app;

DROP TRIGGER tenant_users_end_sessions ON tenant_users;
DROP FUNCTION end_sessions_of_changed_staff();
DROP TRIGGER admin_users_end_sessions ON admin_users;
DROP FUNCTION end_sessions_of_changed_admin();
