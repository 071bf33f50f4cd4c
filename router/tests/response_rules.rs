//! Response rules at the edge: `Cache-Control` path rules only on successes and never over
//! the platform's own, `/static/` for a day, a default `Content-Security-Policy` only on HTML
//! that has none, and a trusted TLS-terminating balancer's `X-Forwarded-Proto` deciding HSTS
//! and the HTTP→HTTPS redirect (no loop).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TENANTS: &str = "
[[tenant]]
slug = 'grace'
name = 'Grace'
domains = ['grace-church.localhost']
";
const HOST: &str = "grace.platform.test";

/// An origin answering by path: `/missing*` 404, `/own-cc*` with its own `Cache-Control`,
/// `/page*` HTML without a policy, `/strict*` HTML with one, everything else plain 200.
async fn scripted_origin() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                        let file = path.rsplit('/').next().unwrap_or_default().to_owned();
                        let (status, extra) = if file.starts_with("missing") {
                            ("404 Not Found", "content-type: text/html\r\n")
                        } else if file.starts_with("own-cc") {
                            (
                                "200 OK",
                                "content-type: text/plain\r\ncache-control: no-store\r\n",
                            )
                        } else if file.starts_with("page") {
                            ("200 OK", "content-type: text/html; charset=utf-8\r\n")
                        } else if file.starts_with("strict") {
                            (
                                "200 OK",
                                "content-type: text/html\r\ncontent-security-policy: default-src 'none'\r\n",
                            )
                        } else {
                            ("200 OK", "content-type: text/plain\r\n")
                        };
                        let resp =
                            format!("HTTP/1.1 {status}\r\n{extra}content-length: 2\r\n\r\nok");
                        if s.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get(r: &testkit::RouterProcess, path: &str, xfp: Option<&str>) -> reqwest::Response {
    let mut req = client().get(r.url(path)).header("host", HOST);
    if let Some(p) = xfp {
        req = req.header("x-forwarded-proto", p);
    }
    req.send().await.unwrap()
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_control_and_csp_follow_the_response() {
    let origin = scripted_origin().await;
    let r = testkit::router(env!("CARGO_BIN_EXE_router"))
        .static_tenants(TENANTS)
        .platform(&[origin])
        .set("rate_limits", "enabled = false")
        .start();
    let year = "public, max-age=31536000, immutable";
    let resp = get(&r, "/_next/static/app.js", None).await;
    assert_eq!(header(&resp, "cache-control").as_deref(), Some(year));
    let resp = get(&r, "/_next/static/missing.js", None).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(header(&resp, "cache-control"), None, "a 404 is not cached");
    let resp = get(&r, "/_next/static/own-cc.js", None).await;
    assert_eq!(header(&resp, "cache-control").as_deref(), Some("no-store"));
    let resp = get(&r, "/static/logo.png", None).await;
    assert_eq!(
        header(&resp, "cache-control").as_deref(),
        Some("public, max-age=86400")
    );
    let resp = get(&r, "/page", None).await;
    assert!(header(&resp, "content-security-policy")
        .unwrap()
        .contains("default-src 'self'"));
    let resp = get(&r, "/strict", None).await;
    assert_eq!(
        header(&resp, "content-security-policy").as_deref(),
        Some("default-src 'none'"),
        "the platform's own policy stands"
    );
    let resp = get(&r, "/plain", None).await;
    assert_eq!(header(&resp, "content-security-policy"), None, "not HTML");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_balancers_forwarded_proto_decides_hsts_and_the_redirect() {
    let origin = scripted_origin().await;
    let start = |trusted: bool| {
        let b = testkit::router(env!("CARGO_BIN_EXE_router"))
            .static_tenants(TENANTS)
            .platform(std::slice::from_ref(&origin))
            .set("rate_limits", "enabled = false")
            .set("listen", "redirect_http_to_https = true");
        if trusted {
            b.set("", "trusted_proxies = [\"127.0.0.1\"]").start()
        } else {
            b.start()
        }
    };
    let behind_lb = start(true);
    // The balancer terminated TLS: no redirect (it would loop), HSTS on the answer.
    let resp = get(&behind_lb, "/plain", Some("https")).await;
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "strict-transport-security").is_some());
    // The balancer's plain-HTTP side: redirected, no HSTS.
    let resp = get(&behind_lb, "/plain", Some("http")).await;
    assert_eq!(resp.status(), 308);
    assert_eq!(header(&resp, "strict-transport-security"), None);
    // From an untrusted peer the header means nothing.
    let direct = start(false);
    let resp = get(&direct, "/plain", Some("https")).await;
    assert_eq!(resp.status(), 308);
    assert_eq!(header(&resp, "strict-transport-security"), None);
}
