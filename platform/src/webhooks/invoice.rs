//! `invoice.*`: a recurring gift's payments; each paid invoice becomes a donation with its
//! receipt (and cancel link), a failed one marks the gift past due.

use payments::Event;
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::payment_intent::receipt;
use super::{Applied, Outcome};
use crate::error::AppError;
use crate::state::AppState;

/// The recurring gift an invoice or subscription belongs to, locked, on `account`'s tenant.
pub(super) async fn recurring_for(
    tx: &Transaction<'_>,
    subscription: &str,
    by_metadata: Uuid,
    account: &str,
) -> Result<Option<tokio_postgres::Row>, AppError> {
    Ok(tx
        .query_opt(
            "SELECT r.id, r.tenant_id, r.donor_id, r.fund, r.fee_basis_points, r.status,
                    r.current_period_end
             FROM recurring_donations r JOIN tenants t ON t.id = r.tenant_id
             WHERE (r.stripe_subscription_id = $1
                    OR (r.stripe_subscription_id IS NULL AND r.id = $2))
               AND t.stripe_account_id = $3
             FOR UPDATE OF r",
            &[&subscription, &by_metadata, &account],
        )
        .await?)
}

fn invoice_subscription(ev: &Event) -> (Option<&str>, Uuid) {
    let o = &ev.data.object;
    let sub = o["subscription"].as_str();
    let meta = o["subscription_details"]["metadata"]["recurring_donation_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(Uuid::nil());
    (sub, meta)
}

/// An invoice event's recurring gift, locked: (invoice id, subscription id, gift row).
async fn invoice_gift<'e>(
    tx: &Transaction<'_>,
    ev: &'e Event,
    account: &str,
) -> Result<Option<(&'e str, &'e str, Gift)>, AppError> {
    let (Some(invoice), (Some(sub), meta)) = (ev.str_field("id"), invoice_subscription(ev)) else {
        return Ok(None);
    };
    let Some(r) = recurring_for(tx, sub, meta, account).await? else {
        return Ok(None);
    };
    let gift = Gift {
        id: r.get(0),
        tenant: r.get(1),
        donor: r.get(2),
        fund: r.get(3),
        fee_basis_points: u32::try_from(r.get::<_, i32>(4)).unwrap_or(0),
    };
    Ok(Some((invoice, sub, gift)))
}

/// The columns of a recurring gift the invoice handlers use.
struct Gift {
    id: Uuid,
    tenant: Uuid,
    donor: Uuid,
    fund: String,
    fee_basis_points: u32,
}

pub(super) async fn invoice_paid(
    state: &AppState,
    tx: &Transaction<'_>,
    ev: &Event,
    account: &str,
) -> Result<Applied, AppError> {
    let Some((invoice, sub, g)) = invoice_gift(tx, ev, account).await? else {
        return Ok((Outcome::Ignored, None));
    };
    let (rid, tenant, donor, fund) = (g.id, g.tenant, g.donor, g.fund);
    let amount = ev.int_field("amount_paid").unwrap_or(0);
    let Some(currency) = ev.str_field("currency").map(str::to_ascii_lowercase) else {
        return Ok((Outcome::Ignored, Some(tenant)));
    };
    if amount <= 0 {
        // A zero invoice (trial, full credit) is not a gift.
        return Ok((Outcome::Ignored, Some(tenant)));
    }
    // What Stripe actually took, when the invoice says; else our rate on this gift.
    let fee = ev
        .int_field("application_fee_amount")
        .map(|f| f.clamp(0, amount))
        .unwrap_or_else(|| payments::platform_fee(amount, g.fee_basis_points));
    let paid_at = ev.data.object["status_transitions"]["paid_at"]
        .as_i64()
        .unwrap_or(ev.created);
    let row = tx
        .query_opt(
            "INSERT INTO donations (tenant_id, donor_id, recurring_donation_id, kind, amount_minor, currency,
                                    fee_minor, net_minor, fund, status, stripe_invoice_id,
                                    stripe_payment_intent_id, stripe_charge_id, succeeded_at)
             VALUES ($1, $2, $3, 'recurring', $4, $5, $6, $7, $8, 'succeeded', $9, $10, $11, to_timestamp($12))
             ON CONFLICT (stripe_invoice_id) DO UPDATE
                SET status = 'succeeded', succeeded_at = EXCLUDED.succeeded_at, failure_reason = NULL,
                    amount_minor = EXCLUDED.amount_minor, fee_minor = EXCLUDED.fee_minor,
                    net_minor = EXCLUDED.net_minor,
                    stripe_payment_intent_id = EXCLUDED.stripe_payment_intent_id,
                    stripe_charge_id = EXCLUDED.stripe_charge_id, updated_at = now()
                WHERE donations.status IN ('pending', 'failed')
             RETURNING id",
            &[
                &tenant,
                &donor,
                &rid,
                &amount,
                &currency,
                &fee,
                &(amount - fee),
                &fund,
                &invoice,
                &ev.str_field("payment_intent"),
                &ev.str_field("charge"),
                &(paid_at as f64),
            ],
        )
        .await?;
    let Some(row) = row else {
        return Ok((Outcome::Stale, Some(tenant)));
    };
    let donation: Uuid = row.get(0);
    tx.execute(
        "UPDATE recurring_donations SET stripe_subscription_id = COALESCE(stripe_subscription_id, $2),
                status = CASE WHEN status IN ('incomplete', 'past_due') THEN 'active' ELSE status END,
                updated_at = now()
         WHERE id = $1",
        &[&rid, &sub],
    )
    .await?;
    receipt(state, tx, donation, Some(rid)).await?;
    crate::metrics::donation_succeeded(&currency, amount);
    Ok((Outcome::Applied, Some(tenant)))
}

