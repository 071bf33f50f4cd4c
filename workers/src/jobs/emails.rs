//! `process-emails`: drains the outbox through SMTP.
//!
//! Each message is claimed (`sending`, with a lease in `next_attempt_at`) and gets its
//! `Message-ID` before the first attempt. A crash after the relay accepted a message but before
//! we marked it sent re-sends it with the **same** Message-ID, which mail systems treat as the
//! same message, so a receipt is never received twice in effect. Temporary failures (connection
//! refused, 4xx) retry with backoff; permanent ones (5xx) or the tenth attempt leave the message
//! `failed` with the error kept.

use futures_util::StreamExt;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncTransport, Message};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::context::Ctx;

/// Messages claimed per round.
const BATCH: i64 = 100;
/// Messages in flight at once (the SMTP transport pools this many connections).
const SENDERS: usize = 8;
/// Attempts before a message is given up.
pub const MAX_ATTEMPTS: i32 = 10;

struct Outgoing {
    id: Uuid,
    template: String,
    to: String,
    payload: Value,
    attempts: i32,
    message_id: String,
    tenant_name: Option<String>,
    color: Option<String>,
}

/// Sends everything due, in rounds of [`BATCH`], until nothing is due.
pub async fn run(ctx: &Ctx) -> Result<Value, String> {
    let (mut sent, mut retried, mut failed) = (0u64, 0u64, 0u64);
    let domain = ctx.from.email.domain().to_owned();
    for _round in 0..100 {
        let batch = claim(ctx, &domain).await?;
        if batch.is_empty() {
            break;
        }
        // Up to SENDERS messages in flight over the transport's pooled connections; results are
        // recorded per message as they come back.
        let mut results = futures_util::stream::iter(batch.into_iter().map(|m| async move {
            let r = send(ctx, &m).await;
            (m, r)
        }))
        .buffer_unordered(SENDERS);
        let mut delivered = Vec::new();
        while let Some((m, result)) = results.next().await {
            match result {
                Ok(()) => {
                    delivered.push(m.id);
                    crate::metrics::email("sent");
                }
                Err((permanent, err)) => {
                    if permanent || m.attempts >= MAX_ATTEMPTS {
                        mark(ctx, "UPDATE email_outbox SET status = 'failed', last_error = left($2, 2000) WHERE id = $1", &m.id, Some(&err), None).await?;
                        failed += 1;
                    } else {
                        let delay = crate::queue::backoff(m.attempts + 3, 0.5).as_secs_f64();
                        mark(ctx, "UPDATE email_outbox SET status = 'pending', last_error = left($2, 2000),
                                          next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
                             &m.id, Some(&err), Some(delay)).await?;
                        retried += 1;
                    }
                    crate::metrics::email(if permanent { "failed" } else { "retry" });
                    tracing::warn!(email = %m.id, template = %m.template, error = %err, "email not sent");
                }
            }
        }
        drop(results);
        if !delivered.is_empty() {
            let conn = ctx.db.get().await.map_err(|e| e.to_string())?;
            conn.execute(
                "UPDATE email_outbox SET status = 'sent', sent_at = now(), last_error = NULL WHERE id = ANY($1)",
                &[&delivered],
            )
            .await
            .map_err(|e| e.to_string())?;
            sent += delivered.len() as u64;
        }
    }
    Ok(json!({"sent": sent, "retried": retried, "failed": failed}))
}

