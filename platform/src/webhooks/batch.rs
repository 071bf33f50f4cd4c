//! Group commit for `payment_intent.succeeded`, the event every gift ends with and the one that
//! arrives in bursts.
//!
//! Deliveries are queued to a dispatcher that keeps at most `stripe.webhook_batches`
//! transactions in flight. When one is free it takes every delivery waiting (up to
//! `stripe.webhook_batch_max`) and records the whole group in one transaction: a quiet system
//! commits each delivery alone and at once, a busy one shares the statements, the commit and
//! its WAL flush among many. Nobody waits for a timer.
//!
//! The group keeps the single-event rules ([`crate::webhooks`]):
//! - every donation is locked (in the order of the sorted payment intent ids, so two groups
//!   cannot deadlock) and its status checked before anything is written;
//! - an event id already recorded, or twice in the group, is a duplicate with no effect;
//! - the answer is only sent after the commit.
//!
//! Anything unexpected — an error, an event matching two donations, an applied event whose id
//! turns out to be recorded already — rolls the whole group back and hands every delivery back
//! to be handled alone by the single-event path, which has the same effects. So grouping can
//! cost a retry, never a lost or doubled gift.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use payments::Event;
use tenant_config::db::Pool;
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

use super::Outcome;
use crate::error::AppError;

/// What the group decided for one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Committed with this outcome.
    Done(Outcome),
    /// Recorded before (or twice in this group): nothing changed.
    Duplicate,
    /// Not handled here: the caller must handle the delivery alone.
    Alone,
}

/// A delivery waiting for its group.
struct Delivery {
    event: Arc<Event>,
    payload: Bytes,
    reply: oneshot::Sender<Verdict>,
}

/// Deliveries waiting beyond this make senders wait (backpressure instead of unbounded memory).
const QUEUE: usize = 4096;

/// The group-commit front of the webhook handler. Cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<Inner>,
}

struct Inner {
    db: Pool,
    max: usize,
    in_flight: usize,
    /// Started on first use, from inside the runtime.
    queue: OnceLock<mpsc::Sender<Delivery>>,
}

impl GroupCommit {
    /// Groups of at most `max` deliveries, `in_flight` transactions at once (both ≥ 1).
    pub fn new(db: Pool, max: u32, in_flight: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                max: max.max(1) as usize,
                in_flight: in_flight.max(1) as usize,
                queue: OnceLock::new(),
            }),
        }
    }

    /// Records a verified `payment_intent.succeeded` delivery from a connected account with
    /// the next group; answers once that group has committed (or handed it back).
    pub async fn submit(&self, event: Arc<Event>, payload: Bytes) -> Verdict {
        if self.inner.max == 1 {
            return Verdict::Alone;
        }
        let queue = self.inner.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(dispatch(self.inner.clone(), rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        let delivery = Delivery {
            event,
            payload,
            reply,
        };
        if queue.send(delivery).await.is_err() {
            return Verdict::Alone;
        }
        // A dropped sender (the group's task died) also means: handle it alone.
        answer.await.unwrap_or(Verdict::Alone)
    }
}

/// Takes whatever is waiting whenever a transaction slot is free.
async fn dispatch(inner: Arc<Inner>, mut rx: mpsc::Receiver<Delivery>) {
    let slots = Arc::new(Semaphore::new(inner.in_flight));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut group = Vec::with_capacity(inner.max.min(64));
        group.push(first);
        while group.len() < inner.max {
            match rx.try_recv() {
                Ok(d) => group.push(d),
                Err(_) => break,
            }
        }
        let inner = inner.clone();
        tokio::spawn(async move {
            let size = group.len();
            let verdicts = match commit(&inner.db, &group).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, size, "webhook group rolled back; its deliveries are handled one by one");
                    vec![Verdict::Alone; size]
                }
            };
            crate::metrics::webhook_group(size);
            for (d, v) in group.into_iter().zip(verdicts) {
                let _ = d.reply.send(v);
            }
            drop(slot);
        });
    }
}

