//! What every server-rendered page shares: rendering a template with the page headers
//! (a strict Content-Security-Policy without `unsafe-inline`, `Cache-Control`), redirects after
//! a form, field errors shown next to their field, money formatting, and the static files
//! (CSS and the little JavaScript the pages use), embedded in the binary.
//!
//! Pages call the same functions as the JSON API; only parsing and rendering differ.

use std::collections::BTreeMap;

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

/// The Content-Security-Policy of every page: scripts and styles only from us (no inline code
/// at all, so neither `unsafe-inline` nor nonces are needed), plus Stripe.js where a page takes
/// a card.
pub fn csp(stripe_js: Option<&str>) -> String {
    let stripe = stripe_js.and_then(origin).unwrap_or_default();
    let (script, frame, connect) = if stripe.is_empty() {
        (
            "'self'".to_owned(),
            "'none'".to_owned(),
            "'self'".to_owned(),
        )
    } else {
        (
            format!("'self' {stripe}"),
            stripe.clone(),
            format!("'self' {stripe} https://api.stripe.com"),
        )
    };
    format!(
        "default-src 'none'; script-src {script}; style-src 'self'; img-src 'self' data:; \
         font-src 'self'; connect-src {connect}; frame-src {frame}; form-action 'self'; \
         base-uri 'none'; frame-ancestors 'none'"
    )
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

/// Renders `page` as HTML with `status` and the page headers. `private`: the page shows an
/// account's data (never stored by any cache); otherwise the browser may keep it briefly.
pub fn render<T: Template>(status: StatusCode, page: &T, csp: &str, private: bool) -> Response {
    let html = match page.render() {
        Ok(h) => h,
        Err(e) => return AppError::Internal(format!("template: {e}")).into_response(),
    };
    let mut resp = (status, html).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if private {
            "no-store"
        } else {
            "private, max-age=0, must-revalidate"
        }),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// 303 See Other to `to` (a path on this host), the answer to a successful form.
pub fn see_other(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A session extractor that pages can use: where a browser without a session is sent, and which
/// cookie holds the session (its CSRF token sits in the companion cookie).
pub trait PageSession: Sized {
    /// The session cookie's name.
    const COOKIE: &'static str;
    /// The login page a browser without a session is sent to.
    const LOGIN: &'static str;
}

/// A signed-in account on a page: like the session extractor `S`, but a browser without a
/// session is sent to the login page instead of getting a 401, and the page gets the CSRF token
/// to put in its forms.
pub struct SignedIn<S> {
    /// The session.
    pub session: S,
    /// The CSRF token for this page's forms.
    pub csrf: String,
}

impl<S> axum::extract::FromRequestParts<crate::state::AppState> for SignedIn<S>
where
    S: PageSession
        + axum::extract::FromRequestParts<crate::state::AppState, Rejection = AppError>
        + Send,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::state::AppState,
    ) -> Result<Self, Response> {
        match S::from_request_parts(parts, state).await {
            Ok(session) => Ok(SignedIn {
                csrf: crate::auth::cookie(
                    &parts.headers,
                    &crate::auth::csrf_cookie_name(S::COOKIE),
                )
                .unwrap_or_default(),
                session,
            }),
            Err(AppError::Unauthorized) => Err(see_other(S::LOGIN)),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// A private page: the console's and staff area's policy (no Stripe, never cached).
pub fn private_page<T: Template>(status: StatusCode, t: &T) -> Response {
    render(status, t, &csp(None), true)
}

/// The login forms' fields (console and staff area).
#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    /// Email.
    #[serde(default)]
    pub email: String,
    /// Password.
    #[serde(default)]
    pub password: String,
}

/// Messages to show next to form fields, by field name; `_` is the form-wide message.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors(pub BTreeMap<String, String>);

impl FieldErrors {
    /// The message for `field`, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    /// Whether `field` has a message.
    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// The form-wide message.
    pub fn general(&self) -> Option<&str> {
        self.get("_")
    }

    /// Whether anything is wrong.
    pub fn any(&self) -> bool {
        !self.0.is_empty()
    }

    /// One message (for `field`, `_` for the whole form).
    pub fn one(field: &str, message: impl Into<String>) -> Self {
        let mut m = BTreeMap::new();
        m.insert(field.to_owned(), message.into());
        Self(m)
    }

    /// The errors a user can fix by changing the form (`Ok`), or the error itself when it is
    /// not about the input (`Err`, rendered as an error page).
    pub fn from_error(e: AppError, rename: &[(&str, &str)]) -> Result<Self, AppError> {
        match e {
            AppError::Invalid { field, message } => {
                let name = rename
                    .iter()
                    .find(|(from, _)| *from == field)
                    .map_or(field.as_ref(), |(_, to)| *to)
                    .to_owned();
                Ok(Self::one(&name, message))
            }
            AppError::Conflict(what) => Ok(Self::one("_", what)),
            other => Err(other),
        }
    }
}

/// Minor units as a decimal amount with the currency code (`25.00 USD`, `2500 JPY`).
pub fn money(minor: i64, currency: &str) -> String {
    tenant_config::money::format(minor, currency)
}

/// `GET /static/{file}`: the pages' CSS and scripts, cacheable for a day.
pub async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, ctype): (&'static str, &'static str) = match file.as_str() {
        "app.css" => (include_str!("../static/app.css"), "text/css; charset=utf-8"),
        "app.js" => (
            include_str!("../static/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "give.js" => (
            include_str!("../static/give.js"),
            "text/javascript; charset=utf-8",
        ),
        "confirm.js" => (
            include_str!("../static/confirm.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return AppError::NotFound.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_stripe_only_where_asked() {
        let plain = csp(None);
        assert!(plain.contains("script-src 'self';"), "{plain}");
        assert!(!plain.contains("unsafe-inline"));
        let give = csp(Some("http://127.0.0.1:8421/js.stripe.com/v3/"));
        assert!(
            give.contains("script-src 'self' http://127.0.0.1:8421;"),
            "{give}"
        );
        assert!(give.contains("frame-src http://127.0.0.1:8421;"), "{give}");
    }
}
