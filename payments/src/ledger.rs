//! SQL shared by every path that records a payment's outcome (the webhook handler and the
//! workers' reconciliation), so a success is recorded the same way whichever sees it first.

/// Marks donation `$1` succeeded (at unix time `$2`, with payment intent `$3` and charge `$4`)
/// and queues its receipt in the same statement. The receipt's key (`receipt:<donation id>`)
/// makes a second success queue nothing. Callers lock the row and check its status first.
pub const MARK_SUCCEEDED: &str = "WITH d AS (
        UPDATE donations SET status = 'succeeded', succeeded_at = to_timestamp($2),
               stripe_payment_intent_id = $3, stripe_charge_id = COALESCE($4, stripe_charge_id),
               failure_reason = NULL, updated_at = now()
        WHERE id = $1
        RETURNING id, tenant_id, donor_id, amount_minor, currency, fund, kind, succeeded_at)
     INSERT INTO email_outbox (tenant_id, idempotency_key, template, to_address, payload)
     SELECT d.tenant_id, 'receipt:' || d.id::text, 'donation_receipt', dn.email,
            jsonb_build_object('donation_id', d.id, 'donor_name', dn.name,
                               'amount_minor', d.amount_minor, 'currency', d.currency,
                               'fund', d.fund, 'kind', d.kind, 'tenant_name', t.name,
                               'tenant_slug', t.slug, 'succeeded_at', d.succeeded_at,
                               'cancel_url', NULL)
     FROM d JOIN donors dn ON dn.id = d.donor_id JOIN tenants t ON t.id = d.tenant_id
     ON CONFLICT (idempotency_key) DO NOTHING";

/// Maps Stripe's subscription statuses onto `recurring_donations.status`.
pub fn recurring_status(stripe: &str) -> &'static str {
    match stripe {
        "active" | "trialing" => "active",
        "past_due" | "unpaid" | "paused" => "past_due",
        "canceled" => "canceled",
        "incomplete_expired" => "incomplete_expired",
        _ => "incomplete",
    }
}
