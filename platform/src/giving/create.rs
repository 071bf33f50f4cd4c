//! `POST /api/donations`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use payments::client::{Created, Customer, PaymentIntent, Subscription};
use payments::{Form, Opts};
use serde::{Deserialize, Serialize};
use tokio_postgres::Transaction;
use uuid::Uuid;

use crate::edge::TenantRequest;
use crate::error::{ApiJson, AppError};
use crate::giving::stripe_error;
use crate::state::{AppState, StripeState};
use crate::tenant::profile::from_settings;

/// How often a gift repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    /// A single gift (PaymentIntent).
    OneTime,
    /// Every week (Subscription).
    Week,
    /// Every month (Subscription).
    Month,
    /// Every year (Subscription).
    Year,
}

impl Frequency {
    fn interval(self) -> Option<&'static str> {
        match self {
            Frequency::OneTime => None,
            Frequency::Week => Some("week"),
            Frequency::Month => Some("month"),
            Frequency::Year => Some("year"),
        }
    }
}

/// The donation form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDonation {
    /// Gift in minor units (cents), within the tenant's limits.
    pub amount_minor: i64,
    /// One of the tenant's currencies (ISO 4217, any case).
    pub currency: String,
    /// One of the tenant's funds; the first one when absent.
    #[serde(default)]
    pub fund: Option<String>,
    /// Donor's name as it should appear on the receipt.
    pub donor_name: String,
    /// Where the receipt goes.
    pub donor_email: String,
    /// `one_time` (default), `week`, `month` or `year`.
    #[serde(default = "one_time")]
    pub frequency: Frequency,
    /// For recurring gifts: the PaymentMethod Stripe.js created in the donor's browser
    /// (`pm_…`); it becomes the customer's default for the subscription's invoices.
    #[serde(default)]
    pub payment_method: Option<String>,
}

fn one_time() -> Frequency {
    Frequency::OneTime
}

/// What the browser needs to finish the payment with Stripe.js.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Started {
    /// Our donation id (one-time gifts), for `GET /api/donations/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub donation_id: Option<Uuid>,
    /// Our recurring gift id (recurring gifts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurring_donation_id: Option<Uuid>,
    /// Gift in minor units.
    pub amount_minor: i64,
    /// Platform fee in minor units (rounded down; see `payments::fee`).
    pub fee_minor: i64,
    /// Currency.
    pub currency: String,
    /// Fund.
    pub fund: String,
    /// PaymentIntent client secret for `stripe.confirmPayment`; for a recurring gift, the first
    /// invoice's, when it still needs the donor (3-D Secure).
    pub client_secret: Option<String>,
    /// Stripe.js publishable key.
    pub publishable_key: Option<String>,
    /// The connected account Stripe.js must be initialised with (`stripeAccount`).
    pub stripe_account: String,
    /// Subscription status for recurring gifts (`active`, `incomplete`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_status: Option<String>,
    /// Where the donor cancels a recurring gift (also sent with each receipt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_url: Option<String>,
}

