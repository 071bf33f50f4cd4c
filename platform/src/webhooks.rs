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
//!    [`batch`] first, which commits concurrent deliveries together with the
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
use batch::{Verdict, RECORD_EVENTS};

pub mod batch;

mod account;
mod charge;
mod invoice;
mod payment_intent;
mod subscription;

use axum::{Extension, Router};

use crate::access::{Access::Edge, RouteSpec};

routes! {
    post "/api/webhooks/stripe" => receive, Edge;
    post "/api/webhooks/stripe/connect" => receive_connect, Edge;
}

pub use account::account_status;

/// The Stripe event types we act on, parsed once from `type`; everything else is `Other`
/// (acknowledged and recorded as `ignored`). Dispatch and the metrics label come from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `payment_intent.succeeded`.
    PaymentSucceeded,
    /// `payment_intent.payment_failed`.
    PaymentFailed,
    /// `payment_intent.canceled`.
    PaymentCanceled,
    /// `invoice.paid`.
    InvoicePaid,
    /// `invoice.payment_failed`.
    InvoiceFailed,
    /// `customer.subscription.updated`.
    SubscriptionUpdated,
    /// `customer.subscription.deleted`.
    SubscriptionDeleted,
    /// `charge.refunded`.
    ChargeRefunded,
    /// `charge.dispute.created`.
    DisputeCreated,
    /// `account.updated`.
    AccountUpdated,
    /// Anything else.
    Other,
}

impl EventKind {
    /// Every kind we act on.
    pub const HANDLED: [EventKind; 10] = [
        EventKind::PaymentSucceeded,
        EventKind::PaymentFailed,
        EventKind::PaymentCanceled,
        EventKind::InvoicePaid,
        EventKind::InvoiceFailed,
        EventKind::SubscriptionUpdated,
        EventKind::SubscriptionDeleted,
        EventKind::ChargeRefunded,
        EventKind::DisputeCreated,
        EventKind::AccountUpdated,
    ];

    /// Stripe's name for it (`other` for the rest: a bounded metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PaymentSucceeded => "payment_intent.succeeded",
            EventKind::PaymentFailed => "payment_intent.payment_failed",
            EventKind::PaymentCanceled => "payment_intent.canceled",
            EventKind::InvoicePaid => "invoice.paid",
            EventKind::InvoiceFailed => "invoice.payment_failed",
            EventKind::SubscriptionUpdated => "customer.subscription.updated",
            EventKind::SubscriptionDeleted => "customer.subscription.deleted",
            EventKind::ChargeRefunded => "charge.refunded",
            EventKind::DisputeCreated => "charge.dispute.created",
            EventKind::AccountUpdated => "account.updated",
            EventKind::Other => "other",
        }
    }

    /// The kind named by an event's `type`.
    pub fn parse(kind: &str) -> Self {
        Self::HANDLED
            .into_iter()
            .find(|k| k.as_str() == kind)
            .unwrap_or(EventKind::Other)
    }
}

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

/// Maps Stripe's subscription statuses onto `recurring_donations.status`.
pub fn recurring_status(stripe: &str) -> &'static str {
    tenant_config::RecurringStatus::from_stripe(stripe).as_str()
}

