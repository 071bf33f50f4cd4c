//! ACME Renewal Information (RFC 9773): the CA's suggested renewal window for a certificate,
//! and how long until it should be asked again (`Retry-After`).
//!
//! A CA that does not advertise `renewalInfo` in its directory (Pebble 2.4) gives `None`, and
//! the issuer falls back to two thirds of the lifetime.

use std::time::Duration;

use chrono::{DateTime, Utc};
use instant_acme::{Account, CertificateIdentifier};
use rustls_pki_types::CertificateDer;

/// A suggested window and when to ask again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Window start.
    pub start: DateTime<Utc>,
    /// Window end.
    pub end: DateTime<Utc>,
    /// The response's `Retry-After`.
    pub retry_after: Duration,
}

fn chrono_of(t: time::OffsetDateTime) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(t.unix_timestamp(), t.nanosecond()).unwrap_or_default()
}

/// The CA's window for `leaf`; `None` when the CA has no ARI.
pub async fn window(
    account: &Account,
    leaf: &CertificateDer<'static>,
) -> Result<Option<Window>, String> {
    let id = CertificateIdentifier::try_from(leaf)?;
    match account.renewal_info(&id).await {
        Ok((info, retry_after)) => Ok(Some(Window {
            start: chrono_of(info.suggested_window.start),
            end: chrono_of(info.suggested_window.end),
            retry_after,
        })),
        Err(instant_acme::Error::Unsupported(_)) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}
