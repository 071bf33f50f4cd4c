//! `process-donations`: reconciles what webhooks may have missed.
//!
//! - One-time gifts still `pending` an hour after creation: their PaymentIntent is read from the
//!   tenant's connected account. `succeeded` is recorded exactly as the webhook would
//!   ([`payments::ledger::MARK_SUCCEEDED`], receipt included); `canceled` is recorded; intents
//!   still waiting for the donor after 24 hours are abandoned: cancelled at Stripe (idempotency
//!   key `abandon:<donation id>`) and marked `canceled`. (No `cancellation_reason` is sent: it
//!   is informational, and the emulator the tests use refuses it.)
//! - Gifts that never reached Stripe (no intent id) and are a day old are marked `failed`.
//! - Recurring gifts in `incomplete` or `past_due` take the subscription's current status.
//!
//! Every step re-checks the row's status under a row lock, so it is idempotent and safe beside
//! webhooks arriving at the same moment.

use payments::client::{PaymentIntent, Subscription};
use payments::Opts;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::context::Ctx;

/// Pending gifts younger than this are left to their webhooks.
const PENDING_AFTER: &str = "1 hour";
/// Intents still waiting for the donor after this are abandoned.
const ABANDON_AFTER_HOURS: i64 = 24;

/// Runs the reconciliation; counts what changed.
pub async fn run(ctx: &Ctx) -> Result<Value, String> {
    let conn = ctx.db.get().await.map_err(|e| e.to_string())?;
    let never_sent = conn
        .execute(
            "UPDATE donations SET status = 'failed', updated_at = now(),
                    failure_reason = 'never reached Stripe (process stopped before creating the payment)'
             WHERE status = 'pending' AND stripe_payment_intent_id IS NULL AND stripe_invoice_id IS NULL
               AND created_at < now() - interval '24 hours'",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let Some(stripe) = ctx.stripe.clone() else {
        return Ok(json!({"never_reached_stripe": never_sent, "stripe": "not configured"}));
    };
    let pending = conn
        .query(
            &format!(
                "SELECT d.id, d.stripe_payment_intent_id, t.stripe_account_id,
                        d.created_at < now() - make_interval(hours => {ABANDON_AFTER_HOURS}::int)
                 FROM donations d JOIN tenants t ON t.id = d.tenant_id
                 WHERE d.status = 'pending' AND d.stripe_payment_intent_id IS NOT NULL
                   AND t.stripe_account_id IS NOT NULL
                   AND d.created_at < now() - interval '{PENDING_AFTER}'
                 ORDER BY d.created_at LIMIT 1000"
            ),
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    drop(conn);
    let (mut succeeded, mut canceled, mut abandoned, mut unchanged, mut errors) = (0, 0, 0, 0, 0);
    for r in &pending {
        let (id, pi, account, old): (Uuid, String, String, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let opts = Opts {
            account: Some(&account),
            idempotency_key: None,
        };
        let intent: PaymentIntent = match stripe.get(&format!("payment_intents/{pi}"), opts).await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(donation = %id, error = %e, "could not read payment intent");
                errors += 1;
                continue;
            }
        };
        let waiting = matches!(
            intent.status.as_str(),
            "requires_payment_method" | "requires_confirmation" | "requires_action"
        );
        let change = match intent.status.as_str() {
            "succeeded" => record(ctx, id, Some(&intent), "succeeded")
                .await
                .map(|c| c.then_some(Change::Succeeded)),
            "canceled" => record(ctx, id, None, "canceled")
                .await
                .map(|c| c.then_some(Change::Canceled)),
            _ if waiting && old => {
                let key = format!("abandon:{id}");
                let cancel: Result<Value, _> = stripe
                    .post(
                        &format!("payment_intents/{pi}/cancel"),
                        &payments::Form::new(),
                        Opts {
                            account: Some(&account),
                            idempotency_key: Some(&key),
                        },
                    )
                    .await;
                match cancel {
                    Ok(_) => record(ctx, id, None, "canceled")
                        .await
                        .map(|c| c.then_some(Change::Abandoned)),
                    Err(e) => Err(e.to_string()),
                }
            }
            _ => Ok(None),
        };
        match change {
            Ok(Some(Change::Succeeded)) => succeeded += 1,
            Ok(Some(Change::Canceled)) => canceled += 1,
            Ok(Some(Change::Abandoned)) => abandoned += 1,
            Ok(None) => unchanged += 1,
            Err(e) => {
                tracing::warn!(donation = %id, error = %e, "reconciliation step failed");
                errors += 1;
            }
        }
    }
    let recurring = sync_recurring(ctx, &stripe).await?;
    Ok(json!({
        "checked": pending.len(), "succeeded": succeeded, "canceled": canceled,
        "abandoned": abandoned, "unchanged": unchanged, "errors": errors,
        "never_reached_stripe": never_sent, "recurring_updated": recurring,
    }))
}

