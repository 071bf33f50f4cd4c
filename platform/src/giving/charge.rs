//! The Stripe calls that start a gift on the tenant's connected account, each with an
//! idempotency key derived from our ids.

use payments::client::{Created, Customer, PaymentIntent, Subscription};
use payments::{Form, Opts};
use uuid::Uuid;

use super::validate::Valid;
use crate::state::StripeState;

/// Whose gift a charge is for: the connected account, the tenant and our gift id.
#[derive(Clone, Copy)]
pub(crate) struct Charge<'a> {
    pub(crate) account: &'a str,
    pub(crate) tenant: Uuid,
    pub(crate) id: Uuid,
}

/// A direct charge on the connected account, with the platform's fee.
pub(crate) async fn one_time_intent(
    stripe: &StripeState,
    on: Charge<'_>,
    v: &Valid,
    fee: i64,
    customer: &str,
    card: Option<&str>,
) -> Result<PaymentIntent, payments::StripeError> {
    let Charge {
        account,
        tenant,
        id,
    } = on;
    let mut form = Form::new()
        .set("amount", v.amount)
        .set("currency", &v.currency)
        .set("customer", customer)
        .set("application_fee_amount", fee)
        .set("payment_method_types[]", "card")
        .set("metadata[tenant_id]", tenant)
        .set("metadata[donation_id]", id)
        .set("metadata[fund]", &v.fund);
    // A card saved from the donor's token: confirmed here, not in the browser.
    if let Some(card) = card {
        form = form.set("payment_method", card).set("confirm", "true");
    }
    stripe
        .client
        .post(
            "payment_intents",
            &form,
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
    // A card saved from a token is already the customer's default source.
    if let Some(pm) = v.payment_method.as_deref() {
        attach_default(stripe, account, id, customer, pm).await?;
    }
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

/// Makes `pm` (from Stripe.js in the donor's browser) the customer's default for invoices.
async fn attach_default(
    stripe: &StripeState,
    account: &str,
    id: Uuid,
    customer: &str,
    pm: &str,
) -> Result<(), payments::StripeError> {
    let _: serde_json::Value = stripe
        .client
        .post(
            &format!("payment_methods/{pm}/attach"),
            &Form::new().set("customer", customer),
            Opts {
                account: Some(account),
                idempotency_key: Some(&format!("attach:{id}")),
            },
        )
        .await?;
    let _: Customer = stripe
        .client
        .post(
            &format!("customers/{customer}"),
            &Form::new().set("invoice_settings[default_payment_method]", pm),
            Opts {
                account: Some(account),
                idempotency_key: Some(&format!("default-pm:{id}")),
            },
        )
        .await?;
    Ok(())
}

/// Saves the donor's card token on their customer; the card (`card_…`) becomes the customer's
/// default source and pays the gift.
pub(crate) async fn save_card(
    stripe: &StripeState,
    account: &str,
    gift: Uuid,
    customer: &str,
    token: &str,
) -> Result<String, payments::StripeError> {
    let card: Created = stripe
        .client
        .post(
            &format!("customers/{customer}/sources"),
            &Form::new().set("source", token),
            Opts {
                account: Some(account),
                idempotency_key: Some(&format!("card:{gift}")),
            },
        )
        .await?;
    Ok(card.id)
}