/// Locks each delivery's donation, on its connected account's tenant only, sorted by payment
/// intent so concurrent groups lock in the same order. `$4` is the delivery's index.
const LOCK: &str = "SELECT b.i, d.id, d.tenant_id, d.status, d.amount_minor, d.currency
     FROM unnest($1::text[], $2::uuid[], $3::text[], $4::int[]) AS b(pi, meta, account, i),
     LATERAL (SELECT d.id, d.tenant_id, d.status, d.amount_minor, d.currency
              FROM donations d JOIN tenants t ON t.id = d.tenant_id
              WHERE (d.stripe_payment_intent_id = b.pi
                     OR (d.stripe_payment_intent_id IS NULL AND d.id = b.meta))
                AND t.stripe_account_id = b.account
              FOR UPDATE OF d) d";

/// Records the group's events (sorted by id, so concurrent inserts of one id queue in one
/// order); returns the ids that were new.
pub(crate) const RECORD_EVENTS: &str = "INSERT INTO stripe_events
         (id, event_type, account, livemode, stripe_created_at, outcome, payload, tenant_id)
     SELECT e.id, e.kind, e.account, e.livemode, to_timestamp(e.created), e.outcome,
            e.payload::jsonb, e.tenant
     FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::float8[], $6::text[],
                 $7::text[], $8::uuid[])
          AS e(id, kind, account, livemode, created, outcome, payload, tenant)
     ORDER BY e.id
     ON CONFLICT (id) DO NOTHING
     RETURNING id";

/// The donation a delivery's intent belongs to, as locked.
struct Locked {
    id: Uuid,
    tenant: Uuid,
    status: String,
    amount: i64,
    currency: String,
}

/// One transaction for the whole group; a verdict per delivery, in order.
async fn commit(db: &Pool, group: &[Delivery]) -> Result<Vec<Verdict>, AppError> {
    let n = group.len();
    // The first delivery of each event id; later copies are duplicates of it.
    let mut seen = HashSet::with_capacity(n);
    let first: Vec<bool> = group
        .iter()
        .map(|d| seen.insert(d.event.id.as_str()))
        .collect();
    let mut order: Vec<usize> = (0..n).filter(|&i| first[i]).collect();
    order.sort_by(|&a, &b| intent(&group[a].event).cmp(intent(&group[b].event)));

    let mut conn = db.get().await?;
    let stmts = conn.statements();
    let tx = crate::admin::begin(&mut conn).await?;

    // Without an intent id there is nothing to look up (as on the single-event path); the
    // metadata id alone never selects a gift.
    let lookups: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| !intent(&group[i].event).is_empty())
        .collect();
    let pis: Vec<&str> = lookups.iter().map(|&i| intent(&group[i].event)).collect();
    let metas: Vec<Uuid> = lookups
        .iter()
        .map(|&i| super::metadata_uuid(&group[i].event, "donation_id"))
        .collect();
    let accounts: Vec<&str> = lookups
        .iter()
        .map(|&i| group[i].event.account.as_deref().unwrap_or(""))
        .collect();
    let idx: Vec<i32> = lookups.iter().map(|&i| i as i32).collect();
    let lock = stmts.get(&tx, LOCK).await?;
    let rows = tx.query(&lock, &[&pis, &metas, &accounts, &idx]).await?;
    let mut locked: Vec<Option<Locked>> = (0..n).map(|_| None).collect();
    for r in rows {
        let i = usize::try_from(r.get::<_, i32>(0)).unwrap_or(usize::MAX);
        let slot = locked
            .get_mut(i)
            .ok_or_else(|| AppError::Internal("group lock returned an unknown index".into()))?;
        if slot.is_some() {
            return Err(AppError::Internal(
                "a payment intent matches more than one donation".into(),
            ));
        }
        *slot = Some(Locked {
            id: r.get(1),
            tenant: r.get(2),
            status: r.get(3),
            amount: r.get(4),
            currency: r.get(5),
        });
    }

    // Decide each first delivery as the single-event path would, in lock order.
    let mut outcome: Vec<Option<(Outcome, Option<Uuid>)>> = vec![None; n];
    let mut succeeded: HashSet<Uuid> = HashSet::with_capacity(n);
    let (mut ids, mut ats, mut mark_pis, mut charges) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &i in &order {
        let ev = &group[i].event;
        outcome[i] = Some(match &locked[i] {
            None => (Outcome::Ignored, None),
            Some(d) => {
                let blocked = super::payment_intent::success_blocked(
                    ev,
                    d.id,
                    &d.status,
                    d.amount,
                    &d.currency,
                );
                if let Some(o) = blocked {
                    (o, Some(d.tenant))
                } else if succeeded.contains(&d.id) {
                    // A second success for a gift this group has just applied.
                    (Outcome::Stale, Some(d.tenant))
                } else {
                    succeeded.insert(d.id);
                    ids.push(d.id);
                    ats.push(ev.created as f64);
                    mark_pis.push(intent(ev));
                    charges.push(ev.str_field("latest_charge"));
                    (Outcome::Applied, Some(d.tenant))
                }
            }
        });
    }
    if !ids.is_empty() {
        let mark = stmts.get(&tx, payments::ledger::MARK_SUCCEEDED).await?;
        tx.execute(&mark, &[&ids, &ats, &mark_pis, &charges])
            .await?;
    }

    let mut cols = Record::with_capacity(order.len());
    for &i in &order {
        let (o, tenant) = outcome[i].unwrap_or((Outcome::Ignored, None));
        cols.push(&group[i], o, tenant)?;
    }
    let record = stmts.get(&tx, RECORD_EVENTS).await?;
    let fresh: HashSet<String> = tx
        .query(
            &record,
            &[
                &cols.id,
                &cols.kind,
                &cols.account,
                &cols.livemode,
                &cols.created,
                &cols.outcome,
                &cols.payload,
                &cols.tenant,
            ],
        )
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();

    let mut verdicts = vec![Verdict::Duplicate; n];
    for &i in &order {
        let (o, _) = outcome[i].unwrap_or((Outcome::Ignored, None));
        if fresh.contains(group[i].event.id.as_str()) {
            verdicts[i] = Verdict::Done(o);
        } else if o == Outcome::Applied {
            // Applied under the lock, yet recorded by someone else: the lock order was not
            // what we assumed. Undo everything; the single-event path sorts it out.
            return Err(AppError::Internal(
                "an applied event was already recorded".into(),
            ));
        }
    }
    tx.commit().await?;
    for &i in &order {
        if verdicts[i] == Verdict::Done(Outcome::Applied) {
            if let Some(d) = &locked[i] {
                crate::metrics::donation_succeeded(&d.currency, d.amount);
            }
        }
    }
    Ok(verdicts)
}

