//! The `[acme]` table: which ACME CA the router orders certificates from, as whom, and the
//! budgets that keep it inside the CA's published limits.
//!
//! The defaults point at Let's Encrypt production with its limits (300 new orders per account
//! per 3 hours, 5 duplicate certificates per week, 5 failed validations per name per hour) met
//! with room to spare. Issuance is off until `enabled` is set, so a router without a TLS
//! listener never talks to a CA.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Secret};

/// Let's Encrypt production.
pub const LETS_ENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt staging (untrusted roots, generous limits).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// Seconds of a lease beyond its two polls: the other requests of an order (each bounded by
/// the ACME client's 30 s request timeout in a bad case, well under a second normally) and the
/// database writes that store the result and release the lease.
pub const LEASE_MARGIN_SECS: u64 = 60;

/// The `[acme]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// Order and renew certificates for verified custom domains (`ACME_ENABLED`).
    pub enabled: bool,
    /// RFC 8555 directory URL (`ACME_DIRECTORY_URL`): Let's Encrypt production or staging, any
    /// other CA, or a local Pebble.
    pub directory_url: String,
    /// Account contacts, `mailto:` URLs (`ACME_CONTACT`, comma-separated).
    pub contact: Vec<String>,
    /// External account binding, for CAs that require one (ZeroSSL, Google, most commercial CAs).
    pub eab: Option<ExternalAccountBinding>,
    /// ACME profile (draft-aaron-acme-profiles) to ask for, such as `tlsserver` or `shortlived`.
    /// Sent only when the directory advertises it.
    pub profile: Option<String>,
    /// PEM file of the root that signed the ACME server's own HTTPS certificate, when that is
    /// not a public root (Pebble's, made by `ops/dev/up.sh`) (`ACME_CA_ROOT_FILE`).
    pub server_root_file: Option<PathBuf>,
    /// PEM file of the roots issued chains must verify to (`ACME_TRUSTED_ROOTS_FILE`); without
    /// it, the system's roots. A stored certificate whose chain no longer verifies (a test CA
    /// restarted with a new root) is renewed. Re-read on every check, so a new root is picked up
    /// without a restart.
    pub trusted_roots_file: Option<PathBuf>,
    /// Seconds between scans for names due for issuance or renewal; each wait is jittered by up
    /// to a fifth either way so instances do not scan in step.
    pub check_interval_secs: u64,
    /// Names waiting for issuance at most; further requests are dropped (the next scan finds
    /// them again).
    pub queue_capacity: usize,
    /// Orders this instance works on at once.
    pub concurrency: usize,
    /// Seconds one instance holds a name while ordering it; another instance takes it over
    /// only after this, so a crashed holder never blocks a name for long. Must be at least
    /// `2 * order_timeout_secs +` [`LEASE_MARGIN_SECS`]: an order polls the CA twice (for
    /// validation, then for the certificate) for up to `order_timeout_secs` each, and a lease
    /// that ran out mid-order would let a second instance order the same name.
    pub lease_secs: u64,
    /// Most orders per name in `name_budget_window_secs` (Let's Encrypt: 5 duplicate
    /// certificates per week).
    pub name_budget: u32,
    /// Window of `name_budget`, in seconds.
    pub name_budget_window_secs: u64,
    /// Most orders across all names in `global_budget_window_secs` (Let's Encrypt: 300 new
    /// orders per account per 3 hours).
    pub global_budget: u32,
    /// Window of `global_budget`, in seconds.
    pub global_budget_window_secs: u64,
    /// Consecutive failed validations after which a name is paused (Let's Encrypt pauses
    /// names that keep failing).
    pub max_failed_validations: u32,
    /// How long a paused name waits before it is tried again, in seconds.
    pub pause_secs: u64,
    /// First retry delay after a failure, in seconds; doubled per failure.
    pub backoff_min_secs: u64,
    /// Longest retry delay, in seconds.
    pub backoff_max_secs: u64,
    /// Seconds to wait for the CA to validate and issue one order before giving up on it.
    pub order_timeout_secs: u64,
    /// DNS-01 for the base-domain wildcard (`*.<base>`); absent: no wildcard is ordered.
    pub dns01: Option<Dns01Config>,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            directory_url: LETS_ENCRYPT_PRODUCTION.into(),
            contact: Vec::new(),
            eab: None,
            profile: None,
            server_root_file: None,
            trusted_roots_file: None,
            check_interval_secs: 600,
            queue_capacity: 1_024,
            concurrency: 2,
            lease_secs: 300,
            name_budget: 5,
            name_budget_window_secs: 7 * 86_400,
            global_budget: 250,
            global_budget_window_secs: 3 * 3_600,
            max_failed_validations: 5,
            pause_secs: 86_400,
            backoff_min_secs: 60,
            backoff_max_secs: 6 * 3_600,
            order_timeout_secs: 120,
            dns01: None,
        }
    }
}

