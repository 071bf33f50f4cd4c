//! `charge.refunded` and `charge.dispute.created`: refunds take the largest cumulative amount
//! seen; a dispute marks the donation.

use payments::Event;
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::{Applied, Outcome};
use crate::error::AppError;

pub(super) async fn charge_refunded(
    tx: &Transaction<'_>,
    ev: &Event,
    account: &str,
) -> Result<Applied, AppError> {
    let charge = ev.str_field("id").unwrap_or_default();
    let pi = ev.str_field("payment_intent").unwrap_or_default();
    let refunded = ev.int_field("amount_refunded").unwrap_or(0);
    let row = tx
        .query_opt(
            "SELECT d.id, d.tenant_id, d.status, d.amount_minor, d.refunded_minor, d.currency
             FROM donations d JOIN tenants t ON t.id = d.tenant_id
             WHERE (d.stripe_charge_id = $1 OR d.stripe_payment_intent_id = $2)
               AND t.stripe_account_id = $3
             FOR UPDATE OF d",
            &[&charge, &pi, &account],
        )
        .await?;
    let Some(row) = row else {
        return Ok((Outcome::Ignored, None));
    };
    let (id, tenant, status, amount, before): (Uuid, Uuid, String, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    if !matches!(
        status.as_str(),
        "succeeded" | "partially_refunded" | "refunded" | "disputed"
    ) {
        return Ok((Outcome::Ignored, Some(tenant)));
    }
    // Cumulative amounts make out-of-order refund events converge on the largest.
    let after = refunded.clamp(0, amount).max(before);
    if after == before {
        return Ok((Outcome::Stale, Some(tenant)));
    }
    let new_status = match status.as_str() {
        "disputed" => "disputed",
        _ if after >= amount => "refunded",
        _ => "partially_refunded",
    };
    tx.execute(
        "UPDATE donations SET refunded_minor = $2, status = $3, updated_at = now() WHERE id = $1",
        &[&id, &after, &new_status],
    )
    .await?;
    let currency: String = row.get(5);
    crate::metrics::donation_status(new_status, &currency);
    Ok((Outcome::Applied, Some(tenant)))
}

pub(super) async fn disputed(
    tx: &Transaction<'_>,
    ev: &Event,
    account: &str,
) -> Result<Applied, AppError> {
    let charge = ev.str_field("charge").unwrap_or_default();
    let pi = ev.str_field("payment_intent").unwrap_or_default();
    let row = tx
        .query_opt(
            "UPDATE donations d SET status = 'disputed', updated_at = now()
             FROM tenants t
             WHERE t.id = d.tenant_id AND t.stripe_account_id = $3
               AND (d.stripe_charge_id = $1 OR d.stripe_payment_intent_id = $2)
               AND d.status IN ('succeeded', 'partially_refunded', 'refunded')
             RETURNING d.tenant_id, d.currency",
            &[&charge, &pi, &account],
        )
        .await?;
    match row {
        Some(r) => {
            let currency: String = r.get(1);
            crate::metrics::donation_status("disputed", &currency);
            Ok((Outcome::Applied, Some(r.get(0))))
        }
        None => Ok((Outcome::Ignored, None)),
    }
}
