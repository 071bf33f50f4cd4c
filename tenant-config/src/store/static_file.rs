//! [`TenantStore`] from a TOML file, so the router runs without a database.
//!
//! ```toml
//! [[tenant]]
//! id = "6f1c…"          # optional; derived from the slug when absent
//! slug = "grace"
//! name = "Grace Church"
//! status = "active"     # trial | active | suspended | cancelled
//! plan = "growth"       # optional
//! domains = ["grace-church.localhost"]
//! rate_limit = { requests_per_second = 10, burst = 20 }   # optional
//! ```

use std::collections::HashMap;
use std::path::Path;

use async_trait::async_trait;
use serde::Deserialize;
use uuid::Uuid;

use super::{StoreError, TenantStore};
use crate::domain::{validate_custom_domain, DomainPolicy};
use crate::host::HostRules;
use crate::model::{RateLimitPolicy, ResolvedTenant, TenantId, TenantStatus};
use crate::slug::validate_slug;

/// Why a static tenant file was refused.
#[derive(Debug, thiserror::Error)]
pub enum StaticTenantsError {
    /// Unreadable file.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML for this format.
    #[error("{path}: {message}")]
    Parse {
        /// File path.
        path: String,
        /// Parser message.
        message: String,
    },
    /// A tenant entry breaks a rule.
    #[error("{path}: tenant {index}: {message}")]
    Invalid {
        /// File path.
        path: String,
        /// 1-based entry number.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tenant: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: Option<Uuid>,
    slug: String,
    name: String,
    #[serde(default = "default_status")]
    status: TenantStatus,
    #[serde(default = "default_plan")]
    plan: String,
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    rate_limit: RateLimitPolicy,
}

fn default_status() -> TenantStatus {
    TenantStatus::Active
}

fn default_plan() -> String {
    "starter".into()
}

/// Tenants held in memory, indexed by slug and by domain.
#[derive(Debug, Default)]
pub struct StaticTenantStore {
    by_slug: HashMap<String, ResolvedTenant>,
    by_domain: HashMap<String, String>,
}

impl StaticTenantStore {
    /// Reads and validates a tenant file with the same slug and domain rules as the platform.
    pub fn load(
        path: &Path,
        rules: &HostRules,
        policy: DomainPolicy,
    ) -> Result<Self, StaticTenantsError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| StaticTenantsError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&shown, &text, rules, policy)
    }

    /// Parses tenant-file text; `origin` names it in errors.
    pub fn parse(
        origin: &str,
        text: &str,
        rules: &HostRules,
        policy: DomainPolicy,
    ) -> Result<Self, StaticTenantsError> {
        let file: File = toml::from_str(text).map_err(|e| StaticTenantsError::Parse {
            path: origin.to_owned(),
            message: e.message().to_owned(),
        })?;
        let mut store = Self::default();
        for (i, e) in file.tenant.into_iter().enumerate() {
            let invalid = |message: String| StaticTenantsError::Invalid {
                path: origin.to_owned(),
                index: i + 1,
                message,
            };
            validate_slug(&e.slug).map_err(|err| invalid(format!("slug {:?}: {err}", e.slug)))?;
            if store.by_slug.contains_key(&e.slug) {
                return Err(invalid(format!("slug {:?} appears twice", e.slug)));
            }
            let id =
                e.id.unwrap_or_else(|| Uuid::new_v5(&Uuid::NAMESPACE_DNS, e.slug.as_bytes()));
            for d in &e.domains {
                let name = validate_custom_domain(d, rules, policy)
                    .map_err(|err| invalid(format!("domain {d:?}: {err}")))?;
                if store.by_domain.insert(name, e.slug.clone()).is_some() {
                    return Err(invalid(format!("domain {d:?} appears twice")));
                }
            }
            store.by_slug.insert(
                e.slug.clone(),
                ResolvedTenant {
                    id: TenantId(id),
                    slug: e.slug,
                    name: e.name,
                    status: e.status,
                    plan_id: e.plan,
                    rate_limit: e.rate_limit,
                },
            );
        }
        Ok(store)
    }

    /// Number of tenants loaded.
    pub fn len(&self) -> usize {
        self.by_slug.len()
    }

    /// True when the file listed no tenants.
    pub fn is_empty(&self) -> bool {
        self.by_slug.is_empty()
    }
}

#[async_trait]
impl TenantStore for StaticTenantStore {
    async fn by_slug(&self, slug: &str) -> Result<Option<ResolvedTenant>, StoreError> {
        Ok(self.by_slug.get(slug).cloned())
    }

    async fn by_domain(&self, domain: &str) -> Result<Option<ResolvedTenant>, StoreError> {
        Ok(self
            .by_domain
            .get(domain)
            .and_then(|slug| self.by_slug.get(slug))
            .cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> HostRules {
        HostRules::new("platform.localhost", "admin.platform.localhost").unwrap()
    }

    const LOCAL: DomainPolicy = DomainPolicy {
        allow_special_use: true,
    };

    #[tokio::test]
    async fn resolves_by_slug_and_domain() {
        let text = r#"
            [[tenant]]
            slug = "grace"
            name = "Grace Church"
            domains = ["Grace-Church.localhost"]

            [[tenant]]
            slug = "hope"
            name = "Hope"
            status = "suspended"
        "#;
        let s = StaticTenantStore::parse("t.toml", text, &rules(), LOCAL).unwrap();
        assert_eq!(s.len(), 2);
        let g = s.by_slug("grace").await.unwrap().unwrap();
        assert_eq!(g.name, "Grace Church");
        let d = s
            .by_domain("grace-church.localhost")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.id, g.id);
        assert_eq!(
            s.by_slug("hope").await.unwrap().unwrap().status,
            TenantStatus::Suspended
        );
        assert!(s.by_slug("nobody").await.unwrap().is_none());
    }

    #[test]
    fn refuses_bad_entries_with_their_number() {
        let dup = "[[tenant]]\nslug='grace'\nname='a'\n[[tenant]]\nslug='grace'\nname='b'\n";
        let e = StaticTenantStore::parse("t.toml", dup, &rules(), LOCAL).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.toml: tenant 2: slug \"grace\" appears twice"
        );
        let reserved = "[[tenant]]\nslug='admin'\nname='a'\n";
        let e = StaticTenantStore::parse("t.toml", reserved, &rules(), LOCAL).unwrap_err();
        assert!(e.to_string().contains("reserved"), "{e}");
        let strict = "[[tenant]]\nslug='grace'\nname='a'\ndomains=['x.localhost']\n";
        let e = StaticTenantStore::parse("t.toml", strict, &rules(), DomainPolicy::default())
            .unwrap_err();
        assert!(e.to_string().contains("reserved top-level"), "{e}");
        let unknown = "[[tenant]]\nslug='grace'\nname='a'\ncolour='red'\n";
        assert!(StaticTenantStore::parse("t.toml", unknown, &rules(), LOCAL).is_err());
    }
}
