//! The ACME account: registered once per directory URL across the cluster and stored sealed in
//! `acme_accounts` (context `acme-account:<directory url>`, the certificate store's key).
//!
//! Registration runs under a transaction-scoped advisory lock on the directory URL, re-reading
//! the row after taking it, so instances starting together register one account, not one each.
//! A CA that forgot the account (Pebble forgets every account when it restarts) answers
//! `accountDoesNotExist`; [`Accounts::replace`] registers again, unless another instance has
//! already done so.

use std::sync::Arc;

use instant_acme::{Account, AccountCredentials, ExternalAccountKey, NewAccount};
use tenant_config::certs::SealKey;
use tenant_config::config::AcmeConfig;
use tenant_config::db::Pool;
use tokio::sync::Mutex;

use super::client::{client_roots, KeepRetryAfter, RetryAfter, REQUEST_TIMEOUT};

/// The account in use and the `Retry-After` slot its HTTP client fills.
#[derive(Clone)]
pub struct AccountHandle {
    /// The account.
    pub account: Account,
    /// Its account URL (the id), to tell whether a failed one was already replaced.
    pub id: String,
}

/// Loads, registers and caches the account for the configured directory.
pub struct Accounts {
    pool: Pool,
    key: Arc<SealKey>,
    config: AcmeConfig,
    roots: rustls::RootCertStore,
    /// The Retry-After of the latest 429/503 from the CA.
    pub retry_after: RetryAfter,
    current: Mutex<Option<AccountHandle>>,
}

/// Whether an ACME error says the CA no longer knows the account.
pub fn is_unknown_account(e: &instant_acme::Error) -> bool {
    matches!(e, instant_acme::Error::Api(p)
        if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist"))
}

impl Accounts {
    /// Prepares (nothing is fetched until the first [`Accounts::get`]).
    pub fn new(pool: Pool, key: Arc<SealKey>, config: AcmeConfig) -> Result<Self, String> {
        let roots = client_roots(config.server_root_file.as_deref())?;
        Ok(Self {
            pool,
            key,
            config,
            roots,
            retry_after: RetryAfter::default(),
            current: Mutex::new(None),
        })
    }

    fn context(&self) -> String {
        format!("acme-account:{}", self.config.directory_url)
    }

    fn http(&self) -> Result<Box<KeepRetryAfter>, String> {
        Ok(Box::new(KeepRetryAfter::new(
            self.roots.clone(),
            self.retry_after.clone(),
            REQUEST_TIMEOUT,
        )?))
    }

    /// The account: cached, else stored, else newly registered.
    pub async fn get(&self) -> Result<AccountHandle, String> {
        let mut current = self.current.lock().await;
        if let Some(a) = current.as_ref() {
            return Ok(a.clone());
        }
        let a = self.load_or_register(None).await?;
        *current = Some(a.clone());
        Ok(a)
    }

    /// The CA said `failed` does not exist: register again (or take the account another
    /// instance registered meanwhile).
    pub async fn replace(&self, failed: &AccountHandle) -> Result<AccountHandle, String> {
        let mut current = self.current.lock().await;
        if let Some(a) = current.as_ref().filter(|a| a.id != failed.id) {
            return Ok(a.clone());
        }
        tracing::warn!(directory = %self.config.directory_url, "the ACME server no longer knows our account; registering again");
        let a = self.load_or_register(Some(&failed.id)).await?;
        *current = Some(a.clone());
        Ok(a)
    }

    async fn load_or_register(&self, stale_id: Option<&str>) -> Result<AccountHandle, String> {
        let url = &self.config.directory_url;
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| format!("database: {e}"))?;
        let tx = conn
            .transaction()
            .await
            .map_err(|e| format!("database: {e}"))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('acme_account:' || $1, 0))",
            &[url],
        )
        .await
        .map_err(|e| format!("database: {e}"))?;
        let row = tx
            .query_opt(
                "SELECT credentials_encrypted FROM acme_accounts WHERE directory_url = $1",
                &[url],
            )
            .await
            .map_err(|e| format!("database: {e}"))?;
        if let Some(row) = row {
            let sealed: Vec<u8> = row.get(0);
            let plain = self
                .key
                .open(&sealed, &self.context())
                .map_err(|e| format!("stored ACME account cannot be opened: {e}"))?;
            let creds: AccountCredentials = serde_json::from_slice(&plain)
                .map_err(|e| format!("stored ACME account is unreadable: {e}"))?;
            let id = account_id(&plain);
            if stale_id.is_none() || id.as_deref() != stale_id {
                let account = Account::builder_with_http(self.http()?)
                    .from_credentials(creds)
                    .await
                    .map_err(|e| format!("ACME directory {url}: {e}"))?;
                tx.commit().await.map_err(|e| format!("database: {e}"))?;
                return Ok(AccountHandle {
                    id: account.id().to_owned(),
                    account,
                });
            }
        }
        let contact: Vec<&str> = self.config.contact.iter().map(String::as_str).collect();
        let eab = self
            .config
            .eab
            .as_ref()
            .map(|e| {
                use base64::Engine;
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(e.hmac_key.expose().trim_end_matches('='))
                    .map_err(|_| "acme.eab.hmac_key is not base64url".to_owned())?;
                Ok::<_, String>(ExternalAccountKey::new(e.key_id.clone(), &raw))
            })
            .transpose()?;
        let (account, creds) = Account::builder_with_http(self.http()?)
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                url.clone(),
                eab.as_ref(),
            )
            .await
            .map_err(|e| format!("ACME account registration at {url}: {e}"))?;
        let plain = serde_json::to_vec(&creds).map_err(|e| format!("account credentials: {e}"))?;
        let sealed = self
            .key
            .seal(&plain, &self.context())
            .map_err(|e| format!("sealing the ACME account: {e}"))?;
        let contact_text = self.config.contact.join(",");
        tx.execute(
            "INSERT INTO acme_accounts (directory_url, contact, credentials_encrypted) VALUES ($1, $2, $3)
             ON CONFLICT (directory_url) DO UPDATE SET contact = EXCLUDED.contact,
                 credentials_encrypted = EXCLUDED.credentials_encrypted, created_at = now()",
            &[url, &contact_text, &sealed],
        )
        .await
        .map_err(|e| format!("database: {e}"))?;
        tx.commit().await.map_err(|e| format!("database: {e}"))?;
        metrics::counter!("router_acme_accounts_registered_total").increment(1);
        tracing::info!(directory = %url, "ACME account registered");
        Ok(AccountHandle {
            id: account.id().to_owned(),
            account,
        })
    }
}

/// The `id` (account URL) inside serialized credentials, without exposing the key.
fn account_id(plain: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(plain).ok()?;
    v.get("id")?.as_str().map(str::to_owned)
}
