//! A small Stripe API client: form-encoded requests, `Stripe-Account` for direct charges on a
//! connected account, an `Idempotency-Key` on every write, and retries that reuse that key.
//!
//! Retries: network errors, 409 (idempotency-key in use), 429 and 5xx are retried twice with a
//! short backoff and the **same** idempotency key, which Stripe guarantees cannot double-apply a
//! write. Anything else is returned to the caller as [`StripeError::Api`] with Stripe's message.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The API version we were written against; sent on every request so an account-level upgrade
/// on Stripe's side cannot change response shapes under us.
pub const API_VERSION: &str = "2024-06-20";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Could not reach Stripe or the connection broke (after retries).
    #[error("stripe unreachable: {0}")]
    Network(String),
    /// Stripe answered with an error.
    #[error("stripe {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stripe's error `code`, when given.
        code: Option<String>,
        /// Stripe's error message (never contains card data).
        message: String,
    },
    /// The response was not what we expected.
    #[error("stripe response not understood: {0}")]
    Decode(String),
}

impl StripeError {
    /// Whether trying again later could succeed (outage, rate limit), as opposed to a request
    /// Stripe refuses on its merits.
    pub fn is_transient(&self) -> bool {
        match self {
            StripeError::Network(_) => true,
            StripeError::Api { status, .. } => *status == 429 || *status >= 500 || *status == 409,
            StripeError::Decode(_) => false,
        }
    }
}

/// Form parameters in Stripe's bracket notation (`metadata[tenant_id]`, `items[0][plan]`).
#[derive(Debug, Default, Clone)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// An empty form.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one parameter.
    pub fn set(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.0.push((key.into(), value.to_string()));
        self
    }
}

/// Per-request options.
#[derive(Debug, Default, Clone, Copy)]
pub struct Opts<'a> {
    /// Connected account (`Stripe-Account`): the request acts on that account.
    pub account: Option<&'a str>,
    /// Idempotency key; writes without one are refused by [`StripeClient::post`].
    pub idempotency_key: Option<&'a str>,
}

/// A configured client; cheap to clone.
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base: String,
    secret_key: String,
    retry_delay: Duration,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret key is never printed.
        f.debug_struct("StripeClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

impl StripeClient {
    /// A client for `base` (`https://api.stripe.com`, or an emulator in tests) with a request
    /// timeout.
    pub fn new(base: &str, secret_key: &str, timeout: Duration) -> Result<Self, StripeError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("donations-platform/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StripeError::Network(e.to_string()))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            secret_key: secret_key.to_owned(),
            retry_delay: Duration::from_millis(250),
        })
    }

    /// `POST /v1/<path>` with an idempotency key (required: every write we make must be safe
    /// to retry).
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &Form,
        opts: Opts<'_>,
    ) -> Result<T, StripeError> {
        if opts.idempotency_key.is_none() {
            return Err(StripeError::Decode(format!(
                "POST {path} without an idempotency key"
            )));
        }
        self.send(reqwest::Method::POST, path, Some(form), opts)
            .await
    }

    /// `GET /v1/<path>`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        opts: Opts<'_>,
    ) -> Result<T, StripeError> {
        self.send(reqwest::Method::GET, path, None, opts).await
    }

    /// `DELETE /v1/<path>` (cancelling a subscription).
    pub async fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        opts: Opts<'_>,
    ) -> Result<T, StripeError> {
        self.send(reqwest::Method::DELETE, path, None, opts).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        form: Option<&Form>,
        opts: Opts<'_>,
    ) -> Result<T, StripeError> {
        let url = format!("{}/v1/{}", self.base, path.trim_start_matches('/'));
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = self.once(method.clone(), &url, form, opts).await;
            match result {
                Err(e) if e.is_transient() && attempt < 3 => {
                    tracing::warn!(%path, attempt, error = %e, "stripe call failed, retrying");
                    tokio::time::sleep(self.retry_delay * attempt).await;
                }
                other => return other,
            }
        }
    }

    async fn once<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        url: &str,
        form: Option<&Form>,
        opts: Opts<'_>,
    ) -> Result<T, StripeError> {
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(&self.secret_key)
            .header("Stripe-Version", API_VERSION);
        if let Some(account) = opts.account {
            req = req.header("Stripe-Account", account);
        }
        if let Some(key) = opts.idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        if let Some(form) = form {
            req = req
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(encode_form(&form.0));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| StripeError::Network(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| StripeError::Network(e.without_url().to_string()))?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(|e| StripeError::Decode(e.to_string()));
        }
        let (message, code) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => (
                b.error.message.unwrap_or_else(|| "no message".into()),
                b.error.code,
            ),
            Err(_) => (format!("HTTP {status} without an error body"), None),
        };
        Err(StripeError::Api {
            status,
            code,
            message,
        })
    }
}

