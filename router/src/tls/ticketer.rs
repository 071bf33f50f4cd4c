//! Session tickets every instance can open: our `ProducesTickets` over the shared, rotated keys
//! of `tls_ticket_keys` (tenant-config `certs::tickets`).
//!
//! rustls' own ticketer makes a random key per process, so a client resumes only on the
//! instance that served it; behind a balancer that is rarely the same one. Here the keys come
//! from PostgreSQL (sealed at rest), so any instance opens any instance's ticket.
//!
//! Ticket format: `0x01 || key id (8 bytes, big endian) || nonce (12) || AES-256-GCM(state)
//! || tag`, with the version byte and key id as associated data. Encryption uses the newest key
//! that is active now; decryption accepts any loaded, unexpired key. Without a database the
//! router makes one random key of its own (resumption on this instance only).

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use metrics::Counter;
use rustls::server::ProducesTickets;
use tenant_config::certs::tickets::TicketKey;

const VERSION: u8 = 1;
const HEADER: usize = 1 + 8 + NONCE_LEN;
const TAG: usize = 16;

struct Key {
    id: i64,
    active_from: i64,
    expires_at: i64,
    aead: LessSafeKey,
}

/// Counters of ticket work.
struct Counters {
    issued: Counter,
    opened: Counter,
    unknown_key: Counter,
    rejected: Counter,
}

/// The ticketer handed to rustls; [`Ticketer::set_keys`] swaps the key ring.
pub struct Ticketer {
    keys: ArcSwap<Vec<Key>>,
    lifetime: u32,
    counters: Counters,
}

impl fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticketer")
            .field("keys", &self.keys.load().len())
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Ticketer {
    /// A ticketer with no keys yet (tickets are neither issued nor accepted until
    /// [`Ticketer::set_keys`]); `lifetime_secs` is the hint sent to clients.
    pub fn new(lifetime_secs: u64) -> Self {
        let c = |outcome: &'static str| metrics::counter!("router_tls_tickets_total", "outcome" => outcome);
        Self {
            keys: ArcSwap::from_pointee(Vec::new()),
            lifetime: u32::try_from(lifetime_secs).unwrap_or(u32::MAX),
            counters: Counters {
                issued: c("issued"),
                opened: c("resumed"),
                unknown_key: c("unknown_key"),
                rejected: c("rejected"),
            },
        }
    }

    /// A ticketer with one random key of its own (no database: this instance only).
    pub fn local(lifetime_secs: u64) -> Result<Self, String> {
        let t = Self::new(lifetime_secs);
        let mut raw = [0u8; 32];
        aws_lc_rs::rand::fill(&mut raw).map_err(|_| "random number generator failed")?;
        let forever = chrono::Utc::now() + chrono::Duration::days(36_500);
        t.set_keys(&[TicketKey {
            id: 0,
            key: raw,
            active_from: chrono::Utc::now() - chrono::Duration::seconds(1),
            expires_at: forever,
        }]);
        Ok(t)
    }

    /// Replaces the key ring with `keys` (all unexpired keys from the table).
    pub fn set_keys(&self, keys: &[TicketKey]) {
        let ring: Vec<Key> = keys
            .iter()
            .filter_map(|k| {
                let unbound = UnboundKey::new(&AES_256_GCM, &k.key).ok()?;
                Some(Key {
                    id: k.id,
                    active_from: k.active_from.timestamp(),
                    expires_at: k.expires_at.timestamp(),
                    aead: LessSafeKey::new(unbound),
                })
            })
            .collect();
        self.keys.store(Arc::new(ring));
    }

    /// Ids of the loaded keys (tests, logs).
    pub fn key_ids(&self) -> Vec<i64> {
        self.keys.load().iter().map(|k| k.id).collect()
    }
}

impl ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let t = now();
        let keys = self.keys.load();
        let key = keys
            .iter()
            .filter(|k| k.active_from <= t && k.expires_at > t)
            .max_by_key(|k| (k.active_from, k.id))?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(HEADER + plain.len() + TAG);
        out.push(VERSION);
        out.extend_from_slice(&key.id.to_be_bytes());
        out.extend_from_slice(&nonce);
        let aad: [u8; 9] = out[..9].try_into().ok()?;
        out.extend_from_slice(plain);
        let tag = key
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[HEADER..],
            )
            .ok()?;
        out.extend_from_slice(tag.as_ref());
        self.counters.issued.increment(1);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < HEADER + TAG || cipher[0] != VERSION {
            self.counters.rejected.increment(1);
            return None;
        }
        let id = i64::from_be_bytes(cipher[1..9].try_into().ok()?);
        let t = now();
        let keys = self.keys.load();
        let Some(key) = keys.iter().find(|k| k.id == id && k.expires_at > t) else {
            self.counters.unknown_key.increment(1);
            return None;
        };
        let nonce = Nonce::try_assume_unique_for_key(&cipher[9..HEADER]).ok()?;
        let aad: [u8; 9] = cipher[..9].try_into().ok()?;
        let mut body = cipher[HEADER..].to_vec();
        match key.aead.open_in_place(nonce, Aad::from(aad), &mut body) {
            Ok(plain) => {
                let n = plain.len();
                body.truncate(n);
                self.counters.opened.increment(1);
                Some(body)
            }
            Err(_) => {
                self.counters.rejected.increment(1);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};

    fn key(id: i64, byte: u8, from_secs: i64) -> TicketKey {
        TicketKey {
            id,
            key: [byte; 32],
            active_from: Utc::now() + Duration::seconds(from_secs),
            expires_at: Utc::now() + Duration::hours(1),
        }
    }

    #[test]
    fn shared_keys_open_each_others_tickets_and_rotation_waits_for_activation() {
        let a = Ticketer::new(3600);
        let b = Ticketer::new(3600);
        assert!(a.encrypt(b"state").is_none(), "no key, no ticket");
        a.set_keys(&[key(1, 7, -10)]);
        b.set_keys(&[key(1, 7, -10)]);
        let t = a.encrypt(b"state").unwrap();
        assert_eq!(b.decrypt(&t).unwrap(), b"state");
        // A key written ahead is accepted but not yet used to encrypt.
        a.set_keys(&[key(1, 7, -10), key(2, 9, 60)]);
        let t1 = a.encrypt(b"s").unwrap();
        assert_eq!(i64::from_be_bytes(t1[1..9].try_into().unwrap()), 1);
        a.set_keys(&[key(1, 7, -10), key(2, 9, -1)]);
        let t2 = a.encrypt(b"s").unwrap();
        assert_eq!(i64::from_be_bytes(t2[1..9].try_into().unwrap()), 2);
        // b has not loaded key 2 yet: a full handshake, not an error.
        assert!(b.decrypt(&t2).is_none());
        // Tampering and other keys are refused.
        let mut bad = t.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(b.decrypt(&bad).is_none());
        let c = Ticketer::new(3600);
        c.set_keys(&[key(1, 8, -10)]);
        assert!(c.decrypt(&t).is_none());
        assert!(c.decrypt(b"short").is_none());
    }
}
