//! The certificate store over the `certificates` table (migration 0005): what every router
//! instance loads at start and reloads one name at a time on `NOTIFY certificates_changed`.
//!
//! Chains are stored as PEM text; private keys only sealed ([`SealKey`], context
//! `certificate-key:<domain>`). Loading streams rows (`query_raw`) and hands them to the caller
//! one at a time, so 10,000 certificates never sit in memory twice (rows and parsed keys).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::{pin_mut, TryStreamExt};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use super::seal::{SealError, SealKey};
use crate::db::Pool;
use crate::model::TenantId;

/// The channel every change to a certificate is announced on; the payload is the domain.
pub const CHANNEL: &str = "certificates_changed";

/// One issued certificate, key opened.
#[derive(Clone)]
pub struct StoredCert {
    /// Exact name (`shop.example.org`) or wildcard (`*.platform.example`), lower case.
    pub domain: String,
    /// The tenant the name belongs to; `None` for platform names (base-domain wildcard).
    pub tenant_id: Option<TenantId>,
    /// Leaf first, then intermediates, PEM.
    pub chain_pem: String,
    /// The private key, PEM (PKCS#8, SEC1 or PKCS#1). Never logged.
    pub key_pem: String,
    /// Start of validity.
    pub not_before: Option<DateTime<Utc>>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// When renewal should start.
    pub renew_after: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for StoredCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCert")
            .field("domain", &self.domain)
            .field("tenant_id", &self.tenant_id)
            .field("not_after", &self.not_after)
            .field("key_pem", &"***")
            .finish_non_exhaustive()
    }
}

/// What went wrong reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum CertStoreError {
    /// No pooled connection.
    #[error("certificate store unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error("certificate store query failed: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// The name is not a lower-case DNS name or wildcard.
    #[error("invalid certificate name {0:?}")]
    InvalidDomain(String),
    /// A stored key does not open (wrong `CERT_ENCRYPTION_KEY`, or a tampered row).
    #[error("private key of {domain} cannot be opened: {source}")]
    Seal {
        /// The row's domain.
        domain: String,
        /// Why.
        source: SealError,
    },
}

/// Counts from [`CertStore::for_each_issued`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoadStats {
    /// Rows handed to the caller.
    pub loaded: usize,
    /// Rows skipped because their key would not open (logged once each, by domain).
    pub unreadable: usize,
}

/// Reads and writes certificates. Cheap to clone.
#[derive(Clone)]
pub struct CertStore {
    pool: Pool,
    key: Arc<SealKey>,
}

const COLUMNS: &str =
    "domain, tenant_id, chain_pem, private_key_encrypted, not_before, not_after, renew_after";
const ISSUED: &str = "status = 'issued' AND chain_pem IS NOT NULL \
                      AND private_key_encrypted IS NOT NULL AND not_after > now()";

/// The associated data a certificate's key is sealed with: binds it to its row.
pub fn key_context(domain: &str) -> String {
    format!("certificate-key:{domain}")
}

/// Checks a certificate name: lower-case ASCII labels, optionally `*.` first, at most 253
/// characters. Returns it unchanged when good.
pub fn check_name(domain: &str) -> Result<&str, CertStoreError> {
    let bad = || CertStoreError::InvalidDomain(domain.chars().take(80).collect());
    let rest = domain.strip_prefix("*.").unwrap_or(domain);
    if domain.is_empty() || domain.len() > 253 || !rest.contains('.') {
        return Err(bad());
    }
    for label in rest.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(domain)
}

impl CertStore {
    /// A store on `pool` (the router's login role, with `platform_edge`'s privileges) sealing
    /// with `key`.
    pub fn new(pool: Pool, key: Arc<SealKey>) -> Self {
        Self { pool, key }
    }

