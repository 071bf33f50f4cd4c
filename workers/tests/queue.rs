//! The job queue against real PostgreSQL, through the library: transactional enqueue, unique
//! keys, fair share across tenants, retries with backoff, discard, lease rescue.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::json;
use tokio_postgres::NoTls;
use uuid::Uuid;
use workers::queue::{self, NewJob};

async fn connect(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    c
}

async fn tenants(owner: &tokio_postgres::Client, n: usize) -> Vec<Uuid> {
    let mut out = Vec::new();
    for i in 0..n {
        let id: Uuid = owner
            .query_one(
                "INSERT INTO tenants (slug, name, status) VALUES ($1, $1, 'active') RETURNING id",
                &[&format!("tenant-{i}")],
            )
            .await
            .unwrap()
            .get(0);
        out.push(id);
    }
    out
}

#[tokio::test]
async fn enqueue_is_transactional_and_unique_keys_hold() {
    let db = testkit::database().await;
    let mut w = connect(&db.workers_url()).await;
    let tx = w.transaction().await.unwrap();
    queue::enqueue(&tx, &NewJob::new("noop", json!({})))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let n: i64 = w
        .query_one("SELECT count(*) FROM jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "a rolled-back enqueue leaves no job");

    let mut job = NewJob::new("noop", json!({}));
    job.unique_key = Some("only-once".into());
    assert!(queue::enqueue(&w, &job).await.unwrap().is_some());
    assert!(
        queue::enqueue(&w, &job).await.unwrap().is_none(),
        "second pending copy refused"
    );
    // Once the first is done, the key is free again.
    let claimed = queue::fetch(&w, "w1", 10, Duration::from_secs(30))
        .await
        .unwrap();
    queue::complete(&w, "w1", &[claimed[0].id]).await.unwrap();
    assert!(queue::enqueue(&w, &job).await.unwrap().is_some());
}

#[tokio::test]
async fn one_tenants_backlog_does_not_starve_another() {
    let db = testkit::database().await;
    let owner = db.connect_as("postgres").await;
    let t = tenants(&owner, 3).await;
    let w = connect(&db.workers_url()).await;
    // Tenant 0 queued 300 jobs first; tenants 1 and 2 one each, later; one platform job.
    owner
        .execute(
            "INSERT INTO jobs (kind, tenant_id, run_at) SELECT 'noop', $1, now() - interval '1 hour' FROM generate_series(1, 300)",
            &[&t[0]],
        )
        .await
        .unwrap();
    for tenant in &t[1..] {
        let mut j = NewJob::new("noop", json!({}));
        j.tenant = Some(*tenant);
        queue::enqueue(&w, &j).await.unwrap();
    }
    queue::enqueue(&w, &NewJob::new("noop", json!({"system": true})))
        .await
        .unwrap();
    let batch = queue::fetch(&w, "w1", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(batch.len(), 10);
    let of = |x: Option<Uuid>| batch.iter().filter(|j| j.tenant == x).count();
    assert_eq!(of(Some(t[1])), 1);
    assert_eq!(of(Some(t[2])), 1);
    assert_eq!(of(None), 1);
    assert_eq!(of(Some(t[0])), 7);
    // A second consumer never gets the same jobs.
    let other = queue::fetch(&w, "w2", 500, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(other.len(), 293);
    assert!(other.iter().all(|j| !batch.iter().any(|b| b.id == j.id)));
}

#[tokio::test]
async fn failures_back_off_then_discard_with_the_last_error() {
    let db = testkit::database().await;
    let w = connect(&db.workers_url()).await;
    let mut job = NewJob::new("noop", json!({}));
    job.max_attempts = 2;
    let id = queue::enqueue(&w, &job).await.unwrap().unwrap();
    let j = queue::fetch(&w, "w1", 1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(j.attempt, 1);
    assert!(!queue::fail(&w, "w1", &j, "first failure").await.unwrap());
    let r = w
        .query_one(
            "SELECT state, run_at > now(), last_error FROM jobs WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "retryable");
    assert!(r.get::<_, bool>(1), "retry waits for its backoff");
    assert_eq!(r.get::<_, String>(2), "first failure");
    assert!(
        queue::fetch(&w, "w1", 1, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "not before its time"
    );
    w.execute("UPDATE jobs SET run_at = now() WHERE id = $1", &[&id])
        .await
        .unwrap();
    let j = queue::fetch(&w, "w1", 1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(j.attempt, 2);
    assert!(queue::fail(&w, "w1", &j, "second failure").await.unwrap());
    let r = w
        .query_one(
            "SELECT state, last_error, finished_at IS NOT NULL FROM jobs WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, String>(1)),
        ("discarded".into(), "second failure".into())
    );
    assert!(r.get::<_, bool>(2));
}

#[tokio::test]
async fn expired_leases_are_rescued_and_the_lost_worker_cannot_complete() {
    let db = testkit::database().await;
    let w = connect(&db.workers_url()).await;
    let id = queue::enqueue(&w, &NewJob::new("noop", json!({})))
        .await
        .unwrap()
        .unwrap();
    let j = queue::fetch(&w, "lost", 1, Duration::from_secs(1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        queue::rescue_expired(&w).await.unwrap(),
        0,
        "lease still valid"
    );
    // A heartbeat keeps it alive past the original lease.
    tokio::time::sleep(Duration::from_millis(600)).await;
    queue::heartbeat(&w, "lost", &[j.id], Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        queue::rescue_expired(&w).await.unwrap(),
        0,
        "heartbeat extended the lease"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(queue::rescue_expired(&w).await.unwrap(), 1);
    let again = queue::fetch(&w, "alive", 1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    assert_eq!((again.id, again.attempt), (id, 2));
    assert_eq!(
        queue::complete(&w, "lost", &[id]).await.unwrap(),
        0,
        "the lost worker no longer holds it"
    );
    assert_eq!(queue::complete(&w, "alive", &[id]).await.unwrap(), 1);
}