pub(super) async fn invoice_failed(
    tx: &Transaction<'_>,
    ev: &Event,
    account: &str,
) -> Result<Applied, AppError> {
    let Some((invoice, _, g)) = invoice_gift(tx, ev, account).await? else {
        return Ok((Outcome::Ignored, None));
    };
    let (rid, tenant, donor, fund) = (g.id, g.tenant, g.donor, g.fund);
    let amount = ev.int_field("amount_due").unwrap_or(0);
    let currency = ev
        .str_field("currency")
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if amount <= 0 || currency.len() != 3 {
        return Ok((Outcome::Ignored, Some(tenant)));
    }
    let fee = payments::platform_fee(amount, g.fee_basis_points);
    let reason = "recurring payment failed";
    // A failed attempt is visible to staff; a later invoice.paid for the same invoice turns it
    // into a success, and a failure arriving after the success changes nothing.
    tx.execute(
        "INSERT INTO donations (tenant_id, donor_id, recurring_donation_id, kind, amount_minor, currency,
                                fee_minor, net_minor, fund, status, stripe_invoice_id, failure_reason)
         VALUES ($1, $2, $3, 'recurring', $4, $5, $6, $7, $8, 'failed', $9, $10)
         ON CONFLICT (stripe_invoice_id) DO NOTHING",
        &[&tenant, &donor, &rid, &amount, &currency, &fee, &(amount - fee), &fund, &invoice, &reason],
    )
    .await?;
    tx.execute(
        "UPDATE recurring_donations SET status = 'past_due', updated_at = now()
             WHERE id = $1 AND status = 'active'",
        &[&rid],
    )
    .await?;
    let attempt = ev.int_field("attempt_count").unwrap_or(1);
    tx.execute(
        "INSERT INTO email_outbox (tenant_id, idempotency_key, template, to_address, payload)
         SELECT r.tenant_id, 'recurring_failed:' || $2::text || ':' || $3::text, 'recurring_failed', dn.email,
                jsonb_build_object('recurring_donation_id', r.id, 'donor_name', dn.name,
                                   'amount_minor', $4::bigint, 'currency', $5::text, 'fund', r.fund,
                                   'tenant_name', t.name, 'tenant_slug', t.slug,
                                   'hosted_invoice_url', $6::text)
         FROM recurring_donations r JOIN donors dn ON dn.id = r.donor_id JOIN tenants t ON t.id = r.tenant_id
         WHERE r.id = $1
         ON CONFLICT (idempotency_key) DO NOTHING",
        &[&rid, &invoice, &attempt.to_string(), &amount, &currency, &ev.str_field("hosted_invoice_url")],
    )
    .await?;
    crate::metrics::donation_status("failed", &currency);
    Ok((Outcome::Applied, Some(tenant)))
}