/// The handler for both endpoints.
#[utoipa::path(post, path = "/api/webhooks/stripe", operation_id = "post_webhooks_stripe", tag = "webhooks", request_body(content = Object, description = "A Stripe event, signed in the Stripe-Signature header"), params(("stripe-signature" = String, Header, description = "t=<unix time>,v1=<hex HMAC-SHA256>")), responses((status = 200, description = "Received: applied, ignored, stale, or a duplicate", body = Object), (status = 400, description = "Unusable request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")))]
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
        &state.payments.webhook_secrets,
        now,
        DEFAULT_TOLERANCE_SECS,
    ) {
        tracing::warn!(error = %e, "stripe webhook refused");
        crate::metrics::webhook_rejected();
        return Err(AppError::BadRequest("invalid Stripe-Signature".into()));
    }
    let event = Event::parse(&body).map_err(|e| {
        crate::metrics::webhook_rejected();
        AppError::BadRequest(format!("event payload: {e}"))
    })?;
    // Verified, but still input: a NUL anywhere (which PostgreSQL cannot store) is refused
    // with the field named, before any write.
    let tree: Value = serde_json::from_slice(&body)
        .map_err(|e| AppError::BadRequest(format!("event payload: {e}")))?;
    if let Err(e) = crate::input::check_json_storable(&tree) {
        tracing::warn!(event = %event.id.escape_debug(), error = %e, "stripe event refused: unstorable text");
        crate::metrics::webhook_rejected();
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
    let kind = EventKind::parse(&event.kind);

    // Payment successes come in bursts: concurrent ones share one transaction.
    if kind == EventKind::PaymentSucceeded && event.account.is_some() {
        match state
            .payments
            .group
            .submit(event.clone(), body.clone())
            .await
        {
            Verdict::Done(outcome) => return Ok(recorded(kind, outcome)),
            Verdict::Duplicate => return Ok(duplicate(kind)),
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
        return Ok(duplicate(kind));
    }
    tx.commit().await?;
    if let Some(t) = tenant.filter(|_| kind == EventKind::AccountUpdated) {
        state.profiles.invalidate(tenant_config::TenantId(t)).await;
    }
    Ok(recorded(kind, outcome))
}

/// The answer (and metric) for an event recorded with `outcome`.
fn recorded(kind: EventKind, outcome: Outcome) -> Json<Value> {
    crate::metrics::webhook_event(kind, outcome.as_str());
    Json(json!({"received": true, "outcome": outcome.as_str()}))
}

/// The answer (and metric) for a redelivery: 200, nothing changed.
fn duplicate(kind: EventKind) -> Json<Value> {
    crate::metrics::webhook_event(kind, "duplicate");
    Json(json!({"received": true, "duplicate": true}))
}

/// The Connect endpoint: the same handling; events carry the connected account.
#[utoipa::path(post, path = "/api/webhooks/stripe/connect", operation_id = "post_webhooks_stripe_connect", tag = "webhooks", request_body(content = Object, description = "A Stripe Connect event, signed in the Stripe-Signature header"), params(("stripe-signature" = String, Header, description = "t=<unix time>,v1=<hex HMAC-SHA256>")), responses((status = 200, description = "Received: applied, ignored, stale, or a duplicate", body = Object), (status = 400, description = "Unusable request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")))]
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
    if !matches!(
        EventKind::parse(&event.kind),
        EventKind::SubscriptionUpdated | EventKind::SubscriptionDeleted
    ) {
        return Ok(None);
    }
    let (Some(stripe), Some(account), Some(id)) = (
        state.payments.stripe.as_ref(),
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

/// What applying did, and to which tenant.
pub(crate) type Applied = (Outcome, Option<Uuid>);

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
    match EventKind::parse(&ev.kind) {
        EventKind::PaymentSucceeded => {
            payment_intent::intent_succeeded(stmts, tx, ev, account).await
        }
        EventKind::PaymentFailed => {
            let reason = ev.data.object["last_payment_error"]["message"]
                .as_str()
                .unwrap_or("payment failed")
                .to_owned();
            payment_intent::intent_moved(
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
        EventKind::PaymentCanceled => {
            payment_intent::intent_moved(
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
        EventKind::InvoicePaid => invoice::invoice_paid(state, tx, ev, account).await,
        EventKind::InvoiceFailed => invoice::invoice_failed(tx, ev, account).await,
        EventKind::SubscriptionUpdated | EventKind::SubscriptionDeleted => {
            subscription::subscription_changed(tx, ev, account, current).await
        }
        EventKind::ChargeRefunded => charge::charge_refunded(tx, ev, account).await,
        EventKind::DisputeCreated => charge::disputed(tx, ev, account).await,
        EventKind::AccountUpdated => account::account_updated(tx, ev).await,
        EventKind::Other => Ok((Outcome::Ignored, None)),
    }
}

/// A metadata value as a UUID (nil when absent or malformed, which matches no row).
pub(crate) fn metadata_uuid(ev: &Event, key: &str) -> Uuid {
    ev.metadata(key)
        .and_then(|s| s.parse().ok())
        .unwrap_or(Uuid::nil())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_statuses() {
        assert_eq!(recurring_status("trialing"), "active");
        assert_eq!(recurring_status("unpaid"), "past_due");
        assert_eq!(recurring_status("something_new"), "incomplete");
    }
}
