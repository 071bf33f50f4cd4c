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

-- A payment's success and its receipt, in one place for the webhook below and the workers'
-- reconciliation (payments::ledger::MARK_SUCCEEDED calls it). Runs with the caller's rights.
CREATE FUNCTION mark_donation_succeeded(p_donation uuid, p_at timestamptz, p_intent text, p_charge text)
    RETURNS void LANGUAGE sql AS $$
    WITH d AS (
        UPDATE donations SET status = 'succeeded', succeeded_at = p_at,
               stripe_payment_intent_id = p_intent,
               stripe_charge_id = COALESCE(p_charge, stripe_charge_id),
               failure_reason = NULL, updated_at = now()
        WHERE id = p_donation
        RETURNING id, tenant_id, donor_id, amount_minor, currency, fund, kind, succeeded_at)
    INSERT INTO email_outbox (tenant_id, idempotency_key, template, to_address, payload)
    SELECT d.tenant_id, 'receipt:' || d.id::text, 'donation_receipt', dn.email,
           jsonb_build_object('donation_id', d.id, 'donor_name', dn.name,
                              'amount_minor', d.amount_minor, 'currency', d.currency,
                              'fund', d.fund, 'kind', d.kind, 'tenant_name', t.name,
                              'tenant_slug', t.slug, 'succeeded_at', d.succeeded_at,
                              'cancel_url', NULL)
    FROM d JOIN donors dn ON dn.id = d.donor_id JOIN tenants t ON t.id = d.tenant_id
    ON CONFLICT (idempotency_key) DO NOTHING
$$;

-- `payment_intent.succeeded`, the bulk of all webhook traffic, in one statement: one round trip
-- and one implicit transaction instead of BEGIN, scope, lookup, update, record, COMMIT. Same rules
-- as the general path in platform/src/webhooks.rs:
-- - the donation is found by intent id (or, before the intent id is stored, by the id in the
--   metadata) on the tenant that owns the event's connected account only, and locked;
-- - amount and currency must match the donation ('mismatch', recorded as ignored);
-- - only pending, failed or canceled gifts move to succeeded ('stale' otherwise);
-- - the event id is recorded with the outcome; a redelivery (or a concurrent duplicate, which
--   waits on the donation lock or on the id's insertion) finds it and changes nothing.
-- The scope is the same as the general path's: role platform_service for this transaction only
-- (callers must be members of it, as the platform's login role is).
CREATE FUNCTION webhook_intent_succeeded(
    p_event text, p_type text, p_account text, p_livemode boolean, p_created timestamptz,
    p_payload jsonb, p_intent text, p_donation uuid, p_amount bigint, p_currency text,
    p_charge text)
    RETURNS TABLE (outcome text, tenant uuid, currency text, amount bigint)
    LANGUAGE plpgsql AS $$
DECLARE
    d record;
    result text;
BEGIN
    PERFORM set_config('role', 'platform_service', true);
    IF p_intent IS NOT NULL THEN
        SELECT dn.id, dn.tenant_id, dn.status, dn.amount_minor, dn.currency INTO d
        FROM donations dn JOIN tenants t ON t.id = dn.tenant_id
        WHERE (dn.stripe_payment_intent_id = p_intent
               OR (dn.stripe_payment_intent_id IS NULL AND dn.id = p_donation))
          AND t.stripe_account_id = p_account
        FOR UPDATE OF dn;
    END IF;
    IF d.id IS NULL THEN
        result := 'ignored';
    ELSIF p_amount IS DISTINCT FROM d.amount_minor OR p_currency IS DISTINCT FROM d.currency THEN
        result := 'mismatch';
    ELSIF d.status NOT IN ('pending', 'failed', 'canceled') THEN
        result := 'stale';
    ELSE
        result := 'applied';
    END IF;
    INSERT INTO stripe_events (id, event_type, account, livemode, stripe_created_at, outcome,
                               payload, tenant_id)
    VALUES (p_event, p_type, p_account, p_livemode, p_created,
            CASE result WHEN 'mismatch' THEN 'ignored' ELSE result END, p_payload, d.tenant_id)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'duplicate'::text, d.tenant_id, d.currency, d.amount_minor;
        RETURN;
    END IF;
    IF result = 'applied' THEN
        PERFORM mark_donation_succeeded(d.id, p_created, p_intent, p_charge);
    END IF;
    RETURN QUERY SELECT result, d.tenant_id, d.currency, d.amount_minor;
END
$$;
