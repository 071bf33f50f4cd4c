//! The Stripe calls that start a gift on the tenant's connected account, each with an
//! idempotency key derived from our ids.

use payments::client::{Created, Customer, PaymentIntent, Subscription};
use payments::{Form, Opts};
use uuid::Uuid;

use super::validate::Valid;
use crate::state::StripeState;

/// A direct charge on the connected account, with the platform's fee.
pub(crate) async fn one_time_intent(
    stripe: &StripeState,
    account: &str,
    tenant: Uuid,
    id: Uuid,
    v: &Valid,
    fee: i64,
    customer: &str,
) -> Result<PaymentIntent, payments::StripeError> {
    stripe
        .client
        .post(
            "payment_intents",
            &Form::new()
                .set("amount", v.amount)
                .set("currency", &v.currency)
                .set("customer", customer)
                .set("application_fee_amount", fee)
                .set("payment_method_types[]", "card")
                .set("metadata[tenant_id]", tenant)
                .set("metadata[donation_id]", id)
                .set("metadata[fund]", &v.fund),
            Opts {
                account: Some(account),
                idempotency_key: Some(&format!("donation:{id}")),
            },
        )
        .await
}

/// A subscription on the connected account: the donor's payment method becomes the customer's
/// default, a plan carries the amount and interval, and the platform's share is
/// `application_fee_percent` on every invoice.
pub(crate) async fn subscribe(
    stripe: &StripeState,
    account: &str,
    tenant: Uuid,
    id: Uuid,
    v: &Valid,
    tenant_name: &str,
    customer: &str,
) -> Result<Subscription, payments::StripeError> {
    let opts = |key: String| (Some(account), key);
    let pm = v.payment_method.as_deref().unwrap_or_default();
    let (acct, key) = opts(format!("attach:{id}"));
    let _: serde_json::Value = stripe
        .client
        .post(
            &format!("payment_methods/{pm}/attach"),
            &Form::new().set("customer", customer),
            Opts {
                account: acct,
                idempotency_key: Some(&key),
            },
        )
        .await?;
    let (acct, key) = opts(format!("default-pm:{id}"));
    let _: Customer = stripe
        .client
        .post(
            &format!("customers/{customer}"),
            &Form::new().set("invoice_settings[default_payment_method]", pm),
            Opts {
                account: acct,
                idempotency_key: Some(&key),
            },
        )
        .await?;
    let (acct, key) = opts(format!("plan:{id}"));
    let plan: Created = stripe
        .client
        .post(
            "plans",
            &Form::new()
                .set("amount", v.amount)
                .set("currency", &v.currency)
                .set("interval", v.frequency.interval().unwrap_or("month"))
                .set(
                    "product[name]",
                    format!("{tenant_name}: {} (recurring gift)", v.fund),
                )
                .set("metadata[tenant_id]", tenant)
                .set("metadata[recurring_donation_id]", id),
            Opts {
                account: acct,
                idempotency_key: Some(&key),
            },
        )
        .await?;
    let (acct, key) = opts(format!("subscription:{id}"));
    stripe
        .client
        .post(
            "subscriptions",
            &Form::new()
                .set("customer", customer)
                .set("items[0][plan]", &plan.id)
                .set(
                    "application_fee_percent",
                    payments::fee_percent_string(stripe.fee_basis_points),
                )
                .set("payment_behavior", "allow_incomplete")
                .set("expand[]", "latest_invoice.payment_intent")
                .set("metadata[tenant_id]", tenant)
                .set("metadata[recurring_donation_id]", id),
            Opts {
                account: acct,
                idempotency_key: Some(&key),
            },
        )
        .await
}
