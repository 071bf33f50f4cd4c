//! The replies the router writes itself: redirects, the suspended-tenant page, and branded
//! error pages that show a request id and nothing about the internals.
//!
//! Error answers follow the request's `Accept`: a client that prefers JSON (an API client, a
//! `fetch` from a page) gets an RFC 9457 `application/problem+json` body with the same title,
//! message and request id; a browser gets the HTML page. With no preference either way (no
//! `Accept`, or only `*/*`), paths under `/api/` get JSON and everything else HTML.

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::RequestHeader;

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

/// How much the `Accept` value wants JSON and HTML: the highest `q` given to a JSON type
/// (`application/json`, `application/problem+json`, any `+json`, `application/*`) and to an
/// HTML type (`text/html`, `application/xhtml+xml`, `text/*`), and to `*/*`. Malformed
/// parameters count as `q=1`, as most servers read them.
fn accept_weights(accept: &str) -> (Option<f32>, Option<f32>, Option<f32>) {
    let (mut json, mut html, mut any) = (None::<f32>, None::<f32>, None::<f32>);
    let raise = |slot: &mut Option<f32>, q: f32| *slot = Some(slot.map_or(q, |v: f32| v.max(q)));
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
            })
            .find_map(|v| v.trim().parse::<f32>().ok())
            .filter(|q| (0.0..=1.0).contains(q))
            .unwrap_or(1.0);
        match media.as_str() {
            "*/*" => raise(&mut any, q),
            "application/json" | "application/problem+json" | "application/*" => {
                raise(&mut json, q)
            }
            "text/html" | "application/xhtml+xml" | "text/*" => raise(&mut html, q),
            m if m.ends_with("+json") => raise(&mut json, q),
            _ => {}
        }
    }
    (json, html, any)
}

/// Whether the error answer to a request with this `Accept` on this path should be JSON.
pub fn prefers_json(accept: Option<&str>, path: &str) -> bool {
    let api = path.starts_with("/api/");
    let Some(accept) = accept else {
        return api;
    };
    let (json, html, any) = accept_weights(accept);
    // Weight first; at equal weight a type named explicitly beats one only covered by `*/*`
    // (`application/json, text/plain, */*` prefers JSON).
    let rank = |named: Option<f32>| match (named, any) {
        (Some(q), _) => (q, 1),
        (None, Some(q)) => (q, 0),
        (None, None) => (0.0, 0),
    };
    let (json, html) = (rank(json), rank(html));
    if json.0 > 0.0 && json > html {
        true
    } else if html.0 > 0.0 && html > json {
        false
    } else {
        api
    }
}

/// An RFC 9457 problem body for `status`, with the same words as the HTML page.
pub(crate) fn problem(status: u16, title: &str, message: &str, request_id: &str) -> Reply {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": message,
        "request_id": request_id,
    });
    Reply::new(status, "application/problem+json", body.to_string())
}

/// The error answer for `req`: problem+json when it prefers JSON ([`prefers_json`]), else
/// the branded HTML page.
pub fn error_for(req: &RequestHeader, status: u16, request_id: &str) -> Reply {
    if wants_json(req) {
        let (title, message) = error_text(status);
        problem(status, title, message, request_id)
    } else {
        error(status, request_id)
    }
}

/// Whether `req` prefers a JSON answer ([`prefers_json`] on its `Accept` and path).
pub(crate) fn wants_json(req: &RequestHeader) -> bool {
    let accept = req
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    prefers_json(accept, req.uri.path())
}

/// The suspended-tenant answer for `req`, JSON or HTML as [`error_for`] decides. The JSON
/// form does not name the tenant: an API client has no use for it.
pub fn suspended_for(req: &RequestHeader, tenant_name: &str, request_id: &str) -> Reply {
    if wants_json(req) {
        let (title, message) = error_text(403);
        problem(403, title, message, request_id)
    } else {
        suspended(tenant_name, request_id)
    }
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
    fn json_when_the_client_prefers_it() {
        let api = "/api/tenant";
        let page = "/give";
        // Asked for by name.
        assert!(prefers_json(Some("application/json"), page));
        assert!(prefers_json(Some("application/problem+json"), page));
        assert!(prefers_json(Some("application/vnd.api+json"), page));
        assert!(prefers_json(
            Some("application/json, text/plain, */*"),
            page
        ));
        // Browsers name HTML and only accept */* at a lower weight.
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(!prefers_json(Some(browser), api));
        // Weights decide between two named types.
        assert!(prefers_json(
            Some("text/html;q=0.5, application/json"),
            page
        ));
        assert!(!prefers_json(
            Some("application/json;q=0.4, text/html"),
            api
        ));
        // No preference: the path decides.
        assert!(prefers_json(None, api));
        assert!(!prefers_json(None, page));
        assert!(prefers_json(Some("*/*"), api));
        assert!(!prefers_json(Some("*/*"), page));
        assert!(!prefers_json(Some("image/png"), page));
        // Nonsense weights count as 1.
        assert!(prefers_json(Some("application/json;q=abc"), page));
    }

    #[test]
    fn problem_body_carries_the_request_id_only() {
        let mut req = RequestHeader::build("GET", b"/api/tenant", None).unwrap();
        req.insert_header("accept", "application/json").unwrap();
        let r = error_for(&req, 502, "req-9");
        assert_eq!(r.content_type, "application/problem+json");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["status"], 502);
        assert_eq!(v["request_id"], "req-9");
        assert_eq!(v["title"], "Temporarily unavailable");
        let s = suspended_for(&req, "<Grace>", "req-9");
        assert!(!std::str::from_utf8(&s.body).unwrap().contains("Grace"));
        let mut browser = RequestHeader::build("GET", b"/", None).unwrap();
        browser.insert_header("accept", "text/html").unwrap();
        assert!(error_for(&browser, 502, "r")
            .content_type
            .starts_with("text/html"));
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
