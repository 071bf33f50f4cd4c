//! SQL shared by every path that records a payment's outcome (the webhook handler and the
//! workers' reconciliation), so a success is recorded the same way whichever sees it first.

/// Marks donation `$1` succeeded (at unix time `$2`, with payment intent `$3` and charge `$4`)
/// and queues its receipt in the same statement. The receipt's key (`receipt:<donation id>`)
/// makes a second success queue nothing. Callers lock the row and check its status first.
pub const MARK_SUCCEEDED: &str = "SELECT mark_donation_succeeded($1, to_timestamp($2), $3, $4)";

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
