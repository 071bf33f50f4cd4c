//! SQL shared by every path that records a payment's outcome (the webhook handler and the
//! workers' reconciliation), so a success is recorded the same way whichever sees it first.

/// The receipt e-mail for each donation row `d` of `$source` (a table or CTE, joined to its donor
/// and tenant), with `$cancel_url` as the payload's cancel link. Written once, used by both
/// statements below, so every path queues the same receipt.
macro_rules! queue_receipts {
    ($source:literal, $cancel_url:literal) => {
        concat!(
            "INSERT INTO email_outbox (tenant_id, idempotency_key, template, to_address, payload)
             SELECT d.tenant_id, 'receipt:' || d.id::text, 'donation_receipt', dn.email,
                    jsonb_build_object('donation_id', d.id, 'donor_name', dn.name,
                                       'amount_minor', d.amount_minor, 'currency', d.currency,
                                       'fund', d.fund, 'kind', d.kind, 'tenant_name', t.name,
                                       'tenant_slug', t.slug, 'succeeded_at', d.succeeded_at,
                                       'cancel_url', ",
            $cancel_url,
            ")
             FROM ",
            $source,
            " JOIN donors dn ON dn.id = d.donor_id JOIN tenants t ON t.id = d.tenant_id "
        )
    };
}

/// Marks donations succeeded and queues each one's receipt in the same statement. Parameters are
/// parallel arrays — donation ids `$1`, unix times `$2`, payment intents `$3`, charges `$4`
/// (null keeps the stored one) — so one statement records one success or a whole group of
/// webhook deliveries. The receipt's key (`receipt:<donation id>`) makes a second success
/// queue nothing. Callers lock the rows and check their status first.
pub const MARK_SUCCEEDED: &str = concat!(
    "WITH d AS (
        UPDATE donations SET status = 'succeeded', succeeded_at = to_timestamp(b.at),
               stripe_payment_intent_id = b.pi,
               stripe_charge_id = COALESCE(b.charge, donations.stripe_charge_id),
               failure_reason = NULL, updated_at = now()
        FROM unnest($1::uuid[], $2::float8[], $3::text[], $4::text[]) AS b(id, at, pi, charge)
        WHERE donations.id = b.id
        RETURNING donations.id, donations.tenant_id, donations.donor_id, donations.amount_minor,
                  donations.currency, donations.fund, donations.kind, donations.succeeded_at) ",
    queue_receipts!("d", "NULL"),
    "ON CONFLICT (idempotency_key) DO NOTHING"
);

/// Queues the receipt of donation `$1` (already succeeded) with cancel link `$2` (text, may be
/// null): recurring gifts' invoices. The key makes a repeat queue nothing.
pub const QUEUE_RECEIPT: &str = concat!(
    queue_receipts!("donations d", "$2::text"),
    "WHERE d.id = $1 ON CONFLICT (idempotency_key) DO NOTHING"
);
