//! `cleanup-sessions`: expired sessions, and bookkeeping past its retention: Stripe event ids
//! after 30 days (Stripe stops retrying after 3), expired ACME challenges, and completed jobs
//! after 7 days (discarded jobs stay until an operator looks at them).

use serde_json::{json, Value};

use crate::context::Ctx;

/// Deletes in bounded batches so a large backlog never holds long locks.
pub async fn run(ctx: &Ctx) -> Result<Value, String> {
    let conn = ctx.db.get().await.map_err(|e| e.to_string())?;
    let mut counts = serde_json::Map::new();
    let steps: [(&str, &str); 4] = [
        (
            "sessions",
            "DELETE FROM sessions WHERE token_hash IN (SELECT token_hash FROM sessions
               WHERE absolute_expires_at < now() OR idle_expires_at < now() LIMIT 5000)",
        ),
        (
            "stripe_events",
            "DELETE FROM stripe_events WHERE id IN (SELECT id FROM stripe_events
               WHERE received_at < now() - make_interval(days => 30) LIMIT 5000)",
        ),
        (
            "acme_challenges",
            "DELETE FROM acme_challenges WHERE token IN (SELECT token FROM acme_challenges
               WHERE expires_at < now() LIMIT 5000)",
        ),
        (
            "finished_jobs",
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs
               WHERE state IN ('completed', 'cancelled') AND finished_at < now() - make_interval(days => 7)
               LIMIT 5000)",
        ),
    ];
    for (name, sql) in steps {
        let mut total = 0u64;
        loop {
            let n = conn
                .execute(sql, &[])
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            total += n;
            if n < 5000 {
                break;
            }
        }
        counts.insert(name.to_owned(), json!(total));
    }
    Ok(Value::Object(counts))
}
