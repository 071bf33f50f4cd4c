//! Host → route → tenant.

use std::sync::Arc;

use serde::Serialize;
use tenant_config::config::RouterConfig;
use tenant_config::store::{PgTenantStore, StaticTenantStore, StoreError, TenantStore};
use tenant_config::{HostClass, HostRules, ResolvedTenant};

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "route", rename_all = "snake_case")]
pub enum Route {
    /// The admin console.
    Admin,
    /// The marketing site.
    Apex,
    /// A tenant's site, by subdomain or custom domain.
    Tenant {
        /// The resolved tenant.
        tenant: ResolvedTenant,
    },
    /// The tenant exists but is suspended or cancelled.
    Suspended {
        /// The tenant (for its name on the 403 page).
        tenant: ResolvedTenant,
    },
    /// Unknown or invalid host: redirect to the apex.
    RedirectToApex {
        /// Why.
        reason: String,
    },
}

/// Resolves hosts with the configured rules and store.
#[derive(Clone)]
pub struct Resolver {
    rules: HostRules,
    store: Arc<dyn TenantStore>,
}

impl Resolver {
    /// Builds a resolver over a store.
    pub fn new(rules: HostRules, store: Arc<dyn TenantStore>) -> Self {
        Self { rules, store }
    }

    /// Builds the store the configuration names: PostgreSQL when `database` is set, else the
    /// static tenant file.
    pub fn from_config(config: &RouterConfig) -> Result<Self, String> {
        let rules = config.domain.rules().map_err(|e| e.to_string())?;
        let store: Arc<dyn TenantStore> = match (&config.database, &config.static_tenants) {
            (Some(db), _) => Arc::new(PgTenantStore::new(
                tenant_config::db::pool(db).map_err(|e| e.to_string())?,
            )),
            (None, Some(path)) => Arc::new(
                StaticTenantStore::load(path, &rules, config.domain.policy())
                    .map_err(|e| e.to_string())?,
            ),
            (None, None) => return Err("no tenant store configured".into()),
        };
        Ok(Self::new(rules, store))
    }

    /// The host rules in use.
    pub fn rules(&self) -> &HostRules {
        &self.rules
    }

    /// Resolves a raw `Host` value to a route.
    pub async fn resolve(&self, host: &str) -> Result<Route, StoreError> {
        let found = match self.rules.classify(host) {
            HostClass::Admin => return Ok(Route::Admin),
            HostClass::Apex => return Ok(Route::Apex),
            HostClass::Invalid(why) => {
                return Ok(Route::RedirectToApex {
                    reason: why.to_string(),
                })
            }
            HostClass::Tenant { slug } => self.store.by_slug(&slug).await?,
            HostClass::Custom { domain } => self.store.by_domain(&domain).await?,
        };
        Ok(match found {
            None => Route::RedirectToApex {
                reason: "no tenant serves this host".into(),
            },
            Some(t) if t.status.is_served() => Route::Tenant { tenant: t },
            Some(t) => Route::Suspended { tenant: t },
        })
    }
}
