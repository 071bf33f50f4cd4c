//! The ACME client's HTTP side: instant-acme over our own hyper client, wrapped so a CA's
//! `Retry-After` survives.
//!
//! Why a wrapper: instant-acme turns a `429 rateLimited` into a plain problem error and drops
//! the response's `Retry-After`, and it reads the header only while polling. Retrying a
//! rate-limited order early only earns more refusals, so every response passes through
//! [`KeepRetryAfter`], which remembers the latest `Retry-After` of a 429 or 503 for the
//! issuer to read after a failure.
//!
//! It also bounds every request by [`REQUEST_TIMEOUT`]: instant-acme sets no timeout of its
//! own, so a CA that accepts the connection and never answers would hold the name's lease,
//! and a worker, for as long as the socket stays open.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{Request, StatusCode};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

/// The most recent `Retry-After` a 429/503 carried, shared by every request of one account.
#[derive(Clone, Default)]
pub struct RetryAfter(Arc<Mutex<Option<SystemTime>>>);

impl RetryAfter {
    /// Takes the remembered moment, as a delay from now (`None`: none, or already past).
    pub fn take(&self) -> Option<Duration> {
        let at = self.0.lock().ok()?.take()?;
        at.duration_since(SystemTime::now()).ok()
    }

    fn set(&self, at: SystemTime) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(at);
        }
    }
}

/// Parses `Retry-After` (delay-seconds or an HTTP date) into a moment.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<SystemTime> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        // A CA asking for more than a week is treated as a week.
        return Some(now + Duration::from_secs(secs.min(7 * 86_400)));
    }
    httpdate::parse_http_date(value).ok()
}

/// Longest wait for one ACME request (connect, send, whole response). Polling an order is many
/// requests, each bounded by this; the order as a whole is bounded by `acme.order_timeout_secs`
/// per poll and by the lease (`issue.rs`). 30 s is far above a healthy CA's answer time and
/// well inside the smallest lease the configuration accepts.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// instant-acme's HTTP client: hyper over rustls with the given roots, remembering
/// `Retry-After`, each request bounded in time.
pub struct KeepRetryAfter {
    inner: Client<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
    retry_after: RetryAfter,
    timeout: Duration,
}

impl KeepRetryAfter {
    /// A client trusting `roots` (the system's, plus the ACME server's own root for a test
    /// CA), reporting into `retry_after`, giving up on a request after `timeout`.
    pub fn new(
        roots: rustls::RootCertStore,
        retry_after: RetryAfter,
        timeout: Duration,
    ) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("ACME client TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        Ok(Self {
            inner: Client::builder(TokioExecutor::new()).build(https),
            retry_after,
            timeout,
        })
    }
}

impl HttpClient for KeepRetryAfter {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let fut = HttpClient::request(&self.inner, req);
        let slot = self.retry_after.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let rsp = tokio::time::timeout(timeout, fut)
                .await
                .map_err(|_| timed_out(timeout))??;
            let status = rsp.parts.status;
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
            {
                if let Some(at) = rsp
                    .parts
                    .headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()))
                {
                    slot.set(at);
                }
            }
            Ok(rsp)
        })
    }
}

/// The error a request that outlived its timeout fails with (an I/O timeout, so it reads as
/// a network failure and is retried with backoff like one).
fn timed_out(after: Duration) -> instant_acme::Error {
    instant_acme::Error::Other(Box::new(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "the ACME server did not answer within {} s",
            after.as_secs_f32()
        ),
    )))
}

/// The roots the ACME client trusts: the system's, plus every certificate in `extra` (PEM).
pub fn client_roots(extra: Option<&std::path::Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = extra {
        for cert in read_pem_certs(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(roots)
}

/// Every certificate in a PEM file.
pub fn read_pem_certs(
    path: &std::path::Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect();
    let certs = certs.map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(now + Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("99999999", now),
            Some(now + Duration::from_secs(7 * 86_400)),
            "capped at a week"
        );
        let date = parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now).unwrap();
        assert_eq!(
            date.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            784_111_777
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    /// A server that accepts the connection and never answers (not even the TLS handshake):
    /// the request fails after the timeout instead of hanging.
    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                open.push(s);
            }
        });
        let client = KeepRetryAfter::new(
            rustls::RootCertStore::empty(),
            RetryAfter::default(),
            Duration::from_millis(300),
        )
        .unwrap();
        let req = Request::get(format!("https://{addr}/dir"))
            .body(BodyWrapper::from(Vec::new()))
            .unwrap();
        let started = std::time::Instant::now();
        let err = match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
            Ok(Err(e)) => e.to_string(),
            Ok(Ok(_)) => panic!("a silent server answered"),
            Err(_) => panic!("the request was not bounded"),
        };
        assert!(err.contains("did not answer within"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
        held.abort();
    }
}
