//! Starting a gift, without HTTP: validation, our rows, the Stripe calls on the tenant's
//! connected account, and Stripe's ids back onto our rows (the order is explained in
//! [`crate::giving`]). The JSON API ([`super::create`]) and the donation page both call
//! [`start_gift`].

use payments::client::{Customer, PaymentIntent, Subscription};
use payments::{Form, Opts};
use tenant_config::{DonationStatus, RecurringStatus, TenantId, TenantStatus};
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::charge::{one_time_intent, save_card, subscribe, Charge};
use super::create::{NewDonation, Started};
use super::validate::{validate, Valid};
use crate::edge::TenantRequest;
use crate::error::AppError;
use crate::giving::stripe_error;
use crate::state::{AppState, StripeState};

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
    let status: TenantStatus = row
        .get::<_, &str>(2)
        .parse()
        .map_err(|e| AppError::Internal(format!("tenant row: {e}")))?;
    if !status.is_served() {
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

/// The gift as recorded in our tables, before any money moves.
enum Gift {
    /// A one-time gift: a `donations` row paid by a PaymentIntent.
    OneTime {
        /// `donations.id`.
        id: Uuid,
    },
    /// A recurring gift: a `recurring_donations` row paid by a Subscription.
    Recurring {
        /// `recurring_donations.id`.
        id: Uuid,
        /// The secret half of the donor's cancel link.
        cancel_token: String,
    },
}

impl Gift {
    fn id(&self) -> Uuid {
        match self {
            Gift::OneTime { id } | Gift::Recurring { id, .. } => *id,
        }
    }

    fn audit_target(&self) -> &'static str {
        match self {
            Gift::OneTime { .. } => "donation",
            Gift::Recurring { .. } => "recurring_donation",
        }
    }
}

/// Step 1's result: everything steps 2 and 3 need.
struct Recorded {
    tenant: TenantId,
    pay: TenantPay,
    v: Valid,
    fee: i64,
    donor: Uuid,
    customer: Option<String>,
    gift: Gift,
}

/// Starts a gift for the request's tenant: see the module doc for the order of writes.
pub async fn start_gift(
    state: &AppState,
    req: &TenantRequest,
    body: NewDonation,
) -> Result<Started, AppError> {
    let stripe = state.payments.stripe()?;
    let mut conn = state.db.get().await?;
    let recorded = record(state, &mut conn, req, body, stripe).await?;
    crate::metrics::donation_started(
        &recorded.v.currency,
        matches!(recorded.gift, Gift::Recurring { .. }),
    );
    let charged = charge(stripe, &recorded).await;
    settle(state, &mut conn, req, stripe, recorded, charged).await
}

