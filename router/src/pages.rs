//! Responses the router writes itself: redirects, the suspended-tenant page, and branded error
//! pages that show a request id and nothing about the internals.

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::headers::HeaderPolicy;

/// Escapes text for an HTML body (tenant names are user input); shared with the platform's
/// pages and the workers' mails.
pub use tenant_config::html::escape as escape_html;

fn page(title: &str, message: &str, request_id: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:36rem;\
         margin:15vh auto;padding:0 1rem;color:#1f2933}}h1{{font-size:1.5rem}}\
         small{{color:#7b8794}}</style></head><body><h1>{title}</h1><p>{message}</p>\
         <p><small>Reference: {}</small></p></body></html>",
        escape_html(request_id)
    )
}

/// Title and message for an error status.
pub fn error_text(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("Bad request", "The request could not be understood."),
        403 => ("Not available", "This site is not available."),
        404 => ("Not found", "There is nothing here."),
        429 => ("Too many requests", "Please wait a moment and try again."),
        502 => (
            "Temporarily unavailable",
            "We could not reach the service. Please try again shortly.",
        ),
        503 => (
            "Temporarily unavailable",
            "The service is busy or under maintenance. Please try again shortly.",
        ),
        504 => (
            "Timed out",
            "The service took too long to answer. Please try again shortly.",
        ),
        _ => ("Something went wrong", "Please try again shortly."),
    }
}

/// Writes a complete response; `body` may be empty.
async fn write(
    session: &mut Session,
    mut resp: ResponseHeader,
    body: Bytes,
    content_type: &str,
    policy: &HeaderPolicy,
    tls: bool,
    request_id: &HeaderValue,
) -> pingora::Result<()> {
    resp.insert_header("content-type", content_type)?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    policy.decorate_response(&mut resp, "", tls, request_id);
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only || body.is_empty())
        .await?;
    if !head_only && !body.is_empty() {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// A branded HTML error page.
pub async fn error_page(
    session: &mut Session,
    status: u16,
    policy: &HeaderPolicy,
    tls: bool,
    request_id: &HeaderValue,
) -> pingora::Result<()> {
    let (title, message) = error_text(status);
    let resp = ResponseHeader::build(status, Some(4))?;
    let body = Bytes::from(page(
        title,
        message,
        request_id.to_str().unwrap_or_default(),
    ));
    write(
        session,
        resp,
        body,
        "text/html; charset=utf-8",
        policy,
        tls,
        request_id,
    )
    .await
}

/// The 403 page for a suspended or cancelled tenant.
pub async fn suspended(
    session: &mut Session,
    tenant_name: &str,
    policy: &HeaderPolicy,
    tls: bool,
    request_id: &HeaderValue,
) -> pingora::Result<()> {
    let resp = ResponseHeader::build(403, Some(4))?;
    let msg = format!(
        "The site of {} is currently not available. If you manage it, please contact support.",
        escape_html(tenant_name)
    );
    let body = Bytes::from(page(
        "Site unavailable",
        &msg,
        request_id.to_str().unwrap_or_default(),
    ));
    write(
        session,
        resp,
        body,
        "text/html; charset=utf-8",
        policy,
        tls,
        request_id,
    )
    .await
}

/// A permanent redirect (`308` keeps the method and body).
pub async fn redirect(
    session: &mut Session,
    location: &str,
    policy: &HeaderPolicy,
    tls: bool,
    request_id: &HeaderValue,
) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(308, Some(5))?;
    resp.insert_header("location", location)?;
    write(
        session,
        resp,
        Bytes::new(),
        "text/plain; charset=utf-8",
        policy,
        tls,
        request_id,
    )
    .await
}

/// A small JSON answer (the router's own health endpoints).
pub async fn json(
    session: &mut Session,
    status: u16,
    body: String,
    policy: &HeaderPolicy,
    request_id: &HeaderValue,
) -> pingora::Result<()> {
    let resp = ResponseHeader::build(status, Some(4))?;
    write(
        session,
        resp,
        Bytes::from(body),
        "application/json",
        policy,
        false,
        request_id,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html("<script>alert('x')</script> & \"co\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;"
        );
    }

    #[test]
    fn error_pages_leak_nothing() {
        let p = page(error_text(502).0, error_text(502).1, "req-123456");
        assert!(p.contains("Temporarily unavailable") && p.contains("req-123456"));
        for leak in ["127.0.0.1", "pingora", "Connection refused", "upstream"] {
            assert!(!p.contains(leak), "{leak}");
        }
    }
}