/// `application/x-www-form-urlencoded` with Stripe's bracketed keys left readable.
fn encode_form(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        escape(&mut out, k, true);
        out.push('=');
        escape(&mut out, v, false);
    }
    out
}

fn escape(out: &mut String, s: &str, key: bool) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b'[' | b']' if key => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push_str(&format!("{b:02X}"));
            }
        }
    }
}

/// The fields of a Customer we use.
#[derive(Debug, Clone, Deserialize)]
pub struct Customer {
    /// `cus_…`.
    pub id: String,
}

/// The fields of a PaymentIntent we use.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentIntent {
    /// `pi_…`.
    pub id: String,
    /// `requires_payment_method`, `succeeded`, `canceled`, …
    pub status: String,
    /// Minor units.
    pub amount: i64,
    /// Lower-case ISO code.
    pub currency: String,
    /// Handed to Stripe.js to confirm the payment in the donor's browser.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The charge, once there is one (id, or the object when expanded).
    #[serde(default)]
    pub latest_charge: Option<serde_json::Value>,
    /// Our metadata.
    #[serde(default)]
    pub metadata: std::collections::HashMap<String, String>,
}

impl PaymentIntent {
    /// The charge id, whether `latest_charge` is an id or an expanded object.
    pub fn charge_id(&self) -> Option<&str> {
        match self.latest_charge.as_ref()? {
            serde_json::Value::String(s) => Some(s),
            v => v.get("id")?.as_str(),
        }
    }
}

/// The fields of a Subscription we use.
#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    /// `sub_…`.
    pub id: String,
    /// `incomplete`, `active`, `past_due`, `canceled`, …
    pub status: String,
    /// End of the paid period (unix seconds).
    #[serde(default)]
    pub current_period_end: Option<i64>,
    /// The first invoice, expanded with its payment intent at creation.
    #[serde(default)]
    pub latest_invoice: Option<serde_json::Value>,
    /// Our metadata.
    #[serde(default)]
    pub metadata: std::collections::HashMap<String, String>,
}

impl Subscription {
    /// The client secret of the first invoice's payment intent, when expanded.
    pub fn payment_client_secret(&self) -> Option<&str> {
        self.latest_invoice
            .as_ref()?
            .get("payment_intent")?
            .get("client_secret")?
            .as_str()
    }

    /// The status of the first invoice's payment intent (`succeeded`, `requires_action` for
    /// 3-D Secure, …), when expanded.
    pub fn payment_status(&self) -> Option<&str> {
        self.latest_invoice
            .as_ref()?
            .get("payment_intent")?
            .get("status")?
            .as_str()
    }
}

/// An object with only an id (plans, products).
#[derive(Debug, Clone, Deserialize)]
pub struct Created {
    /// The new object's id.
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_keeps_brackets_and_escapes_values() {
        let f = Form::new()
            .set("metadata[tenant_id]", "a b&c=d")
            .set("items[0][plan]", "plan_1")
            .set("product[name]", "Église — roof");
        assert_eq!(
            encode_form(&f.0),
            "metadata[tenant_id]=a+b%26c%3Dd&items[0][plan]=plan_1&product[name]=%C3%89glise+%E2%80%94+roof"
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let c = StripeClient::new(
            "https://api.stripe.com",
            "sk_live_secret",
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("sk_live_secret"));
    }

    #[test]
    fn transient_errors() {
        let api = |status| StripeError::Api {
            status,
            code: None,
            message: String::new(),
        };
        assert!(api(500).is_transient());
        assert!(api(429).is_transient());
        assert!(!api(400).is_transient());
        assert!(!api(402).is_transient());
        assert!(StripeError::Network("x".into()).is_transient());
    }
}
