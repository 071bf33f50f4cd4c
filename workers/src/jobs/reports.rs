//! `generate-reports` (Mondays 06:00 UTC): last week's figures for every tenant, and a
//! platform-wide summary for admins.
//!
//! The cron run only enqueues one `tenant-weekly-report` job per tenant (unique per tenant and
//! week), so the work spreads over the queue's consumers with fair share, and a rerun of the
//! cron job queues nothing twice. Each tenant job aggregates inside PostgreSQL (nothing of a
//! tenant's history is loaded into memory), stores the CSV in `reports` (rerun-safe upsert) and
//! queues the summary mail to the tenant's active staff.
//!
//! Figures cover gifts whose payment succeeded in the week `[period_start, period_end)`, UTC:
//! gross, fees and net per fund, currency and kind (one-time/recurring); refunded amounts and
//! disputes of those gifts; new donors (first successful gift ever in the week) and returning
//! donors.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::context::Ctx;
use crate::queue::{enqueue, Job, NewJob};

/// The last full week (Monday to Monday) before `now`.
pub fn previous_week(now: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
    let today = now.date_naive();
    let this_monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    (this_monday - Duration::days(7), this_monday)
}

/// The cron run: one job per tenant, then the platform summary.
pub async fn run(ctx: &Ctx, now: DateTime<Utc>) -> Result<Value, String> {
    let (start, end) = previous_week(now);
    let mut conn = ctx.db.get().await.map_err(|e| e.to_string())?;
    let tx = conn.transaction().await.map_err(|e| e.to_string())?;
    let tenants = tx
        .query(
            "SELECT id FROM tenants WHERE status IN ('active', 'trial') ORDER BY id",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut queued = 0;
    for t in &tenants {
        let tenant: Uuid = t.get(0);
        let mut job = NewJob::new(
            "tenant-weekly-report",
            json!({"period_start": start.to_string()}),
        );
        job.tenant = Some(tenant);
        job.priority = 200;
        job.unique_key = Some(format!("weekly-report:{tenant}:{start}"));
        job.max_attempts = 5;
        if enqueue(&tx, &job)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            queued += 1;
        }
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    drop(conn);
    let platform = platform_summary(ctx, start, end).await?;
    Ok(
        json!({"period_start": start.to_string(), "tenant_reports_queued": queued, "platform": platform}),
    )
}

struct Week {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

fn week(start: NaiveDate) -> Week {
    let s = start.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    Week {
        start: s,
        end: s + Duration::days(7),
    }
}

const SUCCEEDED: &str = "status IN ('succeeded', 'partially_refunded', 'refunded', 'disputed')";

/// Builds, stores and mails one tenant's report for the week starting `period_start`.
pub async fn tenant_job(ctx: Ctx, job: Job) -> Result<(), String> {
    let tenant = job.tenant.ok_or("tenant-weekly-report needs a tenant")?;
    let start: NaiveDate = job
        .payload
        .get("period_start")
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse().ok())
        .ok_or("payload.period_start must be a date")?;
    let w = week(start);
    let mut conn = ctx.db.get().await.map_err(|e| e.to_string())?;
    let tx = conn.transaction().await.map_err(|e| e.to_string())?;
    let row = tx
        .query_one("SELECT name, slug FROM tenants WHERE id = $1", &[&tenant])
        .await
        .map_err(|e| e.to_string())?;
    let name: String = row.get(0);
    // The staff area's reports page on the tenant's own subdomain (custom domains may come and
    // go; the subdomain always serves the tenant).
    let dashboard = format!(
        "{}/staff/reports",
        ctx.public
            .origin(&format!("{}.{}", row.get::<_, &str>(1), ctx.base_domain))
    );
    let rows = tx
        .query(
            &format!(
                "SELECT fund, currency, kind, count(*), sum(amount_minor)::bigint, sum(fee_minor)::bigint,
                        sum(net_minor)::bigint, sum(refunded_minor)::bigint,
                        count(*) FILTER (WHERE status = 'disputed')
                 FROM donations
                 WHERE tenant_id = $1 AND {SUCCEEDED} AND succeeded_at >= $2 AND succeeded_at < $3
                 GROUP BY fund, currency, kind ORDER BY fund, currency, kind"
            ),
            &[&tenant, &w.start, &w.end],
        )
        .await
        .map_err(|e| e.to_string())?;
    let donors = tx
        .query_one(
            &format!(
                "WITH givers AS (SELECT DISTINCT donor_id FROM donations
                                  WHERE tenant_id = $1 AND {SUCCEEDED} AND succeeded_at >= $2 AND succeeded_at < $3)
                 SELECT count(*) FILTER (WHERE NOT EXISTS (
                            SELECT 1 FROM donations d WHERE d.tenant_id = $1 AND d.donor_id = g.donor_id
                              AND d.{SUCCEEDED} AND d.succeeded_at < $2)),
                        count(*)
                 FROM givers g"
            ),
            &[&tenant, &w.start, &w.end],
        )
        .await
        .map_err(|e| e.to_string())?;
    let (new_donors, all_donors): (i64, i64) = (donors.get(0), donors.get(1));
    let mut csv = String::from(
        "fund,currency,kind,gifts,gross_minor,fees_minor,net_minor,refunded_minor,disputes\n",
    );
    let mut totals: std::collections::BTreeMap<String, [i64; 4]> = Default::default();
    let (mut one_time, mut recurring, mut disputes) = (0i64, 0i64, 0i64);
    for r in &rows {
        let (fund, currency, kind): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let (n, gross, fees, net, refunded, disputed): (i64, i64, i64, i64, i64, i64) =
            (r.get(3), r.get(4), r.get(5), r.get(6), r.get(7), r.get(8));
        csv.push_str(&format!(
            "{},{currency},{kind},{n},{gross},{fees},{net},{refunded},{disputed}\n",
            csv_field(&fund)
        ));
        let t = totals.entry(currency).or_default();
        t[0] += gross;
        t[1] += fees;
        t[2] += net;
        t[3] += refunded;
        if kind == "recurring" {
            recurring += n;
        } else {
            one_time += n;
        }
        disputes += disputed;
    }
    let by_currency: serde_json::Map<String, Value> = totals
        .iter()
        .map(|(c, t)| (c.clone(), json!({"gross_minor": t[0], "fees_minor": t[1], "net_minor": t[2], "refunded_minor": t[3]})))
        .collect();
    let summary = json!({
        "by_currency": by_currency, "gifts_one_time": one_time, "gifts_recurring": recurring,
        "new_donors": new_donors, "returning_donors": all_donors - new_donors, "disputes": disputes,
    });
    let end = start + Duration::days(7);
    tx.execute(
        "INSERT INTO reports (tenant_id, kind, period_start, period_end, summary, csv)
         VALUES ($1, 'weekly_tenant', $2, $3, $4, $5)
         ON CONFLICT (tenant_id, kind, period_start) DO UPDATE SET summary = EXCLUDED.summary, csv = EXCLUDED.csv",
        &[&tenant, &start, &end, &summary, &csv],
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut lines: Vec<String> = totals
        .iter()
        .map(|(c, t)| {
            format!(
                "{}: gross {}, fees {}, net {}, refunded {}",
                c.to_uppercase(),
                minor(t[0], c),
                minor(t[1], c),
                minor(t[2], c),
                minor(t[3], c)
            )
        })
        .collect();
    lines.push(format!(
        "Gifts: {one_time} one-time, {recurring} recurring; disputes: {disputes}"
    ));
    lines.push(format!(
        "Donors: {new_donors} new, {} returning",
        all_donors - new_donors
    ));
    tx.execute(
        "INSERT INTO email_outbox (tenant_id, idempotency_key, template, to_address, payload)
         SELECT u.tenant_id, 'weekly_report:' || u.tenant_id::text || ':' || $2::text || ':' || u.email,
                'weekly_report', u.email,
                jsonb_build_object('tenant_name', $3::text, 'period_start', $2::text, 'period_end', $4::text,
                                   'lines', $5::jsonb, 'dashboard_url', $6::text)
         FROM tenant_users u WHERE u.tenant_id = $1 AND u.disabled_at IS NULL
         ON CONFLICT (idempotency_key) DO NOTHING",
        &[&tenant, &start.to_string(), &name, &end.to_string(), &json!(lines), &dashboard],
    )
    .await
    .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())
}

