//! DNS-01 for the base-domain wildcard (`*.<base>`): the TXT record `_acme-challenge.<base>`
//! is published through a small provider trait, so the issuer does not care whether the zone
//! lives on a BIND primary ([`rfc2136`]: dynamic update signed with TSIG) or in Route 53
//! ([`route53`]: `ChangeResourceRecordSets`, SigV4).
//!
//! Why DNS-01 only for the wildcard: HTTP-01 cannot prove a wildcard, and TLS-ALPN-01 cannot be
//! offered beside h2 on our listener (issue 18). Custom domains keep HTTP-01, which needs no
//! access to the tenant's DNS.

pub mod rfc2136;
pub mod route53;

use std::sync::Arc;

use async_trait::async_trait;
use tenant_config::config::Dns01Config;

/// Publishes and removes the TXT records of DNS-01 challenges.
#[async_trait]
pub trait Dns01Provider: Send + Sync {
    /// Adds `value` to the TXT records at `fqdn` (`_acme-challenge.<name>`, no trailing dot),
    /// keeping others (a wildcard and its base name may be validated at once).
    async fn publish(&self, fqdn: &str, value: &str) -> Result<(), String>;
    /// Removes exactly that value again.
    async fn remove(&self, fqdn: &str, value: &str) -> Result<(), String>;
}

/// The record name for `identifier` (`*.platform.example` → `_acme-challenge.platform.example`).
pub fn record_name(identifier: &str) -> String {
    format!(
        "_acme-challenge.{}",
        identifier.strip_prefix("*.").unwrap_or(identifier)
    )
}

/// The provider the configuration names.
pub fn from_config(config: &Dns01Config) -> Result<Arc<dyn Dns01Provider>, String> {
    Ok(match config {
        Dns01Config::Rfc2136 {
            server,
            zone,
            key_name,
            key_secret,
            algorithm,
        } => Arc::new(rfc2136::Rfc2136::new(
            *server,
            zone,
            key_name,
            key_secret.expose(),
            algorithm,
        )?),
        Dns01Config::Route53 {
            hosted_zone_id,
            endpoint,
            access_key_id,
            secret_access_key,
        } => Arc::new(route53::Route53::new(
            endpoint,
            hosted_zone_id,
            access_key_id,
            secret_access_key.expose(),
        )?),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn record_names() {
        assert_eq!(
            super::record_name("*.platform.example"),
            "_acme-challenge.platform.example"
        );
        assert_eq!(
            super::record_name("give.example.org"),
            "_acme-challenge.give.example.org"
        );
    }
}
