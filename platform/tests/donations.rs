//! Donations end to end against real PostgreSQL and Redis and the Stripe emulator (localstripe
//! behind testkit's recording proxy): starting gifts, the Connect parameters Stripe receives,
//! and webhooks signed exactly as Stripe signs them.

#![allow(clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tenant_config::config::{MapEnv, PlatformConfig};
use tower::ServiceExt;
use uuid::Uuid;

const SECRET: &str = "platform-test-edge-secret-0123456789ab";
const WHSEC_OLD: &str = "whsec_test_old_secret";
const WHSEC_NEW: &str = "whsec_test_new_secret";

struct Env {
    _db: testkit::TestDb,
    owner: tokio_postgres::Client,
    state: platform::AppState,
    alpha: Uuid,
    bravo: Uuid,
    /// Unique per test, so tests sharing the emulator find their own requests.
    acct_alpha: String,
    acct_bravo: String,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn config(db: &testkit::TestDb, api_base: &str) -> PlatformConfig {
    let secrets = format!("{WHSEC_OLD},{WHSEC_NEW}");
    let env = MapEnv::from_pairs([
        ("DATABASE_URL", db.web_url().as_str()),
        ("REDIS_URL", testkit::redis().url().as_str()),
        ("EDGE_SIGNING_SECRET", SECRET),
        ("TENANT_BASE_DOMAIN", "platform.test"),
        ("STRIPE_SECRET_KEY", testkit::STRIPE_TEST_KEY),
        ("STRIPE_PUBLISHABLE_KEY", "pk_test_platform"),
        ("STRIPE_WEBHOOK_SECRET", secrets.as_str()),
        ("STRIPE_API_BASE", api_base),
    ]);
    tenant_config::config::load(None, &env).unwrap()
}

async fn env() -> Env {
    let db = testkit::database().await;
    let owner = db.connect_as("postgres").await;
    let tag = &Uuid::new_v4().simple().to_string()[..12];
    let acct_alpha = format!("acct_alpha{tag}");
    let acct_bravo = format!("acct_bravo{tag}");
    let mut ids = Vec::new();
    for (slug, acct) in [("alpha", &acct_alpha), ("bravo", &acct_bravo)] {
        let id: Uuid = owner
            .query_one(
                "INSERT INTO tenants (slug, name, status, settings, stripe_account_id, stripe_account_status)
                 VALUES ($1, initcap($1) || ' Church', 'active',
                   '{\"donations\": {\"currencies\": [\"usd\", \"eur\"], \"min_minor\": 500,
                     \"max_minor\": 500000, \"funds\": [\"general\", \"roof\"]}}', $2, 'enabled')
                 RETURNING id",
                &[&slug, acct],
            )
            .await
            .unwrap()
            .get(0);
        ids.push(id);
    }
    let config = config(&db, &testkit::stripe().url());
    Env {
        state: platform::AppState::from_config(&config).unwrap(),
        _db: db,
        owner,
        alpha: ids[0],
        bravo: ids[1],
        acct_alpha,
        acct_bravo,
    }
}

/// A tenant request as the router sends it.
fn tenant_req(
    method: &str,
    path: &str,
    tenant: Uuid,
    slug: &str,
    body: Option<Value>,
) -> Request<Body> {
    let text = body.map(|v| v.to_string());
    testkit::edge::Signed::new(SECRET, "tenant", &format!("{slug}.platform.test"))
        .tenant(tenant)
        .id_prefix("req-donation-test")
        .request(method, path, text.as_ref().map(String::len))
        .header("content-type", "application/json")
        .body(text.map_or_else(Body::empty, Body::from))
        .unwrap()
}

async fn send(state: &platform::AppState, req: Request<Body>) -> (StatusCode, Value) {
    let resp = platform::app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Posts `event` to the webhook endpoint with a `Stripe-Signature` built from `header`.
async fn webhook_raw(
    state: &platform::AppState,
    body: Vec<u8>,
    header: Option<String>,
) -> (StatusCode, Value) {
    let mut b =
        Request::post("/api/webhooks/stripe/connect").header("content-type", "application/json");
    if let Some(h) = header {
        b = b.header("stripe-signature", h);
    }
    send(state, b.body(Body::from(body)).unwrap()).await
}

/// A correctly signed event (with the newer of our two secrets).
async fn webhook(state: &platform::AppState, event: &Value) -> (StatusCode, Value) {
    let body = serde_json::to_vec(event).unwrap();
    let h = payments::webhook::signature_header(&[WHSEC_NEW.as_bytes()], now(), &body);
    webhook_raw(state, body, Some(h)).await
}

fn event(kind: &str, account: &str, created: i64, object: Value) -> Value {
    json!({
        "id": format!("evt_{}", Uuid::new_v4().simple()),
        "object": "event",
        "type": kind,
        "created": created,
        "livemode": false,
        "account": account,
        "data": {"object": object},
    })
}

fn gift(amount: i64) -> Value {
    json!({"amount_minor": amount, "currency": "USD", "fund": "roof",
           "donor_name": "Ann Giver", "donor_email": "Ann@Example.org"})
}

async fn count(owner: &tokio_postgres::Client, sql: &str) -> i64 {
    owner.query_one(sql, &[]).await.unwrap().get(0)
}

/// Starts a one-time gift for alpha; returns (donation id, payment intent id).
async fn start_one_time(e: &Env, amount: i64) -> (Uuid, String) {
    let (status, body) = send(
        &e.state,
        tenant_req(
            "POST",
            "/api/donations",
            e.alpha,
            "alpha",
            Some(gift(amount)),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id: Uuid = body["donation_id"].as_str().unwrap().parse().unwrap();
    let pi: String = e
        .owner
        .query_one(
            "SELECT stripe_payment_intent_id FROM donations WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    (id, pi)
}

fn pi_object(pi: &str, donation: Uuid, amount: i64) -> Value {
    json!({"id": pi, "object": "payment_intent", "amount": amount, "amount_received": amount,
           "currency": "usd", "latest_charge": format!("ch_{}", &pi[3..]),
           "metadata": {"donation_id": donation.to_string()}})
}

#[tokio::test]
async fn one_time_gift_is_a_direct_charge_with_the_platform_fee() {
    let e = env().await;
    let (status, body) = send(
        &e.state,
        tenant_req("POST", "/api/donations", e.alpha, "alpha", Some(gift(2550))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // 2 % of 2 550 is 51.
    assert_eq!(body["fee_minor"], 51);
    assert_eq!(body["currency"], "usd");
    assert_eq!(body["stripe_account"], e.acct_alpha.as_str());
    assert_eq!(body["publishable_key"], "pk_test_platform");
    let secret = body["client_secret"].as_str().unwrap();
    let id: Uuid = body["donation_id"].as_str().unwrap().parse().unwrap();

    let row = e
        .owner
        .query_one(
            "SELECT status, amount_minor, fee_minor, net_minor, currency, fund, stripe_payment_intent_id
             FROM donations WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "pending");
    assert_eq!(
        (
            row.get::<_, i64>(1),
            row.get::<_, i64>(2),
            row.get::<_, i64>(3)
        ),
        (2550, 51, 2499)
    );
    assert_eq!(
        (row.get::<_, String>(4), row.get::<_, String>(5)),
        ("usd".into(), "roof".into())
    );
    let pi: String = row.get(6);
    assert!(
        secret.starts_with(&pi),
        "client secret belongs to the intent"
    );
    let audits = e
        .owner
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'donation.started' AND target_id = $1",
            &[&id.to_string()],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(audits, 1);

    // What Stripe received: on the connected account, with the fee and our idempotency key.
    let rec = testkit::stripe().recording();
    let create = rec
        .iter()
        .find(|r| {
            r["path"] == "/v1/payment_intents"
                && r["idempotency_key"] == format!("donation:{id}").as_str()
        })
        .expect("payment intent request recorded");
    assert_eq!(create["stripe_account"], e.acct_alpha.as_str());
    assert_eq!(testkit::param(create, "application_fee_amount"), Some("51"));
    assert_eq!(testkit::param(create, "amount"), Some("2550"));
    assert_eq!(testkit::param(create, "currency"), Some("usd"));
    assert_eq!(
        testkit::param(create, "metadata[donation_id]"),
        Some(id.to_string().as_str())
    );
    let customer = rec
        .iter()
        .find(|r| {
            r["path"] == "/v1/customers"
                && testkit::param(r, "metadata[tenant_id]") == Some(e.alpha.to_string().as_str())
        })
        .expect("customer request recorded");
    assert_eq!(customer["stripe_account"], e.acct_alpha.as_str());
    assert!(customer["idempotency_key"]
        .as_str()
        .unwrap()
        .starts_with("customer:"));
    // And the emulator holds that intent, for that customer.
    let (st, obj) = testkit::stripe().call("GET", &format!("/v1/payment_intents/{pi}"), &[]);
    assert_eq!(st, 200);
    assert_eq!(obj["amount"], 2550);
    assert_eq!(obj["metadata"]["donation_id"], id.to_string().as_str());

    // A second gift by the same donor reuses the customer.
    start_one_time(&e, 1000).await;
    assert_eq!(count(&e.owner, "SELECT count(*) FROM donors").await, 1);
    let customers = testkit::stripe()
        .recording()
        .iter()
        .filter(|r| {
            r["path"] == "/v1/customers"
                && testkit::param(r, "metadata[tenant_id]") == Some(e.alpha.to_string().as_str())
        })
        .count();
    assert_eq!(customers, 1);
}

#[tokio::test]
async fn bad_gifts_are_refused_and_write_nothing() {
    let e = env().await;
    let cases = [
        (
            json!({"amount_minor": 499, "currency": "usd", "donor_name": "A", "donor_email": "a@b.co"}),
            "amount_minor",
        ),
        (
            json!({"amount_minor": 1000, "currency": "gbp", "donor_name": "A", "donor_email": "a@b.co"}),
            "currency",
        ),
        (
            json!({"amount_minor": 1000, "currency": "usd", "fund": "pool", "donor_name": "A", "donor_email": "a@b.co"}),
            "fund",
        ),
        (
            json!({"amount_minor": 1000, "currency": "usd", "donor_name": "A", "donor_email": "nope"}),
            "donor_email",
        ),
        // Addresses lettre's `Address` takes but the mailer's `Mailbox` parse refuses: the
        // receipt would fail for good, so the gift is refused up front.
        (
            json!({"amount_minor": 1000, "currency": "usd", "donor_name": "A", "donor_email": "a@[127.0.0.1]"}),
            "donor_email",
        ),
        (
            json!({"amount_minor": 1000, "currency": "usd", "donor_name": "A", "donor_email": "\"a,b\"@x.org"}),
            "donor_email",
        ),
        (
            json!({"amount_minor": 1000, "currency": "usd", "donor_name": "A", "donor_email": "a@b.co", "frequency": "month"}),
            "payment_method",
        ),
        // Type errors and unknown fields now name the field (they said only "body" before).
        (
            json!({"amount_minor": 10.5, "currency": "usd", "donor_name": "A", "donor_email": "a@b.co"}),
            "amount_minor",
        ),
        (
            json!({"amount_minor": 1000, "currency": "usd", "donor_name": "A", "donor_email": "a@b.co", "card": "4242"}),
            "card",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = send(
            &e.state,
            tenant_req("POST", "/api/donations", e.alpha, "alpha", Some(body)),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    // A tenant whose payments are not enabled yet cannot take gifts.
    e.owner
        .execute(
            "UPDATE tenants SET stripe_account_status = 'pending' WHERE id = $1",
            &[&e.bravo],
        )
        .await
        .unwrap();
    let (status, _) = send(
        &e.state,
        tenant_req("POST", "/api/donations", e.bravo, "bravo", Some(gift(1000))),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(count(&e.owner, "SELECT count(*) FROM donations").await, 0);
    assert_eq!(count(&e.owner, "SELECT count(*) FROM donors").await, 0);
}

#[tokio::test]
async fn stripe_outage_keeps_the_gift_as_failed_not_lost() {
    let e = env().await;
    // Nothing listens on this port.
    let dead = format!("http://127.0.0.1:{}", testkit::free_port());
    let state = platform::AppState::from_config(&config(&e._db, &dead)).unwrap();
    let (status, problem) = send(
        &state,
        tenant_req("POST", "/api/donations", e.alpha, "alpha", Some(gift(1500))),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    let row = e
        .owner
        .query_one(
            "SELECT status, failure_reason, stripe_payment_intent_id FROM donations",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
    assert!(row.get::<_, String>(1).contains("stripe"));
    assert!(row.get::<_, Option<String>>(2).is_none());
}

#[tokio::test]
async fn succeeded_webhook_applies_once_and_queues_one_receipt() {
    let e = env().await;
    let (id, pi) = start_one_time(&e, 2500).await;
    let ev = event(
        "payment_intent.succeeded",
        &e.acct_alpha,
        now(),
        pi_object(&pi, id, 2500),
    );
    let (status, body) = webhook(&e.state, &ev).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "applied");
    let row = e
        .owner
        .query_one("SELECT status, stripe_charge_id, succeeded_at IS NOT NULL FROM donations WHERE id = $1", &[&id])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "succeeded");
    assert_eq!(row.get::<_, String>(1), format!("ch_{}", &pi[3..]));
    assert!(row.get::<_, bool>(2));
    let receipt = e
        .owner
        .query_one(
            "SELECT to_address, template, payload FROM email_outbox",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(receipt.get::<_, String>(0), "ann@example.org");
    assert_eq!(receipt.get::<_, String>(1), "donation_receipt");
    assert_eq!(receipt.get::<_, Value>(2)["amount_minor"], 2500);

    // Redelivery: 200, nothing changes.
    let (status, body) = webhook(&e.state, &ev).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["duplicate"], true);
    assert_eq!(
        count(&e.owner, "SELECT count(*) FROM email_outbox").await,
        1
    );
    assert_eq!(
        count(&e.owner, "SELECT count(*) FROM stripe_events").await,
        1
    );

    // Same success told again under a new event id (Stripe may): recorded as stale, no mail.
    let again = event(
        "payment_intent.succeeded",
        &e.acct_alpha,
        now(),
        pi_object(&pi, id, 2500),
    );
    let (_, body) = webhook(&e.state, &again).await;
    assert_eq!(body["outcome"], "stale");
    // A late failure never undoes the success.
    let late = event(
        "payment_intent.payment_failed",
        &e.acct_alpha,
        now() - 60,
        json!({"id": pi, "last_payment_error": {"message": "card declined"}}),
    );
    let (_, body) = webhook(&e.state, &late).await;
    assert_eq!(body["outcome"], "stale");
    let status: String = e
        .owner
        .query_one("SELECT status FROM donations WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "succeeded");
    assert_eq!(
        count(&e.owner, "SELECT count(*) FROM email_outbox").await,
        1
    );

    // The business metrics saw it (on the operator listener).
    let resp = platform::operator::app(e.state.clone())
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for needle in [
        "platform_stripe_webhook_events_total{type=\"payment_intent.succeeded\",outcome=\"applied\"}",
        "platform_stripe_webhook_events_total{type=\"payment_intent.succeeded\",outcome=\"duplicate\"}",
        "platform_donation_amount_minor_bucket{currency=\"usd\",le=\"2500\"}",
        "platform_donations_started_total{kind=\"one_time\",currency=\"usd\"}",
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
}

#[tokio::test]
async fn failure_then_success_and_refunds_in_any_order() {
    let e = env().await;
    let (id, pi) = start_one_time(&e, 4000).await;
    let failed = event(
        "payment_intent.payment_failed",
        &e.acct_alpha,
        now() - 30,
        json!({"id": pi, "last_payment_error": {"message": "Your card was declined."}}),
    );
    assert_eq!(webhook(&e.state, &failed).await.1["outcome"], "applied");
    let row = e
        .owner
        .query_one(
            "SELECT status, failure_reason FROM donations WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(row.get::<_, String>(1), "Your card was declined.");
    // The donor retries with another card: success wins.
    let ok = event(
        "payment_intent.succeeded",
        &e.acct_alpha,
        now(),
        pi_object(&pi, id, 4000),
    );
    assert_eq!(webhook(&e.state, &ok).await.1["outcome"], "applied");

    let charge = format!("ch_{}", &pi[3..]);
    let refund = |amount: i64, created: i64| {
        event(
            "charge.refunded",
            &e.acct_alpha,
            created,
            json!({"id": charge, "payment_intent": pi, "amount": 4000, "amount_refunded": amount}),
        )
    };
    // The later, larger refund arrives first; the earlier one after it changes nothing.
    assert_eq!(
        webhook(&e.state, &refund(1500, now())).await.1["outcome"],
        "applied"
    );
    assert_eq!(
        webhook(&e.state, &refund(500, now() - 10)).await.1["outcome"],
        "stale"
    );
    let row = e
        .owner
        .query_one(
            "SELECT status, refunded_minor FROM donations WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i64>(1)),
        ("partially_refunded".into(), 1500)
    );
    assert_eq!(
        webhook(&e.state, &refund(4000, now())).await.1["outcome"],
        "applied"
    );
    let row = e
        .owner
        .query_one(
            "SELECT status, refunded_minor FROM donations WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i64>(1)),
        ("refunded".into(), 4000)
    );
    // A dispute on the same charge.
    let dispute = event(
        "charge.dispute.created",
        &e.acct_alpha,
        now(),
        json!({"id": "dp_1", "charge": charge, "amount": 4000}),
    );
    assert_eq!(webhook(&e.state, &dispute).await.1["outcome"], "applied");
    let status: String = e
        .owner
        .query_one("SELECT status FROM donations WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "disputed");
}

#[tokio::test]
async fn forged_stale_and_malformed_webhooks_are_refused_without_effect() {
    let e = env().await;
    let (id, pi) = start_one_time(&e, 2500).await;
    let ev = event(
        "payment_intent.succeeded",
        &e.acct_alpha,
        now(),
        pi_object(&pi, id, 2500),
    );
    let body = serde_json::to_vec(&ev).unwrap();
    let sign =
        |secrets: &[&[u8]], ts: i64, b: &[u8]| payments::webhook::signature_header(secrets, ts, b);
    let refused = [
        ("no header", None),
        ("forged", Some(sign(&[b"whsec_attacker"], now(), &body))),
        (
            "stale",
            Some(sign(&[WHSEC_NEW.as_bytes()], now() - 301, &body)),
        ),
        (
            "future",
            Some(sign(&[WHSEC_NEW.as_bytes()], now() + 301, &body)),
        ),
        ("malformed", Some("t=yesterday,v1=zz".to_owned())),
        ("no v1", Some(format!("t={}", now()))),
        (
            "body altered",
            Some(sign(&[WHSEC_NEW.as_bytes()], now(), b"{}")),
        ),
    ];
    for (what, header) in refused {
        let (status, problem) = webhook_raw(&e.state, body.clone(), header).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {problem}");
        assert_eq!(problem["status"], 400, "{what}");
    }
    // Valid signature over a payload that is not an event.
    for bad in [
        &b"{not json"[..],
        br#"{"id":"evt_1","type":"x","created":1,"data":{"object":[]}}"#,
    ] {
        let h = sign(&[WHSEC_NEW.as_bytes()], now(), bad);
        let (status, problem) = webhook_raw(&e.state, bad.to_vec(), Some(h)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .starts_with("event payload"),
            "{problem}"
        );
    }
    assert_eq!(
        count(&e.owner, "SELECT count(*) FROM stripe_events").await,
        0
    );
    let status: String = e
        .owner
        .query_one("SELECT status FROM donations WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "pending");

    // During a secret roll Stripe sends two v1 values; one of ours among them is enough, and
    // our older secret still verifies.
    let rolled = sign(&[b"whsec_not_ours", WHSEC_NEW.as_bytes()], now(), &body);
    assert_eq!(
        webhook_raw(&e.state, body.clone(), Some(rolled)).await.0,
        StatusCode::OK
    );
    let ev2 = event(
        "customer.created",
        &e.acct_alpha,
        now(),
        json!({"id": "cus_1"}),
    );
    let body2 = serde_json::to_vec(&ev2).unwrap();
    let old = sign(&[WHSEC_OLD.as_bytes()], now(), &body2);
    let (status, reply) = webhook_raw(&e.state, body2, Some(old)).await;
    assert_eq!(status, StatusCode::OK);
    // Unknown types are acknowledged and recorded as ignored.
    assert_eq!(reply["outcome"], "ignored");
}

#[tokio::test]
async fn events_from_another_account_never_touch_a_tenant() {
    let e = env().await;
    let (id, pi) = start_one_time(&e, 2500).await;
    // Bravo's account claims alpha's payment intent (and names alpha's donation in metadata).
    let ev = event(
        "payment_intent.succeeded",
        &e.acct_bravo,
        now(),
        pi_object(&pi, id, 2500),
    );
    assert_eq!(webhook(&e.state, &ev).await.1["outcome"], "ignored");
    // No account at all: cannot be attributed.
    let mut no_acct = event(
        "payment_intent.succeeded",
        &e.acct_alpha,
        now(),
        pi_object(&pi, id, 2500),
    );
    no_acct["account"] = Value::Null;
    assert_eq!(webhook(&e.state, &no_acct).await.1["outcome"], "ignored");
    // Right account, wrong amount: not applied.
    let ev = event(
        "payment_intent.succeeded",
        &e.acct_alpha,
        now(),
        pi_object(&pi, id, 1),
    );
    assert_eq!(webhook(&e.state, &ev).await.1["outcome"], "ignored");
    let status: String = e
        .owner
        .query_one("SELECT status FROM donations WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "pending");
    assert_eq!(
        count(&e.owner, "SELECT count(*) FROM email_outbox").await,
        0
    );
}

#[tokio::test]
async fn recurring_gift_subscribes_with_fee_percent_and_donor_can_cancel() {
    let e = env().await;
    let pm = testkit::stripe().card_payment_method();
    let mut body = gift(1200);
    body["frequency"] = json!("month");
    body["payment_method"] = json!(pm);
    let (status, started) = send(
        &e.state,
        tenant_req("POST", "/api/donations", e.alpha, "alpha", Some(body)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let rid: Uuid = started["recurring_donation_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(started["subscription_status"], "active");
    let cancel_url = started["cancel_url"].as_str().unwrap().to_owned();
    assert!(
        cancel_url.starts_with("https://alpha.platform.test/give/cancel?gift="),
        "{cancel_url}"
    );

    let rec = testkit::stripe().recording();
    let sub_req = rec
        .iter()
        .find(|r| {
            r["path"] == "/v1/subscriptions"
                && r["idempotency_key"] == format!("subscription:{rid}").as_str()
        })
        .expect("subscription request recorded");
    assert_eq!(sub_req["stripe_account"], e.acct_alpha.as_str());
    assert_eq!(
        testkit::param(sub_req, "application_fee_percent"),
        Some("2")
    );
    let plan_req = rec
        .iter()
        .find(|r| {
            r["path"] == "/v1/plans" && r["idempotency_key"] == format!("plan:{rid}").as_str()
        })
        .expect("plan request recorded");
    assert_eq!(testkit::param(plan_req, "interval"), Some("month"));
    assert_eq!(testkit::param(plan_req, "amount"), Some("1200"));

    let row = e
        .owner
        .query_one("SELECT status, stripe_subscription_id, fee_basis_points FROM recurring_donations WHERE id = $1", &[&rid])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "active");
    assert_eq!(row.get::<_, i32>(2), 200);
    let sub: String = row.get(1);

    // Each paid invoice becomes a donation, with the fee Stripe reports.
    let invoice = |id: &str| {
        event(
            "invoice.paid",
            &e.acct_alpha,
            now(),
            json!({"id": id, "object": "invoice", "subscription": sub,
            "amount_paid": 1200, "currency": "usd", "application_fee_amount": 24,
            "payment_intent": format!("pi_{id}"), "charge": format!("ch_{id}")}),
        )
    };
    let first = invoice("in_first");
    assert_eq!(webhook(&e.state, &first).await.1["outcome"], "applied");
    assert_eq!(webhook(&e.state, &first).await.1["duplicate"], true);
    assert_eq!(
        webhook(&e.state, &invoice("in_second")).await.1["outcome"],
        "applied"
    );
    let rows = e
        .owner
        .query("SELECT kind, status, amount_minor, fee_minor, net_minor, recurring_donation_id FROM donations ORDER BY created_at", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(
            (r.get::<_, String>(0), r.get::<_, String>(1)),
            ("recurring".into(), "succeeded".into())
        );
        assert_eq!(
            (r.get::<_, i64>(2), r.get::<_, i64>(3), r.get::<_, i64>(4)),
            (1200, 24, 1176)
        );
        assert_eq!(r.get::<_, Uuid>(5), rid);
    }
    let mail: Value = e
        .owner
        .query_one("SELECT payload FROM email_outbox LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(mail["cancel_url"], cancel_url.as_str());

    // A failed later invoice marks the gift past due and tells the donor once.
    let failed = event(
        "invoice.payment_failed",
        &e.acct_alpha,
        now(),
        json!({"id": "in_third", "subscription": sub,
        "amount_due": 1200, "currency": "usd", "attempt_count": 1}),
    );
    assert_eq!(webhook(&e.state, &failed).await.1["outcome"], "applied");
    let status: String = e
        .owner
        .query_one(
            "SELECT status FROM recurring_donations WHERE id = $1",
            &[&rid],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "past_due");
    assert_eq!(
        count(
            &e.owner,
            "SELECT count(*) FROM email_outbox WHERE template = 'recurring_failed'"
        )
        .await,
        1
    );

    // Cancel: a wrong token is a 404, the right one cancels at Stripe and here.
    let query = cancel_url.split_once('?').unwrap().1;
    let token = query.split("token=").nth(1).unwrap();
    let (status, _) = send(
        &e.state,
        tenant_req(
            "POST",
            &format!("/api/recurring/{rid}/cancel"),
            e.alpha,
            "alpha",
            Some(json!({"token": "0".repeat(64)})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Another tenant's host cannot cancel it even with the right token.
    let (status, _) = send(
        &e.state,
        tenant_req(
            "POST",
            &format!("/api/recurring/{rid}/cancel"),
            e.bravo,
            "bravo",
            Some(json!({"token": token})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, page) = {
        let resp = platform::app(e.state.clone())
            .oneshot(tenant_req(
                "GET",
                &format!("/give/cancel?{query}"),
                e.alpha,
                "alpha",
                None,
            ))
            .await
            .unwrap();
        (
            resp.status(),
            String::from_utf8(
                resp.into_body()
                    .collect()
                    .await
                    .unwrap()
                    .to_bytes()
                    .to_vec(),
            )
            .unwrap(),
        )
    };
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("method=\"post\""), "GET only shows a form");
    let (status, body) = send(
        &e.state,
        tenant_req(
            "POST",
            &format!("/api/recurring/{rid}/cancel"),
            e.alpha,
            "alpha",
            Some(json!({"token": token})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "canceled");
    let (_, obj) = testkit::stripe().call("GET", &format!("/v1/subscriptions/{sub}"), &[]);
    assert_eq!(obj["status"], "canceled", "cancelled at Stripe too");
    // A late "updated: active" event cannot restart it.
    let late = event(
        "customer.subscription.updated",
        &e.acct_alpha,
        now() - 100,
        json!({"id": sub, "status": "active"}),
    );
    assert_eq!(webhook(&e.state, &late).await.1["outcome"], "stale");
    let status: String = e
        .owner
        .query_one(
            "SELECT status FROM recurring_donations WHERE id = $1",
            &[&rid],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "canceled");
}

#[tokio::test]
async fn account_updates_apply_in_event_order() {
    let e = env().await;
    e.owner
        .execute(
            "UPDATE tenants SET stripe_account_status = 'pending' WHERE id = $1",
            &[&e.bravo],
        )
        .await
        .unwrap();
    let acct = |created: i64, enabled: bool| {
        event(
            "account.updated",
            &e.acct_bravo,
            created,
            json!({"id": e.acct_bravo, "object": "account", "charges_enabled": enabled, "details_submitted": true}),
        )
    };
    assert_eq!(
        webhook(&e.state, &acct(now(), true)).await.1["outcome"],
        "applied"
    );
    // An older "restricted" state delivered late is stale.
    assert_eq!(
        webhook(&e.state, &acct(now() - 120, false)).await.1["outcome"],
        "stale"
    );
    let status: String = e
        .owner
        .query_one(
            "SELECT stripe_account_status FROM tenants WHERE id = $1",
            &[&e.bravo],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "enabled");
    // And bravo can now take gifts.
    let (status, body) = send(
        &e.state,
        tenant_req("POST", "/api/donations", e.bravo, "bravo", Some(gift(1000))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Alpha's state with one group-commit slot, so deliveries arriving while it is busy must share
/// the next transaction; plus a donor on alpha and a tag for unique intent ids.
async fn one_group_slot(e: &Env) -> (platform::AppState, Uuid, String) {
    let state = platform::AppState {
        payments: std::sync::Arc::new(platform::state::Payments {
            group: platform::webhooks::batch::GroupCommit::new(e.state.db.clone(), 64, 1),
            ..(*e.state.payments).clone()
        }),
        ..e.state.clone()
    };
    let donor: Uuid = e
        .owner
        .query_one(
            "INSERT INTO donors (tenant_id, email, name) VALUES ($1, 'many@example.org', 'Many Giver') RETURNING id",
            &[&e.alpha],
        )
        .await
        .unwrap()
        .get(0);
    (
        state,
        donor,
        Uuid::new_v4().simple().to_string()[..10].to_owned(),
    )
}

/// One `payment_intent.succeeded` event per (gift, intent id), from alpha's account.
fn successes(e: &Env, gifts: &[(Uuid, String)]) -> Vec<Value> {
    gifts
        .iter()
        .map(|(id, pi)| {
            event(
                "payment_intent.succeeded",
                &e.acct_alpha,
                now(),
                pi_object(pi, *id, 1000),
            )
        })
        .collect()
}

/// Many successes at once, with redeliveries, a second event for one gift, a wrong amount and
/// another account's event in the same burst: grouped into few transactions, each gift
/// applied once with one receipt, and every delivery answered as it would be alone.
#[tokio::test]
async fn concurrent_successes_commit_in_groups_each_applied_once() {
    let e = env().await;
    let (state, donor, tag) = one_group_slot(&e).await;
    const N: usize = 40;
    let rows = e
        .owner
        .query(
            "INSERT INTO donations (tenant_id, donor_id, kind, amount_minor, currency, fee_minor, net_minor, stripe_payment_intent_id)
             SELECT $1, $2, 'one_time', 1000, 'usd', 20, 980, 'pi_grp' || $3 || '_' || g
             FROM generate_series(1, $4::int) g RETURNING id, stripe_payment_intent_id",
            &[&e.alpha, &donor, &tag, &(N as i32)],
        )
        .await
        .unwrap();
    let gifts: Vec<(Uuid, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut events = successes(&e, &gifts);
    // Redeliveries of the first ten, sent in the same burst.
    let mut deliveries: Vec<Value> = events.clone();
    deliveries.extend(events[..10].iter().cloned());
    // The same success under a second event id: stale.
    let (id0, pi0) = &gifts[0];
    deliveries.push(event(
        "payment_intent.succeeded",
        &e.acct_alpha,
        now(),
        pi_object(pi0, *id0, 1000),
    ));
    // An amount that does not match the gift: ignored, gift untouched.
    let (id1, pi1) = &gifts[1];
    let wrong = event(
        "payment_intent.succeeded",
        &e.acct_alpha,
        now(),
        pi_object(pi1, *id1, 999),
    );
    deliveries.push(wrong.clone());
    // Bravo's account naming alpha's intent: ignored, never attributed to alpha.
    let foreign = event(
        "payment_intent.succeeded",
        &e.acct_bravo,
        now(),
        pi_object(pi1, *id1, 1000),
    );
    deliveries.push(foreign.clone());
    events.push(wrong);
    events.push(foreign);
    // No intent id, only a gift's id in the metadata: ignored, the gift (no intent yet) untouched.
    let orphan: Uuid = e
        .owner
        .query_one(
            "INSERT INTO donations (tenant_id, donor_id, kind, amount_minor, currency, fee_minor, net_minor)
             VALUES ($1, $2, 'one_time', 1000, 'usd', 20, 980) RETURNING id",
            &[&e.alpha, &donor],
        )
        .await
        .unwrap()
        .get(0);
    let mut no_id = pi_object("pi_none", orphan, 1000);
    no_id.as_object_mut().unwrap().remove("id");
    let no_id = event("payment_intent.succeeded", &e.acct_alpha, now(), no_id);
    deliveries.push(no_id.clone());
    events.push(no_id);

    let mut set = tokio::task::JoinSet::new();
    for ev in deliveries {
        let state = state.clone();
        set.spawn(async move { webhook(&state, &ev).await });
    }
    let (mut applied, mut duplicate, mut stale, mut ignored) = (0, 0, 0, 0);
    while let Some(r) = set.join_next().await {
        let (status, body) = r.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        match (body["outcome"].as_str(), body["duplicate"].as_bool()) {
            (Some("applied"), _) => applied += 1,
            (Some("stale"), _) => stale += 1,
            (Some("ignored"), _) => ignored += 1,
            (None, Some(true)) => duplicate += 1,
            _ => panic!("unexpected answer {body}"),
        }
    }
    assert_eq!((applied, duplicate, stale, ignored), (N, 10, 1, 3));

    let ids: Vec<Uuid> = gifts.iter().map(|(id, _)| *id).collect();
    let row = e
        .owner
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(DISTINCT xmin::text)
             FROM donations WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), N as i64, "every gift succeeded");
    let transactions = row.get::<_, i64>(1);
    assert!(
        transactions <= (N / 2) as i64,
        "{N} gifts were written by {transactions} transactions: deliveries were not grouped"
    );
    assert_eq!(
        count(
            &e.owner,
            "SELECT count(*) FROM email_outbox WHERE template = 'donation_receipt'"
        )
        .await,
        N as i64,
        "one receipt per gift"
    );
    assert_eq!(
        count(&e.owner, "SELECT count(*) FROM stripe_events").await,
        events.len() as i64 + 1,
        "each event id recorded once"
    );
    let outcomes = e
        .owner
        .query(
            "SELECT outcome, count(*), count(tenant_id) FROM stripe_events GROUP BY outcome ORDER BY outcome",
            &[],
        )
        .await
        .unwrap();
    let outcomes: Vec<(String, i64, i64)> = outcomes
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    // The foreign and the id-less events name no tenant; the wrong amount is alpha's but
    // changes nothing.
    assert_eq!(
        outcomes,
        vec![
            ("applied".into(), N as i64, N as i64),
            ("ignored".into(), 3, 1),
            ("stale".into(), 1, 1)
        ]
    );
    let orphan_status: String = e
        .owner
        .query_one("SELECT status FROM donations WHERE id = $1", &[&orphan])
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphan_status, "pending");
    // The stored payload is the event as sent.
    let stored: Value = e
        .owner
        .query_one(
            "SELECT payload FROM stripe_events WHERE id = $1",
            &[&events[5]["id"].as_str().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, events[5]);
}

/// A group that cannot be settled (here an intent that matches two donations) rolls back as a
/// whole and every delivery in it is handled alone: the healthy ones still apply once.
#[tokio::test]
async fn a_failed_group_hands_every_delivery_back() {
    let e = env().await;
    let (state, donor, tag) = one_group_slot(&e).await;
    let insert = "INSERT INTO donations (tenant_id, donor_id, kind, amount_minor, currency, fee_minor, net_minor, stripe_payment_intent_id)
                  VALUES ($1, $2, 'one_time', 1000, 'usd', 20, 980, $3) RETURNING id";
    let mut good = Vec::new();
    for i in 0..12 {
        let pi = format!("pi_fb{tag}_{i}");
        let id: Uuid = e
            .owner
            .query_one(insert, &[&e.alpha, &donor, &pi])
            .await
            .unwrap()
            .get(0);
        good.push((id, pi));
    }
    // An intent id on one gift and, in its metadata, another gift that has no intent yet.
    let taken = format!("pi_fb{tag}_taken");
    let _: Uuid = e
        .owner
        .query_one(insert, &[&e.alpha, &donor, &taken])
        .await
        .unwrap()
        .get(0);
    let no_intent: Uuid = e
        .owner
        .query_one(insert, &[&e.alpha, &donor, &None::<String>])
        .await
        .unwrap()
        .get(0);

    let mut set = tokio::task::JoinSet::new();
    let mut deliveries = successes(&e, &good);
    deliveries.insert(
        6,
        event(
            "payment_intent.succeeded",
            &e.acct_alpha,
            now(),
            pi_object(&taken, no_intent, 1000),
        ),
    );
    for ev in deliveries {
        let state = state.clone();
        set.spawn(async move { webhook(&state, &ev).await });
    }
    let (mut ok, mut failed) = (0, 0);
    while let Some(r) = set.join_next().await {
        let (status, body) = r.unwrap();
        if status == StatusCode::OK {
            assert_eq!(body["outcome"], "applied", "{body}");
            ok += 1;
        } else {
            // Stripe redelivers it later; nothing of it was kept.
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
            failed += 1;
        }
    }
    assert_eq!((ok, failed), (12, 1));
    let ids: Vec<Uuid> = good.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        e.owner
            .query_one(
                "SELECT count(*) FROM donations WHERE id = ANY($1) AND status = 'succeeded'",
                &[&ids]
            )
            .await
            .unwrap()
            .get::<_, i64>(0),
        12
    );
    assert_eq!(
        count(&e.owner, "SELECT count(*) FROM email_outbox").await,
        12
    );
    assert_eq!(
        count(&e.owner, "SELECT count(*) FROM stripe_events").await,
        12
    );
    assert_eq!(
        count(
            &e.owner,
            "SELECT count(*) FROM donations WHERE status = 'succeeded'"
        )
        .await,
        12,
        "neither gift of the ambiguous intent was touched"
    );
}
