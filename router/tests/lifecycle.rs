//! Process lifecycle: graceful shutdown drains in-flight requests; a graceful upgrade
//! (`serve --upgrade` + SIGQUIT to the old process) hands the listening socket over under load
//! without a failed request.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TENANTS: &str = "[[tenant]]\nslug = 'grace'\nname = 'Grace'\n";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    let origin = testkit::origin("platform").start().await;
    let mut router = testkit::router(env!("CARGO_BIN_EXE_router"))
        .static_tenants(TENANTS)
        .platform(&[origin.host_port()])
        .start();
    let url = router.url("/slow?ms=1500");
    let slow = tokio::spawn(async move {
        client()
            .get(url)
            .header("host", "grace.platform.test")
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    router.process.signal("TERM");
    assert_eq!(
        slow.await.unwrap().unwrap(),
        200,
        "the in-flight request completed"
    );
    let code = router.process.wait_exit(Duration::from_secs(15));
    assert_eq!(
        code,
        Some(0),
        "router exits cleanly:\n{}",
        router.process.output()
    );
}

/// One load worker. `fresh` opens a new connection per request (what the socket hand-over itself
/// must get right). Otherwise connections are kept alive, and a request the server closed the
/// connection on before answering is retried once, as RFC 9110 §9.2.2 allows clients (and
/// browsers do) for idempotent requests: an idle keep-alive connection can always be closed
/// while a request is already on the wire, by any HTTP/1.1 server that shuts down.
async fn worker(url: String, fresh: bool, stop: Arc<AtomicBool>, tally: Arc<[AtomicU64; 3]>) {
    let mut b = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if fresh {
        b = b.pool_max_idle_per_host(0);
    }
    let c = b.build().unwrap();
    // Bounded: at most 2,000 requests per worker.
    for _ in 0..2_000 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let mut attempt = 0;
        loop {
            let res = c
                .get(&url)
                .header("host", "grace.platform.test")
                .send()
                .await;
            match res {
                Ok(r) if r.status() == 200 => tally[0].fetch_add(1, Ordering::SeqCst),
                Err(e) if !fresh && attempt == 0 && e.is_request() => {
                    attempt += 1;
                    tally[2].fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                other => {
                    eprintln!("failed: {other:?}");
                    tally[1].fetch_add(1, Ordering::SeqCst)
                }
            };
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_upgrade_under_load_fails_no_request() {
    let origin = testkit::origin("platform").start().await;
    let mut old = testkit::router(env!("CARGO_BIN_EXE_router"))
        .static_tenants(TENANTS)
        .platform(&[origin.host_port()])
        // A load test of the hand-over, not of the limits (which would refuse the load).
        .set("rate_limits", "enabled = false")
        .start();

    let stop = Arc::new(AtomicBool::new(false));
    // ok, failed, keep-alive retries
    let tally: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
    let load: Vec<_> = [true, true, false, false]
        .into_iter()
        .map(|fresh| {
            tokio::spawn(worker(
                old.url("/slow?ms=20"),
                fresh,
                stop.clone(),
                tally.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = tally[0].load(Ordering::SeqCst);

    let mut new = old.start_upgrade();
    let sock = old.dir().join("upgrade.sock");
    let listening = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        sock.exists()
    });
    assert!(
        listening,
        "new instance waits on the upgrade socket:\n{}",
        new.output()
    );
    old.process.signal("QUIT");
    let old_exit = old.process.wait_exit(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }
    let [ok, failed, retried] = [0, 1, 2].map(|i| tally[i].load(Ordering::SeqCst));
    eprintln!("upgrade under load: {ok} ok, {failed} failed, {retried} keep-alive retries");
    assert_eq!(
        old_exit,
        Some(0),
        "old instance drained and exited:\n{}",
        old.process.output()
    );
    assert_eq!(
        failed,
        0,
        "{failed} failed of {} requests during the upgrade",
        ok + failed
    );
    assert!(
        ok > before + 20,
        "traffic continued after the hand-over ({before} → {ok})"
    );

    // Only the new process is left, and it serves.
    let r = client()
        .get(old.url("/"))
        .header("host", "grace.platform.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "new instance serves:\n{}", new.output());
    new.signal("TERM");
    assert_eq!(new.wait_exit(Duration::from_secs(15)), Some(0));
}
