//! Cron job bodies against real PostgreSQL and the Stripe emulator: weekly report figures
//! checked against hand-computed totals, and reconciliation of pending donations.

#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use tenant_config::config::{MapEnv, WorkersConfig};
use uuid::Uuid;
use workers::context::Ctx;

/// donor, recurring gift, kind, amount, fee, fund, status, succeeded at, refunded.
type Seeded = (
    Uuid,
    Option<Uuid>,
    &'static str,
    i64,
    i64,
    &'static str,
    &'static str,
    &'static str,
    i64,
);

fn ctx(db: &testkit::TestDb, stripe: bool) -> Ctx {
    let url = db.workers_url();
    let api = testkit::stripe().url();
    let mut pairs = vec![
        ("DATABASE_URL", url.as_str()),
        ("CRON_SECRET", "cron-secret-for-tests-0123456789abcdef"),
        ("SMTP_URL", "smtp://127.0.0.1:9"),
        ("PUBLIC_SCHEME", "http"),
        ("PUBLIC_PORT", "8000"),
    ];
    if stripe {
        pairs.push(("STRIPE_SECRET_KEY", testkit::STRIPE_TEST_KEY));
        pairs.push(("STRIPE_API_BASE", api.as_str()));
    }
    let config: WorkersConfig =
        tenant_config::config::load(None, &MapEnv::from_pairs(pairs)).unwrap();
    Ctx::from_config(&config).unwrap()
}