struct Valid {
    amount: i64,
    currency: String,
    fund: String,
    name: String,
    email: String,
    frequency: Frequency,
    payment_method: Option<String>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
    AppError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A deliberately simple address check: one `@`, something on both sides, a dot in the domain,
/// no spaces or control characters. Stripe and the mail relay do the rest.
pub fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    e.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && e.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

/// Known payment method id shape (`pm_` then letters, digits and underscores).
fn valid_pm(pm: &str) -> bool {
    pm.len() <= 255
        && pm.strip_prefix("pm_").is_some_and(|r| {
            !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

fn validate(d: NewDonation, settings: &serde_json::Value) -> Result<Valid, AppError> {
    let limits = from_settings(String::new(), String::new(), settings).donations;
    let currency = d.currency.trim().to_ascii_lowercase();
    if !limits.currencies.contains(&currency) {
        return Err(invalid(
            "currency",
            format!("must be one of: {}", limits.currencies.join(", ")),
        ));
    }
    if d.amount_minor < limits.min_minor || d.amount_minor > limits.max_minor {
        return Err(invalid(
            "amount_minor",
            format!(
                "must be between {} and {} (minor units)",
                limits.min_minor, limits.max_minor
            ),
        ));
    }
    let fund = match d.fund {
        Some(f) if limits.funds.contains(&f) => f,
        Some(_) => {
            return Err(invalid(
                "fund",
                format!("must be one of: {}", limits.funds.join(", ")),
            ))
        }
        None => limits
            .funds
            .first()
            .cloned()
            .unwrap_or_else(|| "general".into()),
    };
    let name = d.donor_name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(invalid(
            "donor_name",
            "must be 1 to 200 printable characters",
        ));
    }
    let email = d.donor_email.trim().to_lowercase();
    if !valid_email(&email) {
        return Err(invalid("donor_email", "must be an email address"));
    }
    let payment_method = match (d.frequency, d.payment_method) {
        (Frequency::OneTime, Some(_)) => {
            return Err(invalid(
                "payment_method",
                "only for recurring gifts; one-time gifts are confirmed with the client secret",
            ))
        }
        (Frequency::OneTime, None) => None,
        (_, Some(pm)) if valid_pm(&pm) => Some(pm),
        (_, Some(_)) => return Err(invalid("payment_method", "must be a pm_… id")),
        (_, None) => {
            return Err(invalid(
                "payment_method",
                "required for recurring gifts (create it with Stripe.js)",
            ))
        }
    };
    Ok(Valid {
        amount: d.amount_minor,
        currency,
        fund,
        name,
        email,
        frequency: d.frequency,
        payment_method,
    })
}

struct TenantPay {
    name: String,
    account: String,
}

/// Reads the tenant and refuses when it cannot take money yet.
async fn tenant_for_payment(
    tx: &Transaction<'_>,
) -> Result<(TenantPay, serde_json::Value), AppError> {
    let row = tx
        .query_opt(
            "SELECT name, settings, status, stripe_account_id, stripe_account_status FROM tenants",
            &[],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    let status: String = row.get(2);
    if status == "suspended" || status == "cancelled" {
        return Err(AppError::Forbidden);
    }
    let account: Option<String> = row.get(3);
    let account_status: String = row.get(4);
    let account = match account {
        Some(a) if account_status == "enabled" => a,
        _ => {
            return Err(AppError::Conflict(
                "this organisation cannot accept donations yet (payments not enabled)".into(),
            ))
        }
    };
    Ok((
        TenantPay {
            name: row.get(0),
            account,
        },
        row.get(1),
    ))
}

/// Inserts or refreshes the donor; returns its id and Stripe customer id if it has one.
async fn upsert_donor(
    tx: &Transaction<'_>,
    tenant: Uuid,
    email: &str,
    name: &str,
) -> Result<(Uuid, Option<String>), AppError> {
    let row = tx
        .query_one(
            "INSERT INTO donors (tenant_id, email, name) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, email) DO UPDATE SET name = EXCLUDED.name, updated_at = now()
             RETURNING id, stripe_customer_id",
            &[&tenant, &email, &name],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

async fn audit_donation(
    tx: &Transaction<'_>,
    tenant: Uuid,
    req: &TenantRequest,
    target: (&str, Uuid),
    details: serde_json::Value,
) -> Result<(), AppError> {
    tx.execute(
        "INSERT INTO audit_log (actor_type, tenant_id, action, target_type, target_id, request_id, details)
         VALUES ('system', $1, 'donation.started', $2, $3, $4, $5)",
        &[&tenant, &target.0, &target.1.to_string(), &req.edge.request_id, &details],
    )
    .await?;
    Ok(())
}

/// `POST /api/donations`.
#[utoipa::path(post, path = "/api/donations", tag = "tenant", request_body = NewDonation, responses((status = 201, description = "Started; finish with Stripe.js", body = Started), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 409, description = "Conflicts with existing state", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [])))]
pub async fn create(
    State(state): State<AppState>,
    req: TenantRequest,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewDonation>,
) -> Result<(StatusCode, Json<Started>), AppError> {
    let Some(stripe) = state.stripe.clone() else {
        return Err(AppError::Unavailable("stripe is not configured".into()));
    };
    let tenant = req.tenant.0;
    let mut conn = state.db.get().await?;

    // 1. Our rows first.
    let tx = crate::tenant::begin(&mut conn, req.tenant).await?;
    let (pay, settings) = tenant_for_payment(&tx).await?;
    let v = validate(body, &settings)?;
    let fee = payments::platform_fee(v.amount, stripe.fee_basis_points);
    let (donor, customer) = upsert_donor(&tx, tenant, &v.email, &v.name).await?;
    let (id, cancel_token) = match v.frequency.interval() {
        None => {
            let id: Uuid = tx
                .query_one(
                    "INSERT INTO donations (tenant_id, donor_id, kind, amount_minor, currency, fee_minor, net_minor, fund)
                     VALUES ($1, $2, 'one_time', $3, $4, $5, $6, $7) RETURNING id",
                    &[&tenant, &donor, &v.amount, &v.currency, &fee, &(v.amount - fee), &v.fund],
                )
                .await?
                .get(0);
            (id, None)
        }
        Some(interval) => {
            let id: Uuid = tx
                .query_one(
                    "INSERT INTO recurring_donations (tenant_id, donor_id, amount_minor, currency, fee_basis_points, billing_interval, fund)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    &[
                        &tenant,
                        &donor,
                        &v.amount,
                        &v.currency,
                        &i32::try_from(stripe.fee_basis_points).unwrap_or(10_000),
                        &interval,
                        &v.fund,
                    ],
                )
                .await?
                .get(0);
            let token = crate::giving::cancel_token(&state, id);
            (id, Some(token))
        }
    };
    let kind = if cancel_token.is_some() {
        "recurring_donation"
    } else {
        "donation"
    };
    audit_donation(
        &tx,
        tenant,
        &req,
        (kind, id),
        serde_json::json!({"amount_minor": v.amount, "currency": v.currency, "fund": v.fund,
                           "frequency": v.frequency}),
    )
    .await?;
    tx.commit().await?;
    crate::metrics::donation_started(&v.currency, cancel_token.is_some());

    // 2. Stripe, on the tenant's connected account.
    let account = pay.account.as_str();
    let stripe_result = async {
        let customer = match customer {
            Some(c) => c,
            None => {
                let c: Customer = stripe
                    .client
                    .post(
                        "customers",
                        &Form::new()
                            .set("email", &v.email)
                            .set("name", &v.name)
                            .set("metadata[tenant_id]", tenant)
                            .set("metadata[donor_id]", donor),
                        Opts {
                            account: Some(account),
                            idempotency_key: Some(&format!("customer:{donor}")),
                        },
                    )
                    .await?;
                c.id
            }
        };
        match &cancel_token {
            None => one_time_intent(&stripe, account, tenant, id, &v, fee, &customer)
                .await
                .map(|pi| (customer, Intent::OneTime(pi))),
            Some(_) => subscribe(&stripe, account, tenant, id, &v, &pay.name, &customer)
                .await
                .map(|s| (customer, Intent::Recurring(s))),
        }
    }
    .await;

    // 3. Stripe's ids onto our rows (or the failure, so the row tells the truth).
    let tx = crate::tenant::begin(&mut conn, req.tenant).await?;
    let (customer, intent) = match stripe_result {
        Ok(ok) => ok,
        Err(e) => {
            let reason = format!("stripe: {e}");
            let sql = if cancel_token.is_some() {
                "UPDATE recurring_donations SET status = 'incomplete_expired', updated_at = now() WHERE id = $1"
            } else {
                "UPDATE donations SET status = 'failed', failure_reason = left($2, 500), updated_at = now()
                 WHERE id = $1 AND status = 'pending'"
            };
            if cancel_token.is_some() {
                tx.execute(sql, &[&id]).await?;
            } else {
                tx.execute(sql, &[&id, &reason]).await?;
                crate::metrics::donation_status("failed", &v.currency);
            }
            tx.commit().await?;
            tracing::warn!(donation = %id, error = %e, "stripe refused or unreachable; gift marked failed");
            return Err(stripe_error(e));
        }
    };
    tx.execute(
        "UPDATE donors SET stripe_customer_id = $2, updated_at = now() WHERE id = $1 AND stripe_customer_id IS NULL",
        &[&donor, &customer],
    )
    .await?;
    let mut started = Started {
        donation_id: None,
        recurring_donation_id: None,
        client_secret: None,
        subscription_status: None,
        cancel_url: None,
        amount_minor: v.amount,
        fee_minor: fee,
        currency: v.currency,
        fund: v.fund,
        publishable_key: stripe.publishable_key.clone(),
        stripe_account: pay.account.clone(),
    };
    match intent {
        Intent::OneTime(pi) => {
            tx.execute(
                "UPDATE donations SET stripe_payment_intent_id = $2, updated_at = now() WHERE id = $1",
                &[&id, &pi.id],
            )
            .await?;
            started.donation_id = Some(id);
            started.client_secret = pi.client_secret;
        }
        Intent::Recurring(sub) => {
            let status = crate::webhooks::recurring_status(&sub.status);
            let period_end = sub
                .current_period_end
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0));
            tx.execute(
                "UPDATE recurring_donations SET stripe_subscription_id = $2, status = $3,
                        current_period_end = $4, updated_at = now()
                 WHERE id = $1 AND status <> 'canceled'",
                &[&id, &sub.id, &status, &period_end],
            )
            .await?;
            let host = headers
                .get("x-original-host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or(&req.edge.host);
            started.recurring_donation_id = Some(id);
            started.client_secret = sub.payment_client_secret().map(str::to_owned);
            started.subscription_status = Some(sub.status.clone());
            started.cancel_url = cancel_token
                .as_ref()
                .map(|t| crate::giving::cancel_url(host, id, t));
        }
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(started)))
}

enum Intent {
    OneTime(PaymentIntent),
    Recurring(Subscription),
}

/// A direct charge on the connected account, with the platform's fee.
async fn one_time_intent(
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
async fn subscribe(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_payment_methods() {
        for ok in ["a@b.co", "first.last+tag@church.example.org"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@.co", "a@b.co.", "a b@c.co", "a@b@c.co",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
        assert!(valid_pm("pm_1AbC_d"));
        assert!(!valid_pm("pm_") && !valid_pm("card_1") && !valid_pm("pm_a/b"));
    }

    #[test]
    fn validation_names_the_field() {
        let settings = serde_json::json!({"donations": {"currencies": ["usd", "eur"],
            "min_minor": 500, "max_minor": 100000, "funds": ["general", "roof"]}});
        let base = || NewDonation {
            amount_minor: 2500,
            currency: "USD".into(),
            fund: None,
            donor_name: " Ann ".into(),
            donor_email: "Ann@Example.org".into(),
            frequency: Frequency::OneTime,
            payment_method: None,
        };
        let v = validate(base(), &settings).unwrap();
        assert_eq!(
            (
                v.currency.as_str(),
                v.fund.as_str(),
                v.email.as_str(),
                v.name.as_str()
            ),
            ("usd", "general", "ann@example.org", "Ann")
        );
        let field = |d: NewDonation| match validate(d, &settings) {
            Err(AppError::Invalid { field, .. }) => field,
            other => panic!("expected a validation error, got {:?}", other.map(|_| ())),
        };
        assert_eq!(
            field(NewDonation {
                amount_minor: 499,
                ..base()
            }),
            "amount_minor"
        );
        assert_eq!(
            field(NewDonation {
                amount_minor: 100_001,
                ..base()
            }),
            "amount_minor"
        );
        assert_eq!(
            field(NewDonation {
                currency: "gbp".into(),
                ..base()
            }),
            "currency"
        );
        assert_eq!(
            field(NewDonation {
                fund: Some("pool".into()),
                ..base()
            }),
            "fund"
        );
        assert_eq!(
            field(NewDonation {
                donor_email: "nope".into(),
                ..base()
            }),
            "donor_email"
        );
        assert_eq!(
            field(NewDonation {
                donor_name: "  ".into(),
                ..base()
            }),
            "donor_name"
        );
        assert_eq!(
            field(NewDonation {
                frequency: Frequency::Month,
                ..base()
            }),
            "payment_method"
        );
        assert_eq!(
            field(NewDonation {
                payment_method: Some("pm_1".into()),
                ..base()
            }),
            "payment_method"
        );
    }
}