    /// The sealing key (the ACME side seals account credentials with it, context
    /// `acme-account:<directory url>`).
    pub fn seal_key(&self) -> &Arc<SealKey> {
        &self.key
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Stores a freshly issued (or renewed) certificate for `domain` and tells every router.
    ///
    /// Upserts the `certificates` row: status `issued`, the chain, the key sealed with
    /// `CERT_ENCRYPTION_KEY` (context `certificate-key:<domain>`), validity and `renew_after`;
    /// clears `attempts`, `next_attempt_at` and `last_error`. In the same transaction it runs
    /// `NOTIFY certificates_changed, '<domain>'`, so every instance's resolver swaps the new
    /// certificate in (via [`CertStore::load_one`]) once the row is committed, never before.
    ///
    /// `domain` is the exact name or `*.<base>` in lower case (checked: `InvalidDomain`
    /// otherwise); `chain_pem` is leaf first; `key_pem` is the PEM private key (PKCS#8 from
    /// rcgen/instant-acme is fine). The caller is the ACME issuer; it should have checked that
    /// the chain matches the key (the router refuses a mismatched pair when loading and keeps
    /// serving the previous certificate).
    #[allow(clippy::too_many_arguments)]
    pub async fn put_issued(
        &self,
        domain: &str,
        tenant_id: Option<TenantId>,
        chain_pem: &str,
        key_pem: &str,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
        renew_after: DateTime<Utc>,
    ) -> Result<(), CertStoreError> {
        let domain = check_name(domain)?;
        let sealed = self
            .key
            .seal(key_pem.as_bytes(), &key_context(domain))
            .map_err(|source| CertStoreError::Seal {
                domain: domain.to_owned(),
                source,
            })?;
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| CertStoreError::Unavailable(e.to_string()))?;
        let tx = conn.transaction().await?;
        let tenant: Option<Uuid> = tenant_id.map(|t| t.0);
        tx.execute(
            "INSERT INTO certificates (domain, tenant_id, status, chain_pem, private_key_encrypted, \
                                       not_before, not_after, renew_after, attempts, \
                                       next_attempt_at, last_error, updated_at) \
             VALUES ($1, $2, 'issued', $3, $4, $5, $6, $7, 0, NULL, NULL, now()) \
             ON CONFLICT (domain) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, status = 'issued', \
                 chain_pem = EXCLUDED.chain_pem, private_key_encrypted = EXCLUDED.private_key_encrypted, \
                 not_before = EXCLUDED.not_before, not_after = EXCLUDED.not_after, \
                 renew_after = EXCLUDED.renew_after, attempts = 0, next_attempt_at = NULL, \
                 last_error = NULL, updated_at = now()",
            &[
                &domain,
                &tenant,
                &chain_pem,
                &sealed,
                &not_before,
                &not_after,
                &renew_after,
            ],
        )
        .await?;
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &domain])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes `domain`'s certificate (a domain removed from its tenant) and notifies, so
    /// routers stop serving it. Returns whether a row was deleted.
    pub async fn remove(&self, domain: &str) -> Result<bool, CertStoreError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| CertStoreError::Unavailable(e.to_string()))?;
        let tx = conn.transaction().await?;
        let n = tx
            .execute("DELETE FROM certificates WHERE domain = $1", &[&domain])
            .await?;
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &domain])
            .await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// The issued, unexpired certificate for exactly `domain` (a wildcard is asked for as
    /// `*.<base>`), key opened; `None` when there is none.
    pub async fn load_one(&self, domain: &str) -> Result<Option<StoredCert>, CertStoreError> {
        let conn = self
            .pool
            .get()
            .await
            .map_err(|e| CertStoreError::Unavailable(e.to_string()))?;
        let sql = format!("SELECT {COLUMNS} FROM certificates WHERE domain = $1 AND {ISSUED}");
        match conn.query_opt(&sql, &[&domain]).await? {
            None => Ok(None),
            Some(row) => self.open_row(&row).map(Some),
        }
    }

    /// Every issued, unexpired certificate, keys opened. Holds them all in memory: the router
    /// uses [`CertStore::for_each_issued`] instead.
    pub async fn load_all(&self) -> Result<Vec<StoredCert>, CertStoreError> {
        let mut all = Vec::new();
        self.for_each_issued(|c| all.push(c)).await?;
        Ok(all)
    }

    /// Streams every issued, unexpired certificate to `f`, one row at a time, in one query.
    /// A row whose key does not open is logged (by domain) and skipped, so one bad row
    /// cannot keep every other tenant's site from starting.
    pub async fn for_each_issued(
        &self,
        mut f: impl FnMut(StoredCert),
    ) -> Result<LoadStats, CertStoreError> {
        let conn = self
            .pool
            .get()
            .await
            .map_err(|e| CertStoreError::Unavailable(e.to_string()))?;
        let sql = format!("SELECT {COLUMNS} FROM certificates WHERE {ISSUED}");
        let rows = conn
            .query_raw(&sql, std::iter::empty::<&(dyn ToSql + Sync)>())
            .await?;
        pin_mut!(rows);
        let mut stats = LoadStats::default();
        while let Some(row) = rows.try_next().await? {
            match self.open_row(&row) {
                Ok(c) => {
                    stats.loaded += 1;
                    f(c);
                }
                Err(e) => {
                    stats.unreadable += 1;
                    tracing::error!(error = %e, "certificate skipped");
                }
            }
        }
        Ok(stats)
    }

    fn open_row(&self, row: &Row) -> Result<StoredCert, CertStoreError> {
        let domain: String = row.try_get(0)?;
        let sealed: Vec<u8> = row.try_get(3)?;
        let key = self
            .key
            .open(&sealed, &key_context(&domain))
            .and_then(|k| String::from_utf8(k).map_err(|_| SealError::Format))
            .map_err(|source| CertStoreError::Seal {
                domain: domain.clone(),
                source,
            })?;
        Ok(StoredCert {
            tenant_id: row.try_get::<_, Option<Uuid>>(1)?.map(TenantId),
            chain_pem: row.try_get(2)?,
            key_pem: key,
            not_before: row.try_get(4)?,
            not_after: row.try_get(5)?,
            renew_after: row.try_get(6)?,
            domain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names() {
        for ok in [
            "a.example",
            "*.platform.example",
            "xn--bcher-kva.example",
            "a-b.c1.org",
        ] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A.example",
            "example",
            "*.",
            "*.com",
            "a..b",
            "-a.b",
            "a.b-",
            "a b.c",
            "a.*.b",
            "**.a.b",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