#[tokio::test]
async fn weekly_report_matches_hand_computed_totals() {
    let db = testkit::database().await;
    let o = db.connect_as("postgres").await;
    let t: Uuid = o
        .query_one("INSERT INTO tenants (slug, name, status) VALUES ('grace', 'Grace', 'active') RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    o.execute(
        "INSERT INTO tenant_users (tenant_id, email, password_hash, role) VALUES ($1, 'pastor@grace.test', 'x', 'owner'),
                ($1, 'gone@grace.test', 'x', 'staff')",
        &[&t],
    )
    .await
    .unwrap();
    o.execute(
        "INSERT INTO admin_users (email, password_hash, role) VALUES ('ops@platform.test', 'x', 'owner')",
        &[],
    )
    .await
    .unwrap();
    o.execute(
        "UPDATE tenant_users SET disabled_at = now() WHERE email = 'gone@grace.test'",
        &[],
    )
    .await
    .unwrap();
    let donor = |email: &'static str| {
        let o = &o;
        async move {
            o.query_one(
                "INSERT INTO donors (tenant_id, email) VALUES ($1, $2) RETURNING id",
                &[&t, &email],
            )
            .await
            .unwrap()
            .get::<_, Uuid>(0)
        }
    };
    let (ann, bob, cat) = (
        donor("ann@x.test").await,
        donor("bob@x.test").await,
        donor("cat@x.test").await,
    );
    let rec: Uuid = o
        .query_one(
            "INSERT INTO recurring_donations (tenant_id, donor_id, amount_minor, currency, fee_basis_points, billing_interval, status)
             VALUES ($1, $2, 1000, 'usd', 200, 'month', 'active') RETURNING id",
            &[&t, &cat],
        )
        .await
        .unwrap()
        .get(0);
    // Week of 2026-11-16 (Mon) to 2026-11-23. Bob gave before that week: he is returning.
    let rows: [Seeded; 7] = [
        (
            bob,
            None,
            "one_time",
            5000,
            100,
            "general",
            "succeeded",
            "2026-11-02T10:00:00Z",
            0,
        ),
        (
            ann,
            None,
            "one_time",
            2550,
            51,
            "general",
            "succeeded",
            "2026-11-16T00:00:00Z",
            0,
        ),
        (
            ann,
            None,
            "one_time",
            10000,
            200,
            "roof",
            "partially_refunded",
            "2026-11-18T12:00:00Z",
            4000,
        ),
        (
            bob,
            None,
            "one_time",
            3000,
            60,
            "general",
            "disputed",
            "2026-11-20T09:00:00Z",
            0,
        ),
        (
            cat,
            Some(rec),
            "recurring",
            1000,
            20,
            "general",
            "succeeded",
            "2026-11-22T23:59:59Z",
            0,
        ),
        // Outside the week, and a failure inside it: neither counts.
        (
            ann,
            None,
            "one_time",
            7000,
            140,
            "general",
            "succeeded",
            "2026-11-23T00:00:00Z",
            0,
        ),
        (
            cat,
            None,
            "one_time",
            900,
            18,
            "general",
            "failed",
            "2026-11-19T00:00:00Z",
            0,
        ),
    ];
    for (d, r, kind, amount, fee, fund, status, at, refunded) in rows {
        let at: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
        o.execute(
            "INSERT INTO donations (tenant_id, donor_id, recurring_donation_id, kind, amount_minor, currency, fee_minor,
                                    net_minor, fund, status, succeeded_at, refunded_minor)
             VALUES ($1, $2, $3, $4, $5, 'usd', $6, $7, $8, $9, $10, $11)",
            &[&t, &d, &r, &kind, &amount, &fee, &(amount - fee), &fund, &status, &at, &refunded],
        )
        .await
        .unwrap();
    }
    let c = ctx(&db, false);
    let now: chrono::DateTime<chrono::Utc> = "2026-11-23T06:00:00Z".parse().unwrap();
    let counts = workers::jobs::reports::run(&c, now).await.unwrap();
    assert_eq!(counts["tenant_reports_queued"], 1);
    // Rerunning the cron job queues nothing twice.
    assert_eq!(
        workers::jobs::reports::run(&c, now).await.unwrap()["tenant_reports_queued"],
        0
    );
    let conn = c.db.get().await.unwrap();
    let jobs = workers::queue::fetch(&**conn, "test", 10, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    workers::jobs::reports::tenant_job(c.clone(), jobs[0].clone())
        .await
        .unwrap();

    let r = o
        .query_one("SELECT period_start::text, period_end::text, summary, csv FROM reports WHERE tenant_id = $1", &[&t])
        .await
        .unwrap();
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, String>(1)),
        ("2026-11-16".into(), "2026-11-23".into())
    );
    let summary: Value = r.get(2);
    // By hand: gross 2550 + 10000 + 3000 + 1000 = 16550; fees 51 + 200 + 60 + 20 = 331;
    // net 16219; refunded 4000; one dispute; 3 one-time + 1 recurring; Ann and Cat new, Bob returning.
    assert_eq!(
        summary["by_currency"]["usd"],
        json!({"gross_minor": 16550, "fees_minor": 331, "net_minor": 16219, "refunded_minor": 4000})
    );
    assert_eq!(summary["gifts_one_time"], 3);
    assert_eq!(summary["gifts_recurring"], 1);
    assert_eq!(summary["new_donors"], 2);
    assert_eq!(summary["returning_donors"], 1);
    assert_eq!(summary["disputes"], 1);
    assert_eq!(
        r.get::<_, String>(3),
        "fund,currency,kind,gifts,gross_minor,fees_minor,net_minor,refunded_minor,disputes\n\
         general,usd,one_time,2,5550,111,5439,0,1\n\
         general,usd,recurring,1,1000,20,980,0,0\n\
         roof,usd,one_time,1,10000,200,9800,4000,0\n"
    );
    let mails: Vec<(String, Value)> = o
        .query(
            "SELECT to_address, payload FROM email_outbox WHERE template = 'weekly_report'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(mails.len(), 1, "active staff only: {mails:?}");
    assert_eq!(mails[0].0, "pastor@grace.test");
    // The e-mail links to a page that exists: the staff reports page on the tenant's subdomain,
    // with the configured public scheme and port.
    assert_eq!(
        mails[0].1["dashboard_url"],
        "http://grace.platform.localhost:8000/staff/reports"
    );
    let admin_links: Vec<Value> = o
        .query(
            "SELECT payload->'dashboard_url' FROM email_outbox WHERE template = 'admin_summary'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        admin_links,
        [json!("http://admin.platform.localhost:8000/")]
    );
    let platform: Value = o
        .query_one(
            "SELECT summary FROM reports WHERE kind = 'weekly_platform'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(platform["by_currency"]["usd"]["gross_minor"], 16550);
    assert_eq!(platform["by_currency"]["usd"]["fees_minor"], 331);
}

#[tokio::test]
async fn reconciliation_settles_what_webhooks_missed() {
    let db = testkit::database().await;
    let o = db.connect_as("postgres").await;
    let emu = testkit::stripe();
    let acct = format!("acct_rec{}", &Uuid::new_v4().simple().to_string()[..10]);
    let t: Uuid = o
        .query_one(
            "INSERT INTO tenants (slug, name, status, stripe_account_id, stripe_account_status)
             VALUES ('grace', 'Grace', 'active', $1, 'enabled') RETURNING id",
            &[&acct],
        )
        .await
        .unwrap()
        .get(0);
    let d: Uuid = o
        .query_one(
            "INSERT INTO donors (tenant_id, email) VALUES ($1, 'ann@x.test') RETURNING id",
            &[&t],
        )
        .await
        .unwrap()
        .get(0);
    // A paid intent whose webhook never came, an abandoned one, and a fresh one left alone.
    let pm = emu.card_payment_method();
    let (_, paid) = emu.call(
        "POST",
        "/v1/payment_intents",
        &[
            ("amount", "2500"),
            ("currency", "usd"),
            ("payment_method", &pm),
            ("confirm", "true"),
        ],
    );
    assert_eq!(paid["status"], "succeeded");
    let (_, waiting) = emu.call(
        "POST",
        "/v1/payment_intents",
        &[("amount", "1500"), ("currency", "usd")],
    );
    let (_, fresh) = emu.call(
        "POST",
        "/v1/payment_intents",
        &[("amount", "1000"), ("currency", "usd")],
    );
    let mut ids = Vec::new();
    for (pi, amount, age) in [
        (&paid, 2500i64, "2 hours"),
        (&waiting, 1500, "25 hours"),
        (&fresh, 1000, "5 minutes"),
    ] {
        let id: Uuid = o
            .query_one(
                &format!(
                    "INSERT INTO donations (tenant_id, donor_id, kind, amount_minor, currency, fee_minor, net_minor,
                                            stripe_payment_intent_id, created_at)
                     VALUES ($1, $2, 'one_time', $3, 'usd', 0, $3, $4, now() - interval '{age}') RETURNING id"
                ),
                &[&t, &d, &amount, &pi["id"].as_str().unwrap()],
            )
            .await
            .unwrap()
            .get(0);
        ids.push(id);
    }
    // And a gift that never reached Stripe, a day old.
    let lost: Uuid = o
        .query_one(
            "INSERT INTO donations (tenant_id, donor_id, kind, amount_minor, currency, fee_minor, net_minor, created_at)
             VALUES ($1, $2, 'one_time', 700, 'usd', 0, 700, now() - interval '2 days') RETURNING id",
            &[&t, &d],
        )
        .await
        .unwrap()
        .get(0);
    let c = ctx(&db, true);
    let counts = workers::jobs::donations::run(&c).await.unwrap();
    assert_eq!(counts["succeeded"], 1, "{counts}");
    assert_eq!(counts["abandoned"], 1, "{counts}");
    assert_eq!(counts["never_reached_stripe"], 1, "{counts}");
    let status = |id: Uuid| {
        let o = &o;
        async move {
            o.query_one("SELECT status FROM donations WHERE id = $1", &[&id])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(status(ids[0]).await, "succeeded");
    assert_eq!(status(ids[1]).await, "canceled");
    assert_eq!(status(ids[2]).await, "pending");
    assert_eq!(status(lost).await, "failed");
    let receipts: i64 = o
        .query_one("SELECT count(*) FROM email_outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(receipts, 1);
    let (_, obj) = emu.call(
        "GET",
        &format!("/v1/payment_intents/{}", waiting["id"].as_str().unwrap()),
        &[],
    );
    assert_eq!(obj["status"], "canceled", "cancelled at Stripe too");
    // On the tenant's connected account, with an idempotency key.
    let rec = emu.recording();
    let cancel = rec
        .iter()
        .find(|r| r["idempotency_key"] == format!("abandon:{}", ids[1]).as_str())
        .unwrap();
    assert_eq!(cancel["stripe_account"], acct.as_str());
    // Idempotent: a second run changes nothing.
    let again = workers::jobs::donations::run(&c).await.unwrap();
    assert_eq!(
        (again["succeeded"].as_i64(), again["abandoned"].as_i64()),
        (Some(0), Some(0)),
        "{again}"
    );
    assert_eq!(
        o.query_one("SELECT count(*) FROM email_outbox", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        1
    );
}
