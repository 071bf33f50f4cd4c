//! `LISTEN tenant_changed`: the platform's changes to tenants and domains reach every router
//! within a round trip, and the affected cache entries are dropped.
//!
//! The session is tenant-config's [`ListenStream`], which reconnects with backoff.
//! Notifications sent while it was disconnected are lost, so after a reconnect the whole cache
//! is dropped (stale-if-error entries go with it, which is
//! acceptable: the database has just been reached).

use serde::Deserialize;
use tenant_config::config::Secret;
use tenant_config::db::listen::{ListenEvent, ListenStream};
use tenant_config::TenantId;

use crate::cache::{Key, TenantCache};

/// Channel the migrations' triggers notify.
pub const CHANNEL: &str = "tenant_changed";

#[derive(Deserialize)]
struct Change {
    tenant_id: Option<uuid::Uuid>,
    slug: Option<String>,
    domain: Option<String>,
    /// A plan's limits changed: every tenant on it is affected. Plans change rarely, so the
    /// whole cache goes (it refills from the database within a round trip per tenant).
    plan: Option<String>,
}

/// Applies one notification payload to the cache. Unparseable payloads drop everything: a
/// change we cannot read must not leave a wrong answer cached.
pub async fn apply(cache: &TenantCache, payload: &str) {
    match serde_json::from_str::<Change>(payload) {
        Ok(c) => {
            if let Some(plan) = c.plan {
                tracing::info!(%plan, "plan limits changed; dropping the tenant cache");
                cache.invalidate_all();
                return;
            }
            if let Some(slug) = c.slug {
                cache.invalidate(Key::Slug(&slug));
            }
            if let Some(domain) = c.domain {
                cache.invalidate(Key::Domain(&domain));
            }
            if let Some(id) = c.tenant_id {
                cache.invalidate_tenant(TenantId(id));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "unreadable tenant_changed payload; dropping the tenant cache");
            cache.invalidate_all();
        }
    }
}

/// Listens forever (until the task is dropped) on the shared reconnecting stream.
pub async fn listen(url: Secret, cache: TenantCache) {
    let config = match tenant_config::db::tls::PgTarget::parse(url.expose()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "database.url cannot be used for LISTEN; tenant changes arrive by expiry only");
            return;
        }
    };
    let mut changes = ListenStream::new(config, &[CHANNEL], "tenant changes");
    loop {
        match changes.next().await {
            ListenEvent::Connected => {}
            ListenEvent::Reconnected => cache.invalidate_all(),
            ListenEvent::Notification { payload, .. } => apply(&cache, &payload).await,
        }
    }
}
