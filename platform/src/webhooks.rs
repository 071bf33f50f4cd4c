//! `POST /api/webhooks/stripe` (platform account) and `/api/webhooks/stripe/connect`
//! (connected accounts): verified, deduplicated, applied once.
//!
//! 1. `Stripe-Signature` is checked against every `v1` value and every configured secret with a
//!    300 s tolerance ([`payments::webhook`]); anything forged, stale or malformed is a 400 and
//!    touches nothing.
//! 2. One `platform_service` transaction inserts the event id into `stripe_events` and applies
//!    the effect. The primary key makes a redelivery (or a concurrent duplicate, which waits on
//!    the key) a no-op that still answers 200. If applying fails, the whole transaction rolls
//!    back and we answer 500, so Stripe redelivers and nothing is half-done.
//! 3. Order: payment states only move forward (a late `payment_failed` never undoes
//!    `succeeded`), refunds take the largest cumulative amount seen, subscriptions are fetched
//!    from Stripe so a late event cannot resurrect an old status, and account updates carry
//!    the event time and ignore older ones. Such late events are recorded as `stale`.
//! 4. Attribution: an event only touches rows of the tenant whose connected account it came
//!    from; ids in metadata are used to find a row, never to choose the tenant.
//! 5. `payment_intent.succeeded` from a connected account goes through
//!    [`crate::webhook_batch`] first, which commits concurrent deliveries together with the
//!    same rules and hands any delivery it cannot settle back to the path here.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use payments::client::Subscription;
use payments::webhook::DEFAULT_TOLERANCE_SECS;
use payments::{Event, Opts};
use serde_json::{json, Value};
use tenant_config::db::StatementCache;
use tokio_postgres::Transaction;
use uuid::Uuid;

use crate::error::AppError;
use crate::state::AppState;
// One statement records an event here or a whole group there.
use crate::webhook_batch::{Verdict, RECORD_EVENTS};

/// What applying an event did, stored in `stripe_events.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Changed our state.
    Applied,
    /// Nothing to do (unknown type, unknown object, another account's object).
    Ignored,
    /// Older than what we already know.
    Stale,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Ignored => "ignored",
            Outcome::Stale => "stale",
        }
    }
}

/// Event types we act on; everything else is acknowledged and recorded as `ignored`.
pub const HANDLED: &[&str] = &[
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "charge.refunded",
    "charge.dispute.created",
    "account.updated",
];

pub use payments::ledger::recurring_status;

