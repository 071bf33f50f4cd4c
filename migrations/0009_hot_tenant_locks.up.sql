-- Webhooks for one busy tenant serialised on its tenants row.
--
-- Every receipt queued (email_outbox) and every Stripe event recorded (stripe_events) ran a
-- foreign-key check that takes FOR KEY SHARE on the tenant's row. With many deliveries for the
-- same tenant in flight, those locks pile up on one tuple: each new locker creates a MultiXact
-- holding all current lockers and logs a row lock, twice per event. ops/bench/webhooks measured it
-- (docs/benchmarks.md).
--
-- Both tables are written only with a tenant_id read from an existing row in the same statement
-- (the donation, the recurring gift, the tenant itself for reports), and the platform never
-- deletes tenants (they are suspended or cancelled; donations.tenant_id is ON DELETE RESTRICT
-- anyway). Neither table's tenant_id grants access: RLS compares it with the transaction's
-- tenant. So the two checks guarded against nothing that can happen, at the price of the hottest
-- lock in the system.
ALTER TABLE email_outbox DROP CONSTRAINT email_outbox_tenant_id_fkey;
ALTER TABLE stripe_events DROP CONSTRAINT stripe_events_tenant_id_fkey;
