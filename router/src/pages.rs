//! The replies the router writes itself: redirects, the suspended-tenant page, and branded
//! error pages that show a request id and nothing about the internals.

use bytes::Bytes;
use http::HeaderValue;

use crate::respond::Reply;

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

const HTML: &str = "text/html; charset=utf-8";

/// A branded HTML error page.
pub fn error(status: u16, request_id: &str) -> Reply {
    let (title, message) = error_text(status);
    Reply::new(status, HTML, page(title, message, request_id))
}

/// The 403 page for a suspended or cancelled tenant.
pub fn suspended(tenant_name: &str, request_id: &str) -> Reply {
    let msg = format!(
        "The site of {} is currently not available. If you manage it, please contact support.",
        escape_html(tenant_name)
    );
    Reply::new(403, HTML, page("Site unavailable", &msg, request_id))
}

/// A permanent redirect (`308` keeps the method and body). A location that is not a valid
/// header value (it is built from a canonical host, so it always is) goes to the site root.
pub fn redirect(location: &str) -> Reply {
    let location = HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/"));
    Reply::new(308, "text/plain; charset=utf-8", Bytes::new())
        .header(http::header::LOCATION, location)
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