/// The handler for both endpoints.
#[utoipa::path(post, path = "/api/webhooks/stripe", tag = "webhooks", request_body(content = Object, description = "A Stripe event, signed in the Stripe-Signature header"), params(("stripe-signature" = String, Header, description = "t=<unix time>,v1=<hex HMAC-SHA256>")), responses((status = 200, description = "Received: applied, ignored, stale, or a duplicate", body = Object), (status = 400, description = "Unusable request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let sig = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    if let Err(e) = payments::verify_signature(
        sig,
        &body,
        &state.webhook_secrets,
        now,
        DEFAULT_TOLERANCE_SECS,
    ) {
        tracing::warn!(error = %e, "stripe webhook refused");
        crate::metrics::webhook_event("unverified", "rejected");
        return Err(AppError::BadRequest("invalid Stripe-Signature".into()));
    }
    let event = Event::parse(&body).map_err(|e| {
        crate::metrics::webhook_event("unparsed", "rejected");
        AppError::BadRequest(format!("event payload: {e}"))
    })?;
    // Verified, but still input: a NUL anywhere (which PostgreSQL cannot store) is refused
    // with the field named, before any write.
    let tree: Value = serde_json::from_slice(&body)
        .map_err(|e| AppError::BadRequest(format!("event payload: {e}")))?;
    if let Err(e) = crate::error::check_json_storable(&tree) {
        tracing::warn!(event = %event.id.escape_debug(), error = %e, "stripe event refused: unstorable text");
        crate::metrics::webhook_event("unparsed", "rejected");
        return Err(e);
    }
    drop(tree);
    if chrono::DateTime::from_timestamp(event.created, 0).is_none() {
        return Err(AppError::BadRequest(
            "event payload: created out of range".into(),
        ));
    }
    // Stored as sent (PostgreSQL parses it into jsonb); valid JSON from `parse` above.
    let payload = std::str::from_utf8(&body)
        .map_err(|_| AppError::BadRequest("event payload: not UTF-8".into()))?;
    let event = Arc::new(event);

    // Payment successes come in bursts: concurrent ones share one transaction.
    if event.kind == "payment_intent.succeeded" && event.account.is_some() {
        match state.group.submit(event.clone(), body.clone()).await {
            Verdict::Done(outcome) => return Ok(recorded(&event.kind, outcome)),
            Verdict::Duplicate => return Ok(duplicate(&event.kind)),
            Verdict::Alone => {}
        }
    }

    // Where order matters and Stripe is reachable, read the object's current state first (never
    // inside the transaction).
    let current = current_subscription(&state, &event).await?;

    let mut conn = state.db.get().await?;
    let stmts = conn.statements();
    let tx = crate::admin::begin(&mut conn).await?;
    // Apply first, then record the id: every effect locks the rows it changes, so a concurrent
    // duplicate waits, finds nothing left to do, then fails the insert below and rolls back.
    let (outcome, tenant) = apply(&state, &stmts, &tx, &event, current.as_ref()).await?;
    let record = stmts.get(&tx, RECORD_EVENTS).await?;
    let fresh = tx
        .execute(
            &record,
            &[
                &[event.id.as_str()].as_slice(),
                &[event.kind.as_str()].as_slice(),
                &[event.account.as_deref()].as_slice(),
                &[event.livemode].as_slice(),
                &[event.created as f64].as_slice(),
                &[outcome.as_str()].as_slice(),
                &[payload].as_slice(),
                &[tenant].as_slice(),
            ],
        )
        .await?;
    if fresh == 0 {
        // Seen before: undo whatever this delivery did (nothing, by the locks above).
        tx.rollback().await?;
        return Ok(duplicate(&event.kind));
    }
    tx.commit().await?;
    if let Some(t) = tenant.filter(|_| event.kind == "account.updated") {
        state.profiles.invalidate(tenant_config::TenantId(t)).await;
    }
    Ok(recorded(&event.kind, outcome))
}

/// The answer (and metric) for an event recorded with `outcome`.
fn recorded(kind: &str, outcome: Outcome) -> Json<Value> {
    crate::metrics::webhook_event(kind, outcome.as_str());
    Json(json!({"received": true, "outcome": outcome.as_str()}))
}

/// The answer (and metric) for a redelivery: 200, nothing changed.
fn duplicate(kind: &str) -> Json<Value> {
    crate::metrics::webhook_event(kind, "duplicate");
    Json(json!({"received": true, "duplicate": true}))
}

/// The Connect endpoint: the same handling; events carry the connected account.
#[utoipa::path(post, path = "/api/webhooks/stripe/connect", tag = "webhooks", request_body(content = Object, description = "A Stripe Connect event, signed in the Stripe-Signature header"), params(("stripe-signature" = String, Header, description = "t=<unix time>,v1=<hex HMAC-SHA256>")), responses((status = 200, description = "Received: applied, ignored, stale, or a duplicate", body = Object), (status = 400, description = "Unusable request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn receive_connect(
    state: State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    receive(state, headers, body).await
}

async fn current_subscription(
    state: &AppState,
    event: &Event,
) -> Result<Option<Subscription>, AppError> {
    if !event.kind.starts_with("customer.subscription.") {
        return Ok(None);
    }
    let (Some(stripe), Some(account), Some(id)) = (
        state.stripe.as_ref(),
        event.account.as_deref(),
        event.str_field("id"),
    ) else {
        return Ok(None);
    };
    match stripe
        .client
        .get::<Subscription>(
            &format!("subscriptions/{id}"),
            Opts {
                account: Some(account),
                idempotency_key: None,
            },
        )
        .await
    {
        Ok(s) => Ok(Some(s)),
        // Deleted subscriptions may be gone; the event itself is then the truth.
        Err(payments::StripeError::Api { status: 404, .. }) => Ok(None),
        // Answer 503 so Stripe redelivers once Stripe's API is reachable again.
        Err(e) => Err(AppError::Unavailable(format!("stripe: {e}"))),
    }
}

type Applied = (Outcome, Option<Uuid>);

const DONATION_FOR_INTENT: &str = "SELECT d.id, d.tenant_id, d.status, d.amount_minor, d.currency
     FROM donations d JOIN tenants t ON t.id = d.tenant_id
     WHERE (d.stripe_payment_intent_id = $1
            OR (d.stripe_payment_intent_id IS NULL AND d.id = $2))
       AND t.stripe_account_id = $3
     FOR UPDATE OF d";

