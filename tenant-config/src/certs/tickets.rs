//! Session-ticket keys shared by every router instance (table `tls_ticket_keys`, migration
//! 0011), so a client that got a ticket from one instance resumes on any other.
//!
//! Rotation is cluster-wide and needs no leader: any instance may call [`rotate_and_load`];
//! under a transaction-scoped advisory lock it adds a key when the newest one is older than
//! the rotation period and deletes expired ones. A new key becomes *active* (used to encrypt)
//! only `lead` after it is written, while every instance accepts it for decryption as soon
//! as it has loaded it: instances that have not reloaded yet keep encrypting with the previous
//! key, which everyone still accepts. Keys are sealed with the certificate key (context
//! `tls-ticket-key:<id>`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::seal::{SealError, SealKey};
use crate::db::Pool;

/// Announced after a rotation wrote a new key; the payload is empty.
pub const CHANNEL: &str = "tls_ticket_keys_changed";

/// Bytes of key material per ticket key (AES-256).
pub const KEY_LEN: usize = 32;

/// One ticket key, opened.
#[derive(Clone)]
pub struct TicketKey {
    /// Row id: goes into each ticket so the right key is found on decryption.
    pub id: i64,
    /// AES-256-GCM key.
    pub key: [u8; KEY_LEN],
    /// From when new tickets are encrypted with it.
    pub active_from: DateTime<Utc>,
    /// Until when tickets sealed with it are accepted.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketKey")
            .field("id", &self.id)
            .field("active_from", &self.active_from)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What [`rotate_and_load`] did.
#[derive(Debug)]
pub struct KeyRing {
    /// Keys not yet expired, oldest activation first.
    pub keys: Vec<TicketKey>,
    /// Whether this call wrote a new key.
    pub rotated: bool,
}

/// Errors of the ticket-key table.
#[derive(Debug, thiserror::Error)]
pub enum TicketKeyError {
    /// No pooled connection.
    #[error("ticket keys unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error("ticket key query failed: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// A key did not open or had the wrong length.
    #[error("ticket key {id} cannot be opened: {source}")]
    Seal {
        /// Row id.
        id: i64,
        /// Why.
        source: SealError,
    },
}

fn context(id: i64) -> String {
    format!("tls-ticket-key:{id}")
}

/// Rotates when due and returns every unexpired key.
///
/// `period`: how long a key encrypts before the next one takes over; `lifetime`: how long a
/// ticket is accepted after its key stopped encrypting; `lead`: delay between writing a key
/// and encrypting with it (longer than the slowest instance takes to reload). The very first
/// key is active at once.
pub async fn rotate_and_load(
    pool: &Pool,
    seal: &SealKey,
    period: Duration,
    lifetime: Duration,
    lead: Duration,
) -> Result<KeyRing, TicketKeyError> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| TicketKeyError::Unavailable(e.to_string()))?;
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4) as f64;
    let tx = conn.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('tls_ticket_keys'))",
        &[],
    )
    .await?;
    tx.execute("DELETE FROM tls_ticket_keys WHERE expires_at <= now()", &[])
        .await?;
    // Due when no key exists, or the newest activation is older than the period minus lead
    // (so the next key is active exactly when the current one has served its period).
    let newest: Option<DateTime<Utc>> = tx
        .query_one("SELECT max(active_from) FROM tls_ticket_keys", &[])
        .await?
        .try_get(0)?;
    let now: DateTime<Utc> = tx.query_one("SELECT now()", &[]).await?.try_get(0)?;
    let due = match newest {
        None => Some(now),
        Some(t) => {
            let next = t + chrono::Duration::seconds(secs(period) as i64);
            let write_at = next - chrono::Duration::seconds(secs(lead) as i64);
            (now >= write_at).then_some(next.max(now))
        }
    };
    let rotated = due.is_some();
    if let Some(active_from) = due {
        let mut raw = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut raw).map_err(|_| TicketKeyError::Seal {
            id: 0,
            source: SealError::Random,
        })?;
        let expires_at =
            active_from + chrono::Duration::seconds(secs(period) as i64 + secs(lifetime) as i64);
        // The id is needed for the seal's context: take it from the identity first.
        let id: i64 = tx
            .query_one(
                "SELECT nextval(pg_get_serial_sequence('tls_ticket_keys', 'id'))",
                &[],
            )
            .await?
            .try_get(0)?;
        let sealed = seal
            .seal(&raw, &context(id))
            .map_err(|source| TicketKeyError::Seal { id, source })?;
        tx.execute(
            "INSERT INTO tls_ticket_keys (id, key_encrypted, active_from, expires_at) \
             OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4)",
            &[&id, &sealed, &active_from, &expires_at],
        )
        .await?;
        tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL]).await?;
    }
    let rows = tx
        .query(
            "SELECT id, key_encrypted, active_from, expires_at FROM tls_ticket_keys \
             WHERE expires_at > now() ORDER BY active_from, id",
            &[],
        )
        .await?;
    tx.commit().await?;
    let mut keys = Vec::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.try_get(0)?;
        let sealed: Vec<u8> = r.try_get(1)?;
        let plain = seal
            .open(&sealed, &context(id))
            .map_err(|source| TicketKeyError::Seal { id, source })?;
        let key: [u8; KEY_LEN] = plain.try_into().map_err(|_| TicketKeyError::Seal {
            id,
            source: SealError::Format,
        })?;
        keys.push(TicketKey {
            id,
            key,
            active_from: r.try_get(2)?,
            expires_at: r.try_get(3)?,
        });
    }
    Ok(KeyRing { keys, rotated })
}
