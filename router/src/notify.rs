//! `LISTEN tenant_changed`: the platform's changes to tenants and domains reach every router
//! within a round trip, and the affected cache entries are dropped.
//!
//! The listener reconnects with backoff. Notifications sent while it was disconnected are lost,
//! so after a reconnect the whole cache is dropped (stale-if-error entries go with it, which is
//! acceptable: the database has just been reached).

use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use tenant_config::config::Secret;
use tenant_config::TenantId;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::cache::{Key, TenantCache};

/// Channel the migrations' triggers notify.
pub const CHANNEL: &str = "tenant_changed";

#[derive(Deserialize)]
struct Change {
    tenant_id: Option<uuid::Uuid>,
    slug: Option<String>,
    domain: Option<String>,
}

/// Applies one notification payload to the cache. Unparseable payloads drop everything: a
/// change we cannot read must not leave a wrong answer cached.
pub async fn apply(cache: &TenantCache, payload: &str) {
    match serde_json::from_str::<Change>(payload) {
        Ok(c) => {
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

/// Listens forever (until the task is dropped), reconnecting with backoff.
pub async fn listen(url: Secret, cache: TenantCache) {
    let mut backoff = Duration::from_millis(250);
    let mut connected_before = false;
    loop {
        match tokio_postgres::connect(url.expose(), NoTls).await {
            Ok((client, mut conn)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let pump = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(AsyncMessage::Notification(n)) => {
                                if tx.send(n.payload().to_owned()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "tenant change listener lost its connection");
                                break;
                            }
                        }
                    }
                });
                if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    tracing::warn!(error = %e, "LISTEN failed");
                    pump.abort();
                } else {
                    if connected_before {
                        cache.invalidate_all();
                    }
                    connected_before = true;
                    backoff = Duration::from_millis(250);
                    tracing::info!("listening for tenant changes");
                    while let Some(payload) = rx.recv().await {
                        apply(&cache, &payload).await;
                    }
                    drop(client);
                }
            }
            Err(e) => tracing::warn!(error = %e, "tenant change listener cannot connect"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