/// The success and its receipt in one statement, shared with the workers' reconciliation.
const INTENT_SUCCEEDED: &str = payments::ledger::MARK_SUCCEEDED;

async fn apply(
    state: &AppState,
    stmts: &StatementCache,
    tx: &Transaction<'_>,
    ev: &Event,
    current: Option<&Subscription>,
) -> Result<Applied, AppError> {
    // Events from no connected account cannot be attributed to a tenant.
    let Some(account) = ev.account.as_deref() else {
        return Ok((Outcome::Ignored, None));
    };
    match ev.kind.as_str() {
        "payment_intent.succeeded" => intent_succeeded(stmts, tx, ev, account).await,
        "payment_intent.payment_failed" => {
            let reason = ev.data.object["last_payment_error"]["message"]
                .as_str()
                .unwrap_or("payment failed")
                .to_owned();
            intent_moved(
                stmts,
                tx,
                ev,
                account,
                "failed",
                &["pending"],
                Some(&reason),
            )
            .await
        }
        "payment_intent.canceled" => {
            intent_moved(
                stmts,
                tx,
                ev,
                account,
                "canceled",
                &["pending", "failed"],
                None,
            )
            .await
        }
        "invoice.paid" => invoice_paid(state, tx, ev, account).await,
        "invoice.payment_failed" => invoice_failed(tx, ev, account).await,
        "customer.subscription.updated" | "customer.subscription.deleted" => {
            subscription_changed(tx, ev, account, current).await
        }
        "charge.refunded" => charge_refunded(tx, ev, account).await,
        "charge.dispute.created" => disputed(tx, ev, account).await,
        "account.updated" => account_updated(tx, ev).await,
        _ => Ok((Outcome::Ignored, None)),
    }
}

pub(crate) fn metadata_uuid(ev: &Event, key: &str) -> Uuid {
    ev.metadata(key)
        .and_then(|s| s.parse().ok())
        .unwrap_or(Uuid::nil())
}

/// The donation a payment intent belongs to, locked, on `account`'s tenant only.
async fn donation_for_intent(
    stmts: &StatementCache,
    tx: &Transaction<'_>,
    pi: &str,
    by_metadata: Uuid,
    account: &str,
) -> Result<Option<tokio_postgres::Row>, AppError> {
    let st = stmts.get(tx, DONATION_FOR_INTENT).await?;
    Ok(tx.query_opt(&st, &[&pi, &by_metadata, &account]).await?)
}

async fn intent_succeeded(
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

async fn intent_moved(
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
async fn receipt(
    state: &AppState,
    tx: &Transaction<'_>,
    donation: Uuid,
    recurring: Option<Uuid>,
) -> Result<(), AppError> {
    let base = state.rules.base().to_owned();
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
                &host,
                r,
                &crate::giving::cancel_token(state, r),
            ))
        }
        None => None,
    };
    tx.execute(
        "INSERT INTO email_outbox (tenant_id, idempotency_key, template, to_address, payload)
         SELECT d.tenant_id, 'receipt:' || d.id::text, 'donation_receipt', dn.email,
                jsonb_build_object('donation_id', d.id, 'donor_name', dn.name,
                                   'amount_minor', d.amount_minor, 'currency', d.currency,
                                   'fund', d.fund, 'kind', d.kind, 'tenant_name', t.name,
                                   'tenant_slug', t.slug, 'succeeded_at', d.succeeded_at,
                                   'cancel_url', $2::text)
         FROM donations d JOIN donors dn ON dn.id = d.donor_id JOIN tenants t ON t.id = d.tenant_id
         WHERE d.id = $1
         ON CONFLICT (idempotency_key) DO NOTHING",
        &[&donation, &cancel_url],
    )
    .await?;
    Ok(())
}