/// The payment intent id of a delivery (`""` when missing: such a delivery is not looked up).
fn intent(ev: &Event) -> &str {
    ev.str_field("id").unwrap_or("")
}

/// The `stripe_events` columns of a group, as parallel arrays.
struct Record<'a> {
    id: Vec<&'a str>,
    kind: Vec<&'a str>,
    account: Vec<Option<&'a str>>,
    livemode: Vec<bool>,
    created: Vec<f64>,
    outcome: Vec<&'static str>,
    payload: Vec<&'a str>,
    tenant: Vec<Option<Uuid>>,
}

impl<'a> Record<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            id: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            account: Vec::with_capacity(n),
            livemode: Vec::with_capacity(n),
            created: Vec::with_capacity(n),
            outcome: Vec::with_capacity(n),
            payload: Vec::with_capacity(n),
            tenant: Vec::with_capacity(n),
        }
    }

    fn push(
        &mut self,
        d: &'a Delivery,
        outcome: Outcome,
        tenant: Option<Uuid>,
    ) -> Result<(), AppError> {
        let ev = &d.event;
        self.id.push(&ev.id);
        self.kind.push(&ev.kind);
        self.account.push(ev.account.as_deref());
        self.livemode.push(ev.livemode);
        self.created.push(ev.created as f64);
        self.outcome.push(outcome.as_str());
        self.payload.push(
            std::str::from_utf8(&d.payload)
                .map_err(|_| AppError::BadRequest("event payload: not UTF-8".into()))?,
        );
        self.tenant.push(tenant);
        Ok(())
    }
}