/// External account binding credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalAccountBinding {
    /// Key identifier the CA gave out.
    pub key_id: String,
    /// The MAC key, base64url as the CA gives it (`ACME_EAB_HMAC_KEY`, or `_FILE`).
    pub hmac_key: Secret,
}

/// How DNS-01 records are published.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "provider", rename_all = "snake_case")]
pub enum Dns01Config {
    /// RFC 2136 dynamic update, signed with TSIG (BIND, Knot, PowerDNS).
    Rfc2136 {
        /// Primary server, `ip:port`.
        server: std::net::SocketAddr,
        /// Zone the records are added to (e.g. `platform.example.`).
        zone: String,
        /// TSIG key name.
        key_name: String,
        /// TSIG secret, base64 (`ACME_TSIG_SECRET`, or `_FILE`).
        key_secret: Secret,
        /// TSIG algorithm: `hmac-sha256` (default) or `hmac-sha512`.
        #[serde(default = "hmac_sha256")]
        algorithm: String,
    },
    /// Amazon Route 53 (`ChangeResourceRecordSets`).
    Route53 {
        /// Hosted zone id.
        hosted_zone_id: String,
        /// API endpoint; the default is AWS's, tests point it at a local emulator.
        #[serde(default = "route53_endpoint")]
        endpoint: String,
        /// Access key id (`AWS_ACCESS_KEY_ID`).
        access_key_id: String,
        /// Secret access key (`AWS_SECRET_ACCESS_KEY`, or `_FILE`).
        secret_access_key: Secret,
    },
}

fn hmac_sha256() -> String {
    "hmac-sha256".into()
}

fn route53_endpoint() -> String {
    "https://route53.amazonaws.com".into()
}