/// The recurring gift an invoice or subscription belongs to, locked, on `account`'s tenant.
async fn recurring_for(
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

async fn invoice_paid(
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

async fn invoice_failed(
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

async fn subscription_changed(
    tx: &Transaction<'_>,
    ev: &Event,
    account: &str,
    current: Option<&Subscription>,
) -> Result<Applied, AppError> {
    let Some(sub) = ev.str_field("id") else {
        return Ok((Outcome::Ignored, None));
    };
    let Some(r) =
        recurring_for(tx, sub, metadata_uuid(ev, "recurring_donation_id"), account).await?
    else {
        return Ok((Outcome::Ignored, None));
    };
    let (rid, tenant, old): (Uuid, Uuid, String) = (r.get(0), r.get(1), r.get(5));
    // Deletion is final; otherwise Stripe's current state (fetched just now) beats the event's.
    let (status, period_end) = if ev.kind == "customer.subscription.deleted" {
        ("canceled", ev.int_field("current_period_end"))
    } else if let Some(c) = current {
        (recurring_status(&c.status), c.current_period_end)
    } else {
        (
            recurring_status(ev.str_field("status").unwrap_or("incomplete")),
            ev.int_field("current_period_end"),
        )
    };
    if old == "canceled" && status != "canceled" {
        // A cancelled gift never restarts from a late event.
        return Ok((Outcome::Stale, Some(tenant)));
    }
    let period_end = period_end.and_then(|t| chrono::DateTime::from_timestamp(t, 0));
    let old_end: Option<chrono::DateTime<chrono::Utc>> = r.get(6);
    if old == status && (period_end.is_none() || period_end == old_end) {
        // Nothing newer than what we hold (typically a late event after a fetch).
        return Ok((Outcome::Stale, Some(tenant)));
    }
    tx.execute(
        "UPDATE recurring_donations SET status = $2, stripe_subscription_id = $3,
                current_period_end = COALESCE($4, current_period_end),
                canceled_at = CASE WHEN $2 = 'canceled' THEN COALESCE(canceled_at, now()) ELSE canceled_at END,
                updated_at = now()
         WHERE id = $1",
        &[&rid, &status, &sub, &period_end],
    )
    .await?;
    Ok((Outcome::Applied, Some(tenant)))
}

async fn charge_refunded(
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

async fn disputed(tx: &Transaction<'_>, ev: &Event, account: &str) -> Result<Applied, AppError> {
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

/// The connected account's status from its capabilities.
pub fn account_status(account: &Value) -> &'static str {
    let disabled = account["requirements"]["disabled_reason"]
        .as_str()
        .unwrap_or("");
    if disabled.starts_with("rejected") {
        "rejected"
    } else if account["charges_enabled"].as_bool() == Some(true) {
        "enabled"
    } else if account["details_submitted"].as_bool() == Some(true) {
        "restricted"
    } else {
        "pending"
    }
}

async fn account_updated(tx: &Transaction<'_>, ev: &Event) -> Result<Applied, AppError> {
    let Some(id) = ev.str_field("id") else {
        return Ok((Outcome::Ignored, None));
    };
    if ev.account.as_deref().is_some_and(|a| a != id) {
        return Ok((Outcome::Ignored, None));
    }
    let status = account_status(&ev.data.object);
    let row = tx
        .query_opt(
            "UPDATE tenants SET stripe_account_status = $2, stripe_account_event_at = to_timestamp($3),
                    updated_at = now()
             WHERE stripe_account_id = $1
               AND (stripe_account_event_at IS NULL OR stripe_account_event_at <= to_timestamp($3))
             RETURNING id",
            &[&id, &status, &(ev.created as f64)],
        )
        .await?;
    if let Some(r) = row {
        return Ok((Outcome::Applied, Some(r.get(0))));
    }
    let known = tx
        .query_opt(
            "SELECT id FROM tenants WHERE stripe_account_id = $1",
            &[&id],
        )
        .await?;
    Ok(match known {
        Some(r) => (Outcome::Stale, Some(r.get(0))),
        None => (Outcome::Ignored, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_statuses() {
        assert_eq!(account_status(&json!({"charges_enabled": true})), "enabled");
        assert_eq!(
            account_status(&json!({"charges_enabled": false, "details_submitted": true})),
            "restricted"
        );
        assert_eq!(account_status(&json!({})), "pending");
        assert_eq!(
            account_status(
                &json!({"charges_enabled": true, "requirements": {"disabled_reason": "rejected.fraud"}})
            ),
            "rejected"
        );
    }

    #[test]
    fn subscription_statuses() {
        assert_eq!(recurring_status("trialing"), "active");
        assert_eq!(recurring_status("unpaid"), "past_due");
        assert_eq!(recurring_status("something_new"), "incomplete");
    }
}
