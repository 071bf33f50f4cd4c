//! `account.updated`: a connected account's status, newest event wins.

use payments::Event;
use serde_json::Value;
use tokio_postgres::Transaction;

use super::{Applied, Outcome};
use crate::error::AppError;

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

pub(super) async fn account_updated(tx: &Transaction<'_>, ev: &Event) -> Result<Applied, AppError> {
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
    use serde_json::json;

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
}
