REVOKE UPDATE (outcome, tenant_id) ON stripe_events FROM platform_service;
DROP INDEX IF EXISTS donations_pending_no_intent_idx;
ALTER TABLE tenants DROP COLUMN IF EXISTS stripe_account_event_at;
