//! `payment_intent.*`: one-time gifts succeed, fail or are canceled; successes queue the receipt
//! in the same statement ([`payments::ledger::MARK_SUCCEEDED`]).

use payments::Event;
use tenant_config::db::StatementCache;
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::{metadata_uuid, Applied, Outcome};
use crate::error::AppError;
use crate::state::AppState;

const DONATION_FOR_INTENT: &str = "SELECT d.id, d.tenant_id, d.status, d.amount_minor, d.currency
     FROM donations d JOIN tenants t ON t.id = d.tenant_id
     WHERE (d.stripe_payment_intent_id = $1
            OR (d.stripe_payment_intent_id IS NULL AND d.id = $2))
       AND t.stripe_account_id = $3
     FOR UPDATE OF d";

/// The success and its receipt in one statement, shared with the workers' reconciliation.
const INTENT_SUCCEEDED: &str = payments::ledger::MARK_SUCCEEDED;

/// The donation a payment intent belongs to, locked, on `account`'s tenant only.
pub(super) async fn donation_for_intent(
    stmts: &StatementCache,
    tx: &Transaction<'_>,
    pi: &str,
    by_metadata: Uuid,
    account: &str,
) -> Result<Option<tokio_postgres::Row>, AppError> {
    let st = stmts.get(tx, DONATION_FOR_INTENT).await?;
    Ok(tx.query_opt(&st, &[&pi, &by_metadata, &account]).await?)
}

pub(super) async fn intent_succeeded(
    stmts: &StatementCache,
    tx: &Transaction<'_>,
    ev: &Event,
    account: &str,
) -> Result<Applied, AppError> {
    let Some(pi) = ev.str_field("id") else {
        return Ok((Outcome::Ignored, None));
    };
    let Some(row) =
        donation_for_intent(stmts, tx, pi, metadata_uuid(ev, "donation_id"), account).await?
    else {
        // Subscription invoices' intents are handled through invoice.paid.
        return Ok((Outcome::Ignored, None));
    };
    let (id, tenant, status): (Uuid, Uuid, String) = (row.get(0), row.get(1), row.get(2));
    let (amount, currency): (i64, String) = (row.get(3), row.get(4));
    if let Some(outcome) = success_blocked(ev, id, &status, amount, &currency) {
        return Ok((outcome, Some(tenant)));
    }
    let charge = ev.str_field("latest_charge").map(str::to_owned);
    let st = stmts.get(tx, INTENT_SUCCEEDED).await?;
    tx.execute(
        &st,
        &[
            &[id].as_slice(),
            &[ev.created as f64].as_slice(),
            &[pi].as_slice(),
            &[charge].as_slice(),
        ],
    )
    .await?;
    crate::metrics::donation_succeeded(&currency, amount);
    Ok((Outcome::Applied, Some(tenant)))
}

/// Whether a success may be applied to a locked donation: `None` to apply it, else the outcome
/// that leaves the donation alone — `Ignored` (logged) when the intent's amount or currency
/// differs, `Stale` once the donation is past waiting for payment. Shared with the group path.
pub(crate) fn success_blocked(
    ev: &Event,
    donation: Uuid,
    status: &str,
    amount: i64,
    currency: &str,
) -> Option<Outcome> {
    let paid = ev.int_field("amount_received").or(ev.int_field("amount"));
    if paid != Some(amount) || ev.str_field("currency") != Some(currency) {
        tracing::error!(donation = %donation, "payment intent amount or currency differs from the donation; not applied");
        return Some(Outcome::Ignored);
    }
    if !matches!(status, "pending" | "failed" | "canceled") {
        return Some(Outcome::Stale);
    }
    None
}

pub(super) async fn intent_moved(
    stmts: &StatementCache,
    tx: &Transaction<'_>,
    ev: &Event,
    account: &str,
    to: &'static str,
    from: &[&str],
    reason: Option<&str>,
) -> Result<Applied, AppError> {
    let Some(pi) = ev.str_field("id") else {
        return Ok((Outcome::Ignored, None));
    };
    let Some(row) =
        donation_for_intent(stmts, tx, pi, metadata_uuid(ev, "donation_id"), account).await?
    else {
        return Ok((Outcome::Ignored, None));
    };
    let (id, tenant, status): (Uuid, Uuid, String) = (row.get(0), row.get(1), row.get(2));
    if !from.contains(&status.as_str()) {
        return Ok((Outcome::Stale, Some(tenant)));
    }
    tx.execute(
        "UPDATE donations SET status = $2, failure_reason = left($3, 500),
                stripe_payment_intent_id = $4, updated_at = now() WHERE id = $1",
        &[&id, &to, &reason, &pi],
    )
    .await?;
    let currency: String = row.get(4);
    crate::metrics::donation_status(to, &currency);
    Ok((Outcome::Applied, Some(tenant)))
}

/// Queues the donor's receipt in the same transaction as the payment's success. The key makes
/// a second success (or a redelivered event) queue nothing.
pub(super) async fn receipt(
    state: &AppState,
    tx: &Transaction<'_>,
    donation: Uuid,
    recurring: Option<Uuid>,
) -> Result<(), AppError> {
    let base = state.domains.rules.base().to_owned();
    let cancel_url = match recurring {
        Some(r) => {
            let slug: String = tx
                .query_one(
                    "SELECT t.slug FROM donations d JOIN tenants t ON t.id = d.tenant_id WHERE d.id = $1",
                    &[&donation],
                )
                .await?
                .get(0);
            let host = format!("{slug}.{base}");
            Some(crate::giving::cancel_url(
                state,
                &host,
                r,
                &crate::giving::cancel_token(state, r),
            ))
        }
        None => None,
    };
    tx.execute(payments::ledger::QUEUE_RECEIPT, &[&donation, &cancel_url])
        .await?;
    Ok(())
}