async fn claim(ctx: &Ctx, domain: &str) -> Result<Vec<Outgoing>, String> {
    let conn = ctx.db.get().await.map_err(|e| e.to_string())?;
    let rows = conn
        .query(
            "UPDATE email_outbox o SET status = 'sending', attempts = o.attempts + 1,
                    next_attempt_at = now() + interval '10 minutes',
                    message_id = COALESCE(o.message_id, '<' || o.id::text || '@' || $2 || '>')
             FROM (SELECT id FROM email_outbox
                    WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()
                    ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
             WHERE o.id = due.id
             RETURNING o.id, o.template, o.to_address, o.payload, o.attempts, o.message_id,
                       (SELECT name FROM tenants t WHERE t.id = o.tenant_id),
                       (SELECT settings->'branding'->>'primary_color' FROM tenants t WHERE t.id = o.tenant_id)",
            &[&BATCH, &domain],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .map(|r| Outgoing {
            id: r.get(0),
            template: r.get(1),
            to: r.get(2),
            payload: r.get(3),
            attempts: r.get(4),
            message_id: r.get(5),
            tenant_name: r.get(6),
            color: r.get(7),
        })
        .collect())
}

async fn mark(
    ctx: &Ctx,
    sql: &str,
    id: &Uuid,
    err: Option<&str>,
    delay: Option<f64>,
) -> Result<(), String> {
    let conn = ctx.db.get().await.map_err(|e| e.to_string())?;
    let r = match (err, delay) {
        (None, _) => conn.execute(sql, &[id]).await,
        (Some(e), None) => conn.execute(sql, &[id, &e]).await,
        (Some(e), Some(d)) => conn.execute(sql, &[id, &e, &d]).await,
    };
    r.map(|_| ()).map_err(|e| e.to_string())
}

/// Sends one message; `Err((permanent, message))` on failure.
async fn send(ctx: &Ctx, m: &Outgoing) -> Result<(), (bool, String)> {
    let rendered = render(m).map_err(|e| (true, e))?;
    // The same parse the platform's donor e-mail check runs, so this fails only for rows
    // written before that check or by hand.
    let to: Mailbox =
        tenant_config::mail::mailbox(&m.to).map_err(|e| (true, format!("recipient: {e}")))?;
    let email = Message::builder()
        .from(ctx.from.clone())
        .to(to)
        .subject(rendered.subject)
        .message_id(Some(m.message_id.clone()))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(rendered.text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(rendered.html),
                ),
        )
        .map_err(|e| (true, format!("building the message: {e}")))?;
    match ctx.mailer.send(email).await {
        Ok(_) => Ok(()),
        Err(e) => Err((e.is_permanent(), e.to_string())),
    }
}

/// A rendered message.
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body (every interpolated value escaped).
    pub html: String,
}

fn money(minor: i64, currency: &str) -> String {
    tenant_config::money::format(minor, currency)
}

use tenant_config::html::escape as esc;

fn color(c: Option<&str>) -> String {
    match c {
        Some(c)
            if c.len() <= 7
                && c.starts_with('#')
                && c[1..].bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            c.to_owned()
        }
        _ => "#2f5d8a".into(),
    }
}

fn page(title: &str, color: &str, tenant: &str, body_html: &str) -> String {
    format!(
        "<!doctype html><html><body style=\"font-family:system-ui,sans-serif;max-width:36rem;margin:auto\">\
         <h1 style=\"color:{color}\">{}</h1><h2>{}</h2>{body_html}\
         <p style=\"color:#666;font-size:smaller\">Sent on behalf of {} by the donations platform.</p></body></html>",
        esc(tenant),
        esc(title),
        esc(tenant)
    )
}

