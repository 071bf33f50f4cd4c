//! `customer.subscription.updated|deleted`: a recurring gift's status follows the subscription,
//! read from Stripe when reachable so a late event cannot resurrect an old status.

use payments::client::Subscription;
use payments::Event;
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::invoice::recurring_for;
use super::recurring_status;
use super::{metadata_uuid, Applied, Outcome};
use crate::error::AppError;

pub(super) async fn subscription_changed(
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
