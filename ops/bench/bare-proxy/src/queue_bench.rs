//! Queue benchmark (not a test): no-op jobs per second through the real consumer loop
//! (`workers::consumer::run`: fair-share fetch, batch completion, heartbeat) with N consumers,
//! and emails per second through `process-emails` to a local SMTP sink. Each phase verifies its
//! end state (every job completed once, every mail sent) before printing.
//!
//! Usage: queue-bench <workers-db-url> <owner-db-url> <smtp-url> [jobs=200000] [consumers=1,2,4,8]
//! [batch=50] [emails=2000]

use std::time::{Duration, Instant};

use tenant_config::config::{MapEnv, WorkersConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: queue-bench <workers-db-url> <owner-db-url> <smtp-url> [jobs] [consumers] [batch] [emails]");
        std::process::exit(2);
    }
    let jobs: i64 = args.get(4).map_or(Ok(200_000), |s| s.parse())?;
    let consumers: Vec<u32> = args
        .get(5)
        .map_or("1,2,4,8", String::as_str)
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let batch = args.get(6).map_or("50", String::as_str).to_owned();
    let emails: i64 = args.get(7).map_or(Ok(2000), |s| s.parse())?;
    let (owner, conn) = tokio_postgres::connect(&args[2], tokio_postgres::NoTls).await?;
    tokio::spawn(conn);

    for n in consumers {
        owner.execute("TRUNCATE jobs", &[]).await?;
        owner
            .execute(
                "INSERT INTO jobs (kind, tenant_id, payload) SELECT 'noop', NULL, '{}' FROM generate_series(1, $1::bigint)",
                &[&jobs],
            )
            .await?;
        owner.execute("VACUUM ANALYZE jobs", &[]).await?;
        let ctx = context(&args[1], &args[3], n, &batch)?;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let runner = tokio::spawn(workers::consumer::run(ctx, rx));
        let mut done = 0i64;
        while started.elapsed() < Duration::from_secs(600) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            done = owner
                .query_one("SELECT count(*) FROM jobs WHERE state = 'completed'", &[])
                .await?
                .get(0);
            if done == jobs {
                break;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let _ = stop.send(true);
        let _ = runner.await;
        let attempts: i64 = owner
            .query_one("SELECT COALESCE(max(attempt), 0)::bigint FROM jobs", &[])
            .await?
            .get(0);
        println!(
            "no-op jobs: {n} consumers, batch {batch}: {jobs} jobs in {secs:.2} s = {:.0} jobs/s  (completed {done}, max attempt {attempts}: {})",
            jobs as f64 / secs,
            if done == jobs && attempts == 1 { "ok" } else { "MISMATCH" }
        );
    }

    owner.execute("TRUNCATE email_outbox", &[]).await?;
    owner
        .execute(
            "INSERT INTO email_outbox (idempotency_key, template, to_address, payload)
             SELECT 'bench:' || g, 'donation_receipt', 'donor' || g || '@bench.test',
                    jsonb_build_object('donor_name', 'Donor ' || g, 'amount_minor', 2500, 'currency', 'usd',
                                       'fund', 'general', 'donation_id', g::text, 'tenant_name', 'Bench Church')
             FROM generate_series(1, $1::bigint) g",
            &[&emails],
        )
        .await?;
    let ctx = context(&args[1], &args[3], 1, &batch)?;
    let started = Instant::now();
    let counts = workers::jobs::emails::run(&ctx).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "emails: {emails} receipts to the local sink in {secs:.2} s = {:.0} emails/s  ({counts})",
        emails as f64 / secs
    );
    Ok(())
}

fn context(
    db: &str,
    smtp: &str,
    consumers: u32,
    batch: &str,
) -> Result<workers::context::Ctx, Box<dyn std::error::Error>> {
    let consumers = consumers.to_string();
    let env = MapEnv::from_pairs([
        ("DATABASE_URL", db),
        ("DATABASE_MAX_CONNECTIONS", "40"),
        ("CRON_SECRET", "bench-cron-secret-0123456789abcdef0123"),
        ("SMTP_URL", smtp),
        ("WORKERS_CONSUMERS", consumers.as_str()),
        ("WORKERS_BATCH", batch),
    ]);
    let config: WorkersConfig = tenant_config::config::load(None, &env)?;
    Ok(workers::context::Ctx::from_config(&config)?)
}