enum Change {
    Succeeded,
    Canceled,
    Abandoned,
}

/// Applies a terminal state if the donation is still pending; returns whether it changed.
async fn record(
    ctx: &Ctx,
    id: Uuid,
    intent: Option<&PaymentIntent>,
    to: &str,
) -> Result<bool, String> {
    let mut conn = ctx.db.get().await.map_err(|e| e.to_string())?;
    let tx = conn.transaction().await.map_err(|e| e.to_string())?;
    let row = tx
        .query_opt(
            "SELECT status, amount_minor, currency FROM donations WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(|e| e.to_string())?;
    let Some(row) = row else { return Ok(false) };
    if row.get::<_, String>(0) != "pending" {
        return Ok(false);
    }
    match intent {
        Some(pi) => {
            if pi.amount != row.get::<_, i64>(1) || pi.currency != row.get::<_, String>(2) {
                return Err(format!(
                    "payment intent {} does not match donation {id}",
                    pi.id
                ));
            }
            let now = chrono::Utc::now().timestamp() as f64;
            tx.execute(
                payments::ledger::MARK_SUCCEEDED,
                // One-element arrays: the statement records groups as well.
                &[
                    &[id].as_slice(),
                    &[now].as_slice(),
                    &[pi.id.as_str()].as_slice(),
                    &[pi.charge_id()].as_slice(),
                ],
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        None => {
            tx.execute(
                "UPDATE donations SET status = $2, updated_at = now() WHERE id = $1",
                &[&id, &to],
            )
            .await
            .map_err(|e| e.to_string())?;
        }
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(true)
}

async fn sync_recurring(ctx: &Ctx, stripe: &payments::StripeClient) -> Result<u64, String> {
    let conn = ctx.db.get().await.map_err(|e| e.to_string())?;
    let rows = conn
        .query(
            "SELECT r.id, r.stripe_subscription_id, t.stripe_account_id, r.status
             FROM recurring_donations r JOIN tenants t ON t.id = r.tenant_id
             WHERE r.status IN ('incomplete', 'past_due') AND r.stripe_subscription_id IS NOT NULL
               AND t.stripe_account_id IS NOT NULL
             ORDER BY r.updated_at LIMIT 1000",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut updated = 0;
    for r in &rows {
        let (id, sub, account, old): (Uuid, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let s: Subscription = match stripe
            .get(
                &format!("subscriptions/{sub}"),
                Opts {
                    account: Some(&account),
                    idempotency_key: None,
                },
            )
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(recurring = %id, error = %e, "could not read subscription");
                continue;
            }
        };
        let status = tenant_config::RecurringStatus::from_stripe(&s.status).as_str();
        if status != old {
            updated += conn
                .execute(
                    "UPDATE recurring_donations SET status = $2, updated_at = now(),
                            canceled_at = CASE WHEN $2 = 'canceled' THEN now() ELSE canceled_at END
                     WHERE id = $1 AND status = $3",
                    &[&id, &status, &old],
                )
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(updated)
}