/// Renders a template with tenant branding.
pub fn render_template(
    template: &str,
    payload: &Value,
    tenant: Option<&str>,
    brand: Option<&str>,
) -> Result<Rendered, String> {
    let p = |k: &str| payload.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let n = |k: &str| payload.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
    let tenant = tenant.map_or_else(|| p("tenant_name").to_owned(), str::to_owned);
    let tenant = if tenant.is_empty() {
        "Donations platform".to_owned()
    } else {
        tenant
    };
    let c = color(brand);
    match template {
        "donation_receipt" => {
            let amount = money(n("amount_minor"), p("currency"));
            let cancel = p("cancel_url");
            let mut text = format!(
                "Dear {},\n\nThank you for your gift of {amount} to {tenant} ({} fund).\nReceipt reference: {}\n",
                p("donor_name"), p("fund"), p("donation_id"));
            let mut html = format!(
                "<p>Dear {},</p><p>Thank you for your gift of <strong>{}</strong> to {} ({} fund).</p><p>Receipt reference: {}</p>",
                esc(p("donor_name")), esc(&amount), esc(&tenant), esc(p("fund")), esc(p("donation_id")));
            if !cancel.is_empty() {
                text.push_str(&format!(
                    "\nThis is a recurring gift. To stop it: {cancel}\n"
                ));
                html.push_str(&format!(
                    "<p>This is a recurring gift. <a href=\"{}\">Stop it here</a>.</p>",
                    esc(cancel)
                ));
            }
            Ok(Rendered {
                subject: format!("Your receipt from {tenant}"),
                text,
                html: page("Thank you", &c, &tenant, &html),
            })
        }
        "recurring_failed" => {
            let amount = money(n("amount_minor"), p("currency"));
            let link = p("hosted_invoice_url");
            let text = format!(
                "Dear {},\n\nWe could not collect your recurring gift of {amount} to {tenant}. Stripe will retry; you can update your card here: {link}\n",
                p("donor_name"));
            let html = format!(
                "<p>Dear {},</p><p>We could not collect your recurring gift of <strong>{}</strong> to {}.</p><p>Stripe will retry. <a href=\"{}\">Update your card</a>.</p>",
                esc(p("donor_name")), esc(&amount), esc(&tenant), esc(link));
            Ok(Rendered {
                subject: format!("Your gift to {tenant} could not be collected"),
                text,
                html: page("Payment problem", &c, &tenant, &html),
            })
        }
        "weekly_report" | "admin_summary" => {
            let period = format!("{} to {}", p("period_start"), p("period_end"));
            let lines: Vec<String> = payload
                .get("lines")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            // Reports queued before the link existed carry none: they keep the old wording.
            let link = p("dashboard_url");
            let (more_text, more_html) = if link.is_empty() {
                (
                    "The full CSV is available in your dashboard.".to_owned(),
                    "<p>The full CSV is available in your dashboard.</p>".to_owned(),
                )
            } else {
                (
                    format!("The full report and its CSV: {link}"),
                    format!(
                        "<p><a href=\"{}\">The full report and its CSV</a></p>",
                        esc(link)
                    ),
                )
            };
            let text = format!(
                "Weekly summary for {period}:\n\n{}\n\n{more_text}\n",
                lines.join("\n")
            );
            let items: String = lines
                .iter()
                .map(|l| format!("<li>{}</li>", esc(l)))
                .collect();
            let html = format!(
                "<p>Weekly summary for {}:</p><ul>{items}</ul>{more_html}",
                esc(&period)
            );
            let who = if template == "admin_summary" {
                "Platform"
            } else {
                tenant.as_str()
            };
            Ok(Rendered {
                subject: format!("{who} weekly report, {period}"),
                text,
                html: page("Weekly report", &c, &tenant, &html),
            })
        }
        other => Err(format!("unknown template {other:?}")),
    }
}

fn render(m: &Outgoing) -> Result<Rendered, String> {
    render_template(
        &m.template,
        &m.payload,
        m.tenant_name.as_deref(),
        m.color.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_is_branded_and_escaped() {
        let p = json!({"donor_name": "<Ann>", "amount_minor": 2550, "currency": "usd", "fund": "roof",
                       "donation_id": "d1", "cancel_url": "https://x.test/give/cancel?gift=1&token=2"});
        let r =
            render_template("donation_receipt", &p, Some("Grace & Co"), Some("#123abc")).unwrap();
        assert_eq!(r.subject, "Your receipt from Grace & Co");
        assert!(r.text.contains("25.50 USD") && r.text.contains("To stop it: https://x.test/"));
        assert!(r.html.contains("&lt;Ann&gt;") && !r.html.contains("<Ann>"));
        assert!(r.html.contains("#123abc") && r.html.contains("Grace &amp; Co"));
        assert!(r.html.contains("gift=1&amp;token=2"));
        let bad = render_template("donation_receipt", &p, None, Some("red;x")).unwrap();
        assert!(bad.html.contains("#2f5d8a"));
        assert!(render_template("nope", &p, None, None).is_err());
        assert_eq!(money(5, "eur"), "0.05 EUR");
    }

    #[test]
    fn weekly_report_links_to_the_dashboard_when_it_has_one() {
        let p = json!({"period_start": "2026-11-16", "period_end": "2026-11-23", "lines": ["USD: gross 1.00"],
                       "dashboard_url": "http://grace.x.test:8000/staff/reports?a=1&b=2"});
        let r = render_template("weekly_report", &p, Some("Grace"), None).unwrap();
        assert!(r.text.contains(
            "The full report and its CSV: http://grace.x.test:8000/staff/reports?a=1&b=2"
        ));
        assert!(r
            .html
            .contains("href=\"http://grace.x.test:8000/staff/reports?a=1&amp;b=2\""));
        let old = json!({"period_start": "2026-11-16", "period_end": "2026-11-23", "lines": []});
        let r = render_template("weekly_report", &old, Some("Grace"), None).unwrap();
        assert!(r.text.contains("available in your dashboard") && !r.html.contains("href"));
    }
}