/// Minor units as a decimal in the currency's own exponent (ISO 4217): JPY has none.
fn minor(v: i64, currency: &str) -> String {
    tenant_config::money::decimal(v, currency)
}

/// One CSV field, quoted by the `csv` crate's rules (separators, quotes, CR and LF), with
/// spreadsheet formulas defused: a leading `=`, `+`, `-`, `@`, tab or CR gets a `'`.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    if w.write_record([&s]).is_err() || w.flush().is_err() {
        return format!("\"{}\"", s.replace('"', "\"\""));
    }
    let mut out = String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default();
    out.pop(); // the record's terminator
    out
}

async fn platform_summary(ctx: &Ctx, start: NaiveDate, end: NaiveDate) -> Result<Value, String> {
    let w = week(start);
    let mut conn = ctx.db.get().await.map_err(|e| e.to_string())?;
    let tx = conn.transaction().await.map_err(|e| e.to_string())?;
    let rows = tx
        .query(
            &format!(
                "SELECT currency, count(*), sum(amount_minor)::bigint, sum(fee_minor)::bigint,
                        count(DISTINCT tenant_id)
                 FROM donations WHERE {SUCCEEDED} AND succeeded_at >= $1 AND succeeded_at < $2
                 GROUP BY currency ORDER BY currency"
            ),
            &[&w.start, &w.end],
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut csv = String::from("currency,gifts,gross_minor,platform_fees_minor,tenants\n");
    let mut lines = Vec::new();
    let mut by_currency = serde_json::Map::new();
    for r in &rows {
        let (c, n, gross, fees, tenants): (String, i64, i64, i64, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        csv.push_str(&format!("{c},{n},{gross},{fees},{tenants}\n"));
        lines.push(format!(
            "{}: {n} gifts, gross {}, platform fees {}, {tenants} tenants",
            c.to_uppercase(),
            minor(gross, &c),
            minor(fees, &c)
        ));
        by_currency.insert(
            c,
            json!({"gifts": n, "gross_minor": gross, "fees_minor": fees, "tenants": tenants}),
        );
    }
    let summary = json!({"by_currency": by_currency});
    tx.execute(
        "INSERT INTO reports (tenant_id, kind, period_start, period_end, summary, csv)
         VALUES (NULL, 'weekly_platform', $1, $2, $3, $4)
         ON CONFLICT (tenant_id, kind, period_start) DO UPDATE SET summary = EXCLUDED.summary, csv = EXCLUDED.csv",
        &[&start, &end, &summary, &csv],
    )
    .await
    .map_err(|e| e.to_string())?;
    tx.execute(
        "INSERT INTO email_outbox (tenant_id, idempotency_key, template, to_address, payload)
         SELECT NULL, 'admin_summary:' || $1::text || ':' || a.email, 'admin_summary', a.email,
                jsonb_build_object('period_start', $1::text, 'period_end', $2::text, 'lines', $3::jsonb,
                                   'dashboard_url', $4::text)
         FROM admin_users a WHERE a.disabled_at IS NULL
         ON CONFLICT (idempotency_key) DO NOTHING",
        &[&start.to_string(), &end.to_string(), &json!(lines), &format!("{}/", ctx.public.origin(&ctx.admin_host))],
    )
    .await
    .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_week_is_monday_to_monday() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(
            previous_week(at("2026-11-23T06:00:00Z")),
            (d("2026-11-16"), d("2026-11-23"))
        );
        assert_eq!(
            previous_week(at("2026-11-22T23:59:00Z")),
            (d("2026-11-09"), d("2026-11-16"))
        );
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=cmd"), "'=cmd");
        // CR is quoted now, and a leading tab or CR is defused too.
        assert_eq!(csv_field("a\rb"), "\"a\rb\"");
        assert_eq!(csv_field("\tcmd"), "'\tcmd");
        assert_eq!(csv_field("\rcmd"), "\"'\rcmd\"");
        assert_eq!(csv_field("roof"), "roof");
        // Amounts in the currency's own exponent, sign kept.
        assert_eq!(minor(-5, "usd"), "-0.05");
        assert_eq!(minor(2500, "jpy"), "2500");
    }
}
