-- Login users for the three services, as members of the NOLOGIN roles the migrations create.
-- Idempotent: run after every `migrate up`. Passwords are set separately (never in this file).
--
--   platform_web      the platform service. NOINHERIT: it has no privileges until a
--                     transaction picks platform_app (one tenant) or platform_service.
--   platform_router   the router: platform_edge's privileges (routing data, ACME state).
--   platform_workers  background jobs: platform_service's privileges.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'platform_web') THEN
        CREATE ROLE platform_web LOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'platform_router') THEN
        CREATE ROLE platform_router LOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'platform_workers') THEN
        CREATE ROLE platform_workers LOGIN;
    END IF;
END
$$;
GRANT platform_app, platform_service TO platform_web;
GRANT platform_edge TO platform_router;
GRANT platform_service TO platform_workers;
