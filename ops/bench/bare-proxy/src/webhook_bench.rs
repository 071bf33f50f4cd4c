//! Webhook ingestion benchmark (not a test): seeds pending donations, then posts signed
//! `payment_intent.succeeded` events for them to a running platform — a share of them
//! redelivered, as Stripe does — and prints events per second and latency. Afterwards it checks
//! in the database that every unique event was applied exactly once and queued exactly one
//! receipt, so a fast but wrong run cannot pass as a result.
//!
//! Usage: webhook-bench <owner-db-url> <webhook-url> <webhook-secret> [events] [duplicate-share]
//! [concurrency]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: webhook-bench <owner-db-url> <webhook-url> <secret> [events=20000] [duplicates=0.2] [concurrency=32]");
        std::process::exit(2);
    }
    let (db_url, url, secret) = (&args[1], args[2].clone(), args[3].clone());
    let events: usize = args.get(4).map_or(Ok(20_000), |s| s.parse())?;
    let dup_share: f64 = args.get(5).map_or(Ok(0.2), |s| s.parse())?;
    let concurrency: usize = args.get(6).map_or(Ok(32), |s| s.parse())?;

    let (db, conn) = tokio_postgres::connect(db_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let account = format!("acct_bench{tag}");
    let tenant: uuid::Uuid = db
        .query_one(
            "INSERT INTO tenants (slug, name, status, stripe_account_id, stripe_account_status)
             VALUES ($1, 'Bench Church', 'active', $2, 'enabled') RETURNING id",
            &[&format!("bench-{tag}"), &account],
        )
        .await?
        .get(0);
    let donor: uuid::Uuid = db
        .query_one(
            "INSERT INTO donors (tenant_id, email, name) VALUES ($1, 'donor@bench.example', 'Bench Donor') RETURNING id",
            &[&tenant],
        )
        .await?
        .get(0);
    let n = i64::try_from(events)?;
    db.execute(
        "INSERT INTO donations (tenant_id, donor_id, kind, amount_minor, currency, fee_minor, net_minor, stripe_payment_intent_id)
         SELECT $1, $2, 'one_time', 2500, 'usd', 50, 2450, 'pi_' || $3 || '_' || g FROM generate_series(1, $4::bigint) g",
        &[&tenant, &donor, &tag, &n],
    )
    .await?;
    db.execute("ANALYZE donations", &[]).await?;
    let ids = db
        .query(
            "SELECT id::text, stripe_payment_intent_id FROM donations WHERE tenant_id = $1",
            &[&tenant],
        )
        .await?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        ids.iter()
            .enumerate()
            .map(|(i, r)| {
                let (id, pi): (String, String) = (r.get(0), r.get(1));
                serde_json::to_vec(&serde_json::json!({
                    "id": format!("evt_{tag}_{i}"), "object": "event", "type": "payment_intent.succeeded",
                    "created": now, "livemode": false, "account": account,
                    "data": {"object": {"id": pi, "object": "payment_intent", "amount": 2500,
                        "amount_received": 2500, "currency": "usd", "latest_charge": format!("ch_{tag}_{i}"),
                        "metadata": {"donation_id": id}}}
                }))
                .unwrap_or_default()
            })
            .collect(),
    );
    // The order of deliveries: every event once, plus redeliveries of earlier ones.
    let mut schedule = Vec::with_capacity(events * 2);
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = 0usize;
    while next < events {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let roll = (rng % 10_000) as f64 / 10_000.0;
        if next > 0 && roll < dup_share {
            schedule.push((rng as usize / 10_000) % next);
        } else {
            schedule.push(next);
            next += 1;
        }
    }
    let schedule = Arc::new(schedule);
    let cursor = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    println!(
        "webhook-bench: {} deliveries ({} unique events, {:.0}% redeliveries), {} connections",
        schedule.len(),
        events,
        100.0 * (schedule.len() - events) as f64 / schedule.len() as f64,
        concurrency
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, secret) = (client.clone(), url.clone(), secret.clone());
        let (schedule, cursor, bodies) = (schedule.clone(), cursor.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failures = 0usize;
            loop {
                let k = cursor.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = schedule.get(k) else { break };
                let body = bodies[i].clone();
                let ts = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                let sig = payments::webhook::signature_header(&[secret.as_bytes()], ts, &body);
                let t0 = Instant::now();
                let ok = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("stripe-signature", sig)
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                lat.push(t0.elapsed());
                if !ok {
                    failures += 1;
                }
            }
            (lat, failures)
        }));
    }
    let mut lat = Vec::new();
    let mut failures = 0;
    for t in tasks {
        let (l, f) = t.await?;
        lat.extend(l);
        failures += f;
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort();
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "deliveries/s {:.0}   unique events/s {:.0}   p50 {:.2} ms   p99 {:.2} ms   non-2xx {}   wall {:.1} s",
        schedule.len() as f64 / secs,
        events as f64 / secs,
        pct(0.50),
        pct(0.99),
        failures,
        secs
    );
    // Correctness of what was ingested.
    let q = |sql: &'static str| {
        let db = &db;
        async move {
            db.query_one(sql, &[&tenant])
                .await
                .map(|r| r.get::<_, i64>(0))
        }
    };
    let applied =
        q("SELECT count(*) FROM stripe_events WHERE tenant_id = $1 AND outcome = 'applied'")
            .await?;
    let succeeded =
        q("SELECT count(*) FROM donations WHERE tenant_id = $1 AND status = 'succeeded'").await?;
    let receipts = q("SELECT count(*) FROM email_outbox WHERE tenant_id = $1").await?;
    let verdict = if applied == n && succeeded == n && receipts == n && failures == 0 {
        "ok"
    } else {
        "MISMATCH"
    };
    println!("check: applied events {applied}, succeeded donations {succeeded}, receipts {receipts} (expected {n} each): {verdict}");
    if verdict != "ok" {
        std::process::exit(1);
    }
    Ok(())
}
