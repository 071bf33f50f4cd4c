//! AES-256-GCM sealing of secrets kept in PostgreSQL: certificate private keys, ACME account
//! credentials and TLS session-ticket keys.
//!
//! A database dump or a read-only replica must not hand out the keys that let someone
//! impersonate every tenant's site, so these columns only ever hold sealed bytes; the key
//! lives outside the database (`CERT_ENCRYPTION_KEY` or `CERT_ENCRYPTION_KEY_FILE`).
//!
//! Format (version 1): `0x01 || nonce (12 bytes, random per seal) || ciphertext || tag (16)`.
//! The leading version byte lets a later format (another cipher, a key id for rotation) be
//! told apart from this one without guessing. Every seal is bound to a context string (for
//! example `certificate-key:<domain>`) passed as associated data, so a sealed value copied
//! into another row does not open there.

use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;

/// The version byte of the current format.
const VERSION_1: u8 = 1;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;

/// Why a key could not be read or a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The key text is not 32 bytes in hex or base64. The message never contains the key.
    #[error("{0}")]
    BadKey(String),
    /// The sealed bytes are too short or carry an unknown version.
    #[error("sealed value has an unknown format")]
    Format,
    /// Authentication failed: another key, another context, or tampered bytes.
    #[error("sealed value does not open with this key and context")]
    Open,
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Random,
}

/// The 256-bit key that seals and opens. `Debug` never prints it.
pub struct SealKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(***)")
    }
}

impl SealKey {
    /// Reads a key from its text form: 64 hexadecimal digits, or base64 (standard or
    /// URL-safe, padded or not) of exactly 32 bytes. Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(SealError::BadKey("is empty".into()));
        }
        let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(t).map_err(|_| SealError::BadKey("is not valid hex".into()))?
        } else {
            let engines = [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE,
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            engines
                .iter()
                .find_map(|e| e.decode(t).ok())
                .ok_or_else(|| {
                    SealError::BadKey("must be 32 bytes as 64 hex digits or base64".into())
                })?
        };
        if bytes.len() != 32 {
            return Err(SealError::BadKey(format!(
                "must be 32 bytes as 64 hex digits or base64 (decodes to {} bytes)",
                bytes.len()
            )));
        }
        Self::from_bytes(&bytes)
    }

    /// A key from raw bytes (exactly 32).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| SealError::BadKey("must be 32 bytes".into()))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        })
    }

    /// A fresh random key (tests, and generating one for an operator).
    pub fn generate() -> Result<(Self, String), SealError> {
        let mut raw = [0u8; 32];
        SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| SealError::Random)?;
        let text = hex::encode(raw);
        Ok((Self::from_bytes(&raw)?, text))
    }

    /// Seals `plain` for `context` (associated data: the same context must be given to
    /// [`SealKey::open`]). The nonce is random per call.
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plain.len() + TAG_LEN);
        out.push(VERSION_1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let mut body = out.split_off(1 + NONCE_LEN);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut body,
            )
            .map_err(|_| SealError::Format)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a value sealed by [`SealKey::seal`] with the same key and context.
    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != VERSION_1 {
            return Err(SealError::Format);
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1..1 + NONCE_LEN])
            .map_err(|_| SealError::Format)?;
        let mut body = sealed[1 + NONCE_LEN..].to_vec();
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| SealError::Open)?
            .len();
        body.truncate(plain_len);
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let (key, text) = SealKey::generate().unwrap();
        let sealed = key
            .seal(b"-----BEGIN PRIVATE KEY-----", "certificate-key:a.example")
            .unwrap();
        assert_eq!(sealed[0], 1);
        assert_eq!(sealed.len(), 1 + 12 + 27 + 16);
        assert_eq!(
            key.open(&sealed, "certificate-key:a.example").unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        // Another row's context, another key, a flipped bit: all refused.
        assert_eq!(
            key.open(&sealed, "certificate-key:b.example"),
            Err(SealError::Open)
        );
        let (other, _) = SealKey::generate().unwrap();
        assert_eq!(
            other.open(&sealed, "certificate-key:a.example"),
            Err(SealError::Open)
        );
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert_eq!(
            key.open(&bad, "certificate-key:a.example"),
            Err(SealError::Open)
        );
        assert_eq!(key.open(&sealed[..20], "x"), Err(SealError::Format));
        let mut v2 = sealed.clone();
        v2[0] = 2;
        assert_eq!(
            key.open(&v2, "certificate-key:a.example"),
            Err(SealError::Format)
        );
        // Nonces differ per seal.
        assert_ne!(key.seal(b"x", "c").unwrap(), key.seal(b"x", "c").unwrap());
        // The text form parses back to the same key.
        let again = SealKey::parse(&text).unwrap();
        assert_eq!(
            again
                .open(&sealed, "certificate-key:a.example")
                .unwrap()
                .len(),
            27
        );
    }

    #[test]
    fn key_text_forms() {
        let raw = [7u8; 32];
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        for t in [hex::encode(raw), b64.clone(), url, format!("  {b64}\n")] {
            let k = SealKey::parse(&t).unwrap();
            let s = k.seal(b"p", "c").unwrap();
            assert_eq!(
                SealKey::from_bytes(&raw).unwrap().open(&s, "c").unwrap(),
                b"p"
            );
        }
        for bad in [
            "",
            "   ",
            "abc",
            &hex::encode([1u8; 16]),
            "zz".repeat(32).as_str(),
        ] {
            let e = SealKey::parse(bad).unwrap_err();
            assert!(matches!(e, SealError::BadKey(_)), "{bad:?}");
            // The message never echoes the input.
            if bad.len() > 3 {
                assert!(!e.to_string().contains(bad.trim()), "{e}");
            }
        }
        assert_eq!(
            format!("{:?}", SealKey::parse(&b64).unwrap()),
            "SealKey(***)"
        );
    }
}