impl AcmeConfig {
    /// Checks the fields; the error names the one at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if !self.directory_url.starts_with("https://") {
            return Err(ConfigError::invalid(
                "acme.directory_url",
                "must be an https:// URL",
            ));
        }
        for c in &self.contact {
            if !c.starts_with("mailto:") || c.len() < 10 || c.contains([' ', ',']) {
                return Err(ConfigError::invalid(
                    "acme.contact",
                    format!("{c:?} is not a mailto: URL"),
                ));
            }
        }
        if let Some(p) = &self.profile {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(ConfigError::invalid(
                    "acme.profile",
                    "must be a profile name (letters, digits, -)",
                ));
            }
        }
        if let Some(e) = &self.eab {
            if e.key_id.is_empty() || e.hmac_key.expose().len() < 16 {
                return Err(ConfigError::invalid(
                    "acme.eab",
                    "key_id and an hmac_key of at least 16 characters are required",
                ));
            }
        }
        let ranges: [(&'static str, u64, u64, u64); 9] = [
            (
                "acme.check_interval_secs",
                self.check_interval_secs,
                1,
                86_400,
            ),
            (
                "acme.queue_capacity",
                self.queue_capacity as u64,
                1,
                1_000_000,
            ),
            ("acme.concurrency", self.concurrency as u64, 1, 64),
            ("acme.lease_secs", self.lease_secs, 10, 3_600),
            ("acme.name_budget", u64::from(self.name_budget), 1, 1_000),
            (
                "acme.global_budget",
                u64::from(self.global_budget),
                1,
                100_000,
            ),
            (
                "acme.max_failed_validations",
                u64::from(self.max_failed_validations),
                1,
                100,
            ),
            ("acme.backoff_min_secs", self.backoff_min_secs, 1, 86_400),
            ("acme.order_timeout_secs", self.order_timeout_secs, 5, 3_600),
        ];
        for (field, v, lo, hi) in ranges {
            if !(lo..=hi).contains(&v) {
                return Err(ConfigError::invalid(
                    field,
                    format!("must be between {lo} and {hi}"),
                ));
            }
        }
        if self.backoff_max_secs < self.backoff_min_secs {
            return Err(ConfigError::invalid(
                "acme.backoff_max_secs",
                "must be at least backoff_min_secs",
            ));
        }
        let needed = self
            .order_timeout_secs
            .saturating_mul(2)
            .saturating_add(LEASE_MARGIN_SECS);
        if self.lease_secs < needed {
            return Err(ConfigError::invalid(
                "acme.lease_secs",
                format!(
                    "must be at least 2 * acme.order_timeout_secs + {LEASE_MARGIN_SECS} ({needed}), \
                     or a second instance could take the lease of a live order"
                ),
            ));
        }
        if self.name_budget_window_secs == 0 || self.global_budget_window_secs == 0 {
            return Err(ConfigError::invalid(
                "acme.name_budget_window_secs",
                "budget windows must be positive",
            ));
        }
        if let Some(Dns01Config::Rfc2136 { algorithm, .. }) = &self.dns01 {
            if !matches!(algorithm.as_str(), "hmac-sha256" | "hmac-sha512") {
                return Err(ConfigError::invalid(
                    "acme.dns01.algorithm",
                    "must be hmac-sha256 or hmac-sha512",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_defaults_validate() {
        let c = AcmeConfig::default();
        assert!(!c.enabled);
        let on = AcmeConfig {
            enabled: true,
            ..AcmeConfig::default()
        };
        assert!(on.validate().is_ok());
        // The defaults sit exactly on the lease rule: 300 = 2 * 120 + 60.
        assert_eq!(on.lease_secs, 2 * on.order_timeout_secs + LEASE_MARGIN_SECS);
    }

    #[test]
    fn bad_fields_are_named() {
        let base = AcmeConfig {
            enabled: true,
            ..AcmeConfig::default()
        };
        let cases: Vec<(AcmeConfig, &str)> = vec![
            (
                AcmeConfig {
                    directory_url: "http://ca.example/dir".into(),
                    ..base.clone()
                },
                "acme.directory_url",
            ),
            (
                AcmeConfig {
                    contact: vec!["ops@example.org".into()],
                    ..base.clone()
                },
                "acme.contact",
            ),
            (
                AcmeConfig {
                    profile: Some("short lived".into()),
                    ..base.clone()
                },
                "acme.profile",
            ),
            (
                AcmeConfig {
                    concurrency: 0,
                    ..base.clone()
                },
                "acme.concurrency",
            ),
            (
                AcmeConfig {
                    backoff_max_secs: 1,
                    ..base.clone()
                },
                "acme.backoff_max_secs",
            ),
            (
                AcmeConfig {
                    lease_secs: 299,
                    order_timeout_secs: 120,
                    ..base.clone()
                },
                "acme.lease_secs",
            ),
        ];
        for (c, field) in cases {
            let e = c.validate().expect_err(field).to_string();
            assert!(e.contains(field), "{e}");
        }
    }

    #[test]
    fn dns01_providers_parse_from_toml() {
        let c: AcmeConfig = toml::from_str(
            "enabled = true\n[dns01]\nprovider = \"rfc2136\"\nserver = \"127.0.0.1:53\"\n\
             zone = \"platform.example.\"\nkey_name = \"acme-key\"\nkey_secret = \"c2VjcmV0\"\n",
        )
        .unwrap();
        assert!(
            matches!(&c.dns01, Some(Dns01Config::Rfc2136 { algorithm, .. }) if algorithm == "hmac-sha256")
        );
        assert!(c.validate().is_ok());
        let c: AcmeConfig = toml::from_str(
            "[dns01]\nprovider = \"route53\"\nhosted_zone_id = \"Z1\"\n\
             access_key_id = \"AKIA1\"\nsecret_access_key = \"s\"\n",
        )
        .unwrap();
        assert!(
            matches!(&c.dns01, Some(Dns01Config::Route53 { endpoint, .. }) if endpoint.starts_with("https://route53"))
        );
        let bad = AcmeConfig {
            enabled: true,
            dns01: Some(Dns01Config::Rfc2136 {
                server: "127.0.0.1:53".parse().unwrap(),
                zone: "z.".into(),
                key_name: "k".into(),
                key_secret: Secret::new("c2VjcmV0"),
                algorithm: "hmac-md5".into(),
            }),
            ..AcmeConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("acme.dns01.algorithm"));
    }
}
