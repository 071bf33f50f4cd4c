ALTER TABLE sessions DROP CONSTRAINT sessions_staff_user_present;
ALTER TABLE sessions DROP CONSTRAINT sessions_staff_fk;
DROP TABLE tenant_users;