/// Step 1: the donor, the gift (`pending`/`incomplete`) and its audit entry, committed.
async fn record(
    state: &AppState,
    conn: &mut crate::tenant::Conn<'_>,
    req: &TenantRequest,
    body: NewDonation,
    stripe: &StripeState,
) -> Result<Recorded, AppError> {
    let tenant = req.tenant;
    let tx = crate::tenant::begin(conn, tenant).await?;
    let (pay, settings) = tenant_for_payment(&tx).await?;
    let v = validate(body, &settings)?;
    let fee = payments::platform_fee(v.amount, stripe.fee_basis_points);
    let (donor, customer) = upsert_donor(&tx, tenant.0, &v.email, &v.name).await?;
    let gift = match v.frequency.interval() {
        None => Gift::OneTime {
            id: tx
                .query_one(
                    "INSERT INTO donations (tenant_id, donor_id, kind, amount_minor, currency, fee_minor, net_minor, fund)
                     VALUES ($1, $2, 'one_time', $3, $4, $5, $6, $7) RETURNING id",
                    &[&tenant.0, &donor, &v.amount, &v.currency, &fee, &(v.amount - fee), &v.fund],
                )
                .await?
                .get(0),
        },
        Some(interval) => {
            let id: Uuid = tx
                .query_one(
                    "INSERT INTO recurring_donations (tenant_id, donor_id, amount_minor, currency, fee_basis_points, billing_interval, fund)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    &[
                        &tenant.0,
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
            Gift::Recurring {
                id,
                cancel_token: crate::giving::cancel_token(state, id),
            }
        }
    };
    audit_donation(
        &tx,
        tenant.0,
        req,
        (gift.audit_target(), gift.id()),
        serde_json::json!({"amount_minor": v.amount, "currency": v.currency, "fund": v.fund,
                           "frequency": v.frequency}),
    )
    .await?;
    tx.commit().await?;
    Ok(Recorded {
        tenant,
        pay,
        v,
        fee,
        donor,
        customer,
        gift,
    })
}

enum Intent {
    OneTime(PaymentIntent),
    Recurring(Subscription),
}

/// Step 2: Stripe, on the tenant's connected account, every call idempotent by our ids.
async fn charge(
    stripe: &StripeState,
    r: &Recorded,
) -> Result<(String, Intent), payments::StripeError> {
    let account = r.pay.account.as_str();
    let tenant = r.tenant.0;
    let customer = match &r.customer {
        Some(c) => c.clone(),
        None => {
            let c: Customer = stripe
                .client
                .post(
                    "customers",
                    &Form::new()
                        .set("email", &r.v.email)
                        .set("name", &r.v.name)
                        .set("metadata[tenant_id]", tenant)
                        .set("metadata[donor_id]", r.donor),
                    Opts {
                        account: Some(account),
                        idempotency_key: Some(&format!("customer:{}", r.donor)),
                    },
                )
                .await?;
            c.id
        }
    };
    let card = match &r.v.card_token {
        Some(token) => Some(save_card(stripe, account, r.gift.id(), &customer, token).await?),
        None => None,
    };
    let intent = match &r.gift {
        Gift::OneTime { id } => Intent::OneTime(
            one_time_intent(
                stripe,
                Charge {
                    account,
                    tenant,
                    id: *id,
                },
                &r.v,
                r.fee,
                &customer,
                card.as_deref(),
            )
            .await?,
        ),
        Gift::Recurring { id, .. } => Intent::Recurring(
            subscribe(stripe, account, tenant, *id, &r.v, &r.pay.name, &customer).await?,
        ),
    };
    Ok((customer, intent))
}

/// Step 3: Stripe's ids onto our rows, or the failure, so the row tells the truth.
async fn settle(
    state: &AppState,
    conn: &mut crate::tenant::Conn<'_>,
    req: &TenantRequest,
    stripe: &StripeState,
    r: Recorded,
    charged: Result<(String, Intent), payments::StripeError>,
) -> Result<Started, AppError> {
    let tx = crate::tenant::begin(conn, r.tenant).await?;
    let (customer, intent) = match charged {
        Ok(ok) => ok,
        Err(e) => {
            let reason = format!("stripe: {e}");
            match &r.gift {
                Gift::Recurring { id, .. } => {
                    tx.execute(
                        "UPDATE recurring_donations SET status = $2, updated_at = now() WHERE id = $1",
                        &[id, &RecurringStatus::IncompleteExpired.as_str()],
                    )
                    .await?;
                }
                Gift::OneTime { id } => {
                    tx.execute(
                        "UPDATE donations SET status = $3, failure_reason = left($2, 500), updated_at = now()
                         WHERE id = $1 AND status = $4",
                        &[
                            id,
                            &reason,
                            &DonationStatus::Failed.as_str(),
                            &DonationStatus::Pending.as_str(),
                        ],
                    )
                    .await?;
                    crate::metrics::donation_status(DonationStatus::Failed.as_str(), &r.v.currency);
                }
            }
            tx.commit().await?;
            tracing::warn!(gift = %r.gift.id(), error = %e, "stripe refused or unreachable; gift marked failed");
            return Err(stripe_error(e));
        }
    };
    tx.execute(
        "UPDATE donors SET stripe_customer_id = $2, updated_at = now() WHERE id = $1 AND stripe_customer_id IS NULL",
        &[&r.donor, &customer],
    )
    .await?;
    let mut started = Started {
        donation_id: None,
        recurring_donation_id: None,
        client_secret: None,
        subscription_status: None,
        payment_status: None,
        cancel_url: None,
        amount_minor: r.v.amount,
        fee_minor: r.fee,
        currency: r.v.currency,
        fund: r.v.fund,
        publishable_key: stripe.publishable_key.clone(),
        stripe_account: r.pay.account,
    };
    match (intent, &r.gift) {
        (Intent::OneTime(pi), Gift::OneTime { id }) => {
            tx.execute(
                "UPDATE donations SET stripe_payment_intent_id = $2, updated_at = now() WHERE id = $1",
                &[id, &pi.id],
            )
            .await?;
            started.donation_id = Some(*id);
            started.client_secret = pi.client_secret;
            if r.v.card_token.is_some() {
                started.payment_status = Some(pi.status);
            }
        }
        (Intent::Recurring(sub), Gift::Recurring { id, cancel_token }) => {
            let status = RecurringStatus::from_stripe(&sub.status);
            let period_end = sub
                .current_period_end
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0));
            tx.execute(
                "UPDATE recurring_donations SET stripe_subscription_id = $2, status = $3,
                        current_period_end = $4, updated_at = now()
                 WHERE id = $1 AND status <> $5",
                &[
                    id,
                    &sub.id,
                    &status.as_str(),
                    &period_end,
                    &RecurringStatus::Canceled.as_str(),
                ],
            )
            .await?;
            started.recurring_donation_id = Some(*id);
            started.client_secret = sub.payment_client_secret().map(str::to_owned);
            started.subscription_status = Some(sub.status.clone());
            if r.v.card_token.is_some() {
                started.payment_status = sub.payment_status().map(str::to_owned);
            }
            // The host the router verified and signed.
            started.cancel_url = Some(crate::giving::cancel_url(
                state,
                &req.edge.host,
                *id,
                cancel_token,
            ));
        }
        _ => {
            return Err(AppError::Internal(
                "stripe object does not match the gift".into(),
            ))
        }
    }
    tx.commit().await?;
    Ok(started)
}
