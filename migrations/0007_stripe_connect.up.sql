-- Stripe Connect bookkeeping: when the connected account's status was last set from an event,
-- so an older account.updated delivered late cannot overwrite a newer state.
ALTER TABLE tenants ADD COLUMN stripe_account_event_at timestamptz;

-- Donations still pending are reconciled against Stripe by the workers; those created without
-- a payment intent (Stripe was unreachable) are found through this index.
CREATE INDEX donations_pending_no_intent_idx ON donations (created_at)
    WHERE status = 'pending' AND stripe_payment_intent_id IS NULL AND stripe_invoice_id IS NULL;

-- The webhook handler records the event id first (deduplication) and its outcome after
-- applying it, in the same transaction.
GRANT UPDATE (outcome, tenant_id) ON stripe_events TO platform_service;
