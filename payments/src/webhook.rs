//! Verifying `Stripe-Signature` and reading the event envelope.
//!
//! Stripe signs `"{t}.{raw body}"` with HMAC-SHA256 under the endpoint's secret and sends
//! `t=<unix time>,v1=<hex>[,v1=<hex>…][,v0=…]`. During a secret roll Stripe sends one `v1` per
//! active secret, and we may hold several secrets ourselves, so a request is genuine when **any**
//! `v1` matches **any** of our secrets. Every comparison is constant-time, and every candidate is
//! checked (no early exit that would time which secret matched). The timestamp must be within
//! the tolerance of now in either direction, so a captured request cannot be replayed later.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Stripe's default and ours: five minutes.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Why a signature was refused. Shown to nobody but the log; the caller answers 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No header at all.
    #[error("Stripe-Signature header missing")]
    Missing,
    /// The header does not parse (no `t`, two `t`s, a non-numeric timestamp, bad hex).
    #[error("Stripe-Signature header malformed: {0}")]
    Malformed(&'static str),
    /// No `v1` signature in the header.
    #[error("Stripe-Signature header has no v1 signature")]
    NoV1,
    /// The timestamp is outside the tolerance.
    #[error("Stripe-Signature timestamp outside the {0}s tolerance")]
    Stale(i64),
    /// Well formed, in time, but no `v1` matches any secret.
    #[error("Stripe-Signature does not match")]
    NoMatch,
    /// No webhook secret is configured, so nothing can be verified.
    #[error("no webhook secret configured")]
    NoSecret,
}

/// Checks `header` for `payload` against `secrets` at time `now` (unix seconds). Returns the
/// signed timestamp on success.
pub fn verify_signature(
    header: Option<&str>,
    payload: &[u8],
    secrets: &[Vec<u8>],
    now: i64,
    tolerance_secs: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let mut timestamp: Option<&str> = None;
    let mut v1: Vec<[u8; 32]> = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed("element without '='"))?;
        match key {
            "t" if timestamp.is_some() => {
                return Err(SignatureError::Malformed("more than one timestamp"));
            }
            "t" => timestamp = Some(value),
            "v1" => {
                let mut sig = [0u8; 32];
                hex::decode_to_slice(value, &mut sig)
                    .map_err(|_| SignatureError::Malformed("v1 is not 64 hex digits"))?;
                v1.push(sig);
            }
            // v0 (test-mode legacy) and future schemes are ignored, as Stripe's libraries do.
            _ => {}
        }
        if v1.len() > 16 {
            return Err(SignatureError::Malformed("too many signatures"));
        }
    }
    let ts_text = timestamp.ok_or(SignatureError::Malformed("no timestamp"))?;
    let ts: i64 = ts_text
        .parse()
        .map_err(|_| SignatureError::Malformed("timestamp is not an integer"))?;
    if v1.is_empty() {
        return Err(SignatureError::NoV1);
    }
    if (now - ts).abs() > tolerance_secs {
        return Err(SignatureError::Stale(tolerance_secs));
    }
    let mut matched = subtle::Choice::from(0u8);
    for secret in secrets {
        let expected = mac(secret, ts_text, payload);
        for candidate in &v1 {
            matched |= expected.ct_eq(candidate);
        }
    }
    if bool::from(matched) {
        Ok(ts)
    } else {
        Err(SignatureError::NoMatch)
    }
}

fn mac(secret: &[u8], ts: &str, payload: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(ts.as_bytes());
    m.update(b".");
    m.update(payload);
    m.finalize().into_bytes().into()
}

/// The `v1` signature Stripe would send for `payload` at `ts` (tests, benchmarks, and tools that
/// replay events to a local stack).
pub fn sign(secret: &[u8], ts: i64, payload: &[u8]) -> String {
    hex::encode(mac(secret, &ts.to_string(), payload))
}

/// A complete `Stripe-Signature` header value with one `v1` per secret.
pub fn signature_header(secrets: &[&[u8]], ts: i64, payload: &[u8]) -> String {
    let mut out = format!("t={ts}");
    for s in secrets {
        out.push_str(",v1=");
        out.push_str(&sign(s, ts, payload));
    }
    out
}

/// The event envelope; `data.object` stays JSON because its shape depends on `type`.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// `evt_…`, the deduplication key.
    pub id: String,
    /// e.g. `payment_intent.succeeded`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds when Stripe created the event (orders events about the same object).
    pub created: i64,
    /// Live or test mode.
    #[serde(default)]
    pub livemode: bool,
    /// Connected account the event happened on (Connect endpoints only).
    #[serde(default)]
    pub account: Option<String>,
    /// `{ "object": { … } }`.
    pub data: EventData,
}

/// `data` of an event.
#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    /// The object as it was when the event happened.
    pub object: serde_json::Value,
}

impl Event {
    /// Parses a verified payload; the error names what is missing.
    pub fn parse(payload: &[u8]) -> Result<Event, String> {
        let ev: Event = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        let id_ok = ev.id.len() <= 255
            && ev.id.strip_prefix("evt_").is_some_and(|r| {
                !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
        if !id_ok {
            return Err("id: must look like evt_…".into());
        }
        if !ev.data.object.is_object() {
            return Err("data.object: must be an object".into());
        }
        Ok(ev)
    }

    /// A string field of `data.object`.
    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.data.object.get(name).and_then(|v| v.as_str())
    }

    /// An integer field of `data.object`.
    pub fn int_field(&self, name: &str) -> Option<i64> {
        self.data.object.get(name).and_then(|v| v.as_i64())
    }

    /// `data.object.metadata[key]`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.data.object.get("metadata")?.get(key)?.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    fn secrets() -> Vec<Vec<u8>> {
        vec![b"whsec_old".to_vec(), b"whsec_new".to_vec()]
    }

    #[test]
    fn valid_with_either_secret_and_any_v1() {
        let body = br#"{"id":"evt_1"}"#;
        for s in [b"whsec_old".as_slice(), b"whsec_new".as_slice()] {
            let h = signature_header(&[s], NOW, body);
            assert_eq!(
                verify_signature(Some(&h), body, &secrets(), NOW, 300),
                Ok(NOW)
            );
        }
        // Rotation on Stripe's side: an unknown secret's v1 first, ours second.
        let h = signature_header(&[b"whsec_unknown", b"whsec_new"], NOW, body);
        assert_eq!(
            verify_signature(Some(&h), body, &secrets(), NOW, 300),
            Ok(NOW)
        );
        // v0 and unknown schemes are ignored.
        let h = format!(
            "{},v0=abc,v9=zz",
            signature_header(&[b"whsec_old"], NOW, body)
        );
        assert!(verify_signature(Some(&h), body, &secrets(), NOW, 300).is_ok());
    }

    #[test]
    fn refusals_name_the_reason() {
        let body = br#"{"id":"evt_1"}"#;
        let s = secrets();
        let check = |h: &str| verify_signature(Some(h), body, &s, NOW, 300);
        assert_eq!(
            verify_signature(None, body, &s, NOW, 300),
            Err(SignatureError::Missing)
        );
        let forged = signature_header(&[b"whsec_attacker"], NOW, body);
        assert_eq!(check(&forged), Err(SignatureError::NoMatch));
        let other_body = signature_header(&[b"whsec_old"], NOW, b"{}");
        assert_eq!(check(&other_body), Err(SignatureError::NoMatch));
        let stale = signature_header(&[b"whsec_old"], NOW - 301, body);
        assert_eq!(check(&stale), Err(SignatureError::Stale(300)));
        let future = signature_header(&[b"whsec_old"], NOW + 301, body);
        assert_eq!(check(&future), Err(SignatureError::Stale(300)));
        assert!(matches!(
            check("garbage"),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            check("t=abc,v1=00"),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            check(&format!("t={NOW},t={NOW}")),
            Err(SignatureError::Malformed(_))
        ));
        assert_eq!(check(&format!("t={NOW}")), Err(SignatureError::NoV1));
        assert!(matches!(
            check(&format!("v1={}", "0".repeat(64))),
            Err(SignatureError::Malformed(_))
        ));
        assert_eq!(
            verify_signature(Some(&forged), body, &[], NOW, 300),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn event_envelope() {
        let ok = br#"{"id":"evt_1Ab","type":"x.y","created":5,"data":{"object":{"id":"pi_1","metadata":{"k":"v"}}}}"#;
        let ev = Event::parse(ok).unwrap();
        assert_eq!(ev.metadata("k"), Some("v"));
        assert_eq!(ev.str_field("id"), Some("pi_1"));
        assert!(
            Event::parse(br#"{"id":"nope","type":"x","created":1,"data":{"object":{}}}"#).is_err()
        );
        assert!(
            Event::parse(br#"{"id":"evt_1","type":"x","created":1,"data":{"object":3}}"#).is_err()
        );
        assert!(Event::parse(b"{not json").is_err());
    }
}
