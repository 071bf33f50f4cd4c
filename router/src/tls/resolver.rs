//! Our `ResolvesServerCert`: exact name, then wildcard, then the fallback, from an in-memory
//! map that writers replace whole.
//!
//! rustls calls `resolve` synchronously in the middle of a handshake, so it must never wait:
//! it reads the current map through `arc-swap` (no lock a writer can hold) and at most does a
//! non-blocking `try_send` to the on-missing hook. Writers (the start-up load and the
//! `certificates_changed` listener) build a new map and swap it in; readers see either the old
//! or the new map, never a half-written one.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use metrics::Counter;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::mpsc;

/// One certificate in the map, with its expiry for the gauge.
#[derive(Clone)]
pub struct Entry {
    /// What is served.
    pub key: Arc<CertifiedKey>,
    /// End of validity, Unix seconds.
    pub not_after: i64,
}

/// Every certificate this instance serves. Keys are lower-case names; wildcards are stored
/// under the part after `*.` (`*.platform.example` → `platform.example`).
#[derive(Clone, Default)]
pub struct CertMap {
    /// Exact names.
    pub exact: HashMap<String, Entry>,
    /// Wildcards by parent name.
    pub wildcard: HashMap<String, Entry>,
}

impl CertMap {
    /// Inserts under `name` (exact or `*.parent`).
    pub fn insert(&mut self, name: &str, entry: Entry) {
        match name.strip_prefix("*.") {
            Some(parent) => self.wildcard.insert(parent.to_owned(), entry),
            None => self.exact.insert(name.to_owned(), entry),
        };
    }

    /// Removes `name` (exact or `*.parent`).
    pub fn remove(&mut self, name: &str) {
        match name.strip_prefix("*.") {
            Some(parent) => self.wildcard.remove(parent),
            None => self.exact.remove(name),
        };
    }

    /// The certificate for `name`: exact first, then a wildcard one label up.
    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.exact.get(name).or_else(|| {
            let (_, parent) = name.split_once('.')?;
            self.wildcard.get(parent)
        })
    }

    /// Certificates held (exact + wildcard).
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The earliest end of validity, Unix seconds.
    pub fn earliest_expiry(&self) -> Option<i64> {
        self.exact
            .values()
            .chain(self.wildcard.values())
            .map(|e| e.not_after)
            .min()
    }
}

/// Counters of the resolver's outcomes.
pub struct ResolveCounters {
    /// A stored or operator certificate matched.
    pub matched: Counter,
    /// No match: the fallback was served.
    pub fallback: Counter,
    /// No SNI at all: the fallback was served.
    pub no_sni: Counter,
    /// The on-missing hook's queue was full; the name was dropped.
    pub hook_full: Counter,
}

impl ResolveCounters {
    fn new() -> Self {
        let c = |outcome: &'static str| metrics::counter!("router_tls_certificate_lookups_total", "outcome" => outcome);
        Self {
            matched: c("matched"),
            fallback: c("fallback"),
            no_sni: c("no_sni"),
            hook_full: c("hook_full"),
        }
    }
}

/// The resolver shared by the TLS listener and the code that updates it.
pub struct CertResolver {
    map: ArcSwap<CertMap>,
    fallback: Arc<CertifiedKey>,
    on_missing: OnceLock<mpsc::Sender<String>>,
    counters: ResolveCounters,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver")
            .field("certificates", &self.map.load().len())
            .finish_non_exhaustive()
    }
}

impl CertResolver {
    /// A resolver serving `map`, and `fallback` for anything it lacks.
    pub fn new(map: CertMap, fallback: Arc<CertifiedKey>) -> Self {
        Self {
            map: ArcSwap::from_pointee(map),
            fallback,
            on_missing: OnceLock::new(),
            counters: ResolveCounters::new(),
        }
    }

    /// Hooks issuance on demand: from now on, when a handshake names a host with no
    /// certificate, `resolve` serves the fallback and `try_send`s the name (lower case) here.
    /// It never blocks: when the channel is full the name is dropped and counted
    /// (`router_tls_certificate_lookups_total{outcome="hook_full"}`). Deciding whether the name
    /// deserves a certificate (a verified tenant domain), deduplication and issuance belong to
    /// the receiver. Set once; a second call is ignored and returns `false`.
    pub fn set_on_missing(&self, tx: mpsc::Sender<String>) -> bool {
        self.on_missing.set(tx).is_ok()
    }

    /// The current map (a cheap snapshot).
    pub fn snapshot(&self) -> Arc<CertMap> {
        self.map.load_full()
    }

    /// Replaces the whole map (start-up load, reload after a lost LISTEN session).
    pub fn replace(&self, map: CertMap) {
        self.map.store(Arc::new(map));
    }

    /// Applies one change: `Some(entry)` puts `name`, `None` removes it. Copies the map (only
    /// the `Arc`s, not the certificates); changes are rare and come from one task.
    pub fn update(&self, name: &str, entry: Option<Entry>) {
        self.map.rcu(|old| {
            let mut m = CertMap::clone(old);
            match &entry {
                Some(e) => m.insert(name, e.clone()),
                None => m.remove(name),
            }
            m
        });
    }

    /// What `resolve` serves for `name` (no hook, no counters): for tests and status pages.
    pub fn lookup(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        name.and_then(|n| self.map.load().find(n).map(|e| e.key.clone()))
            .unwrap_or_else(|| self.fallback.clone())
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(sni) = hello.server_name() else {
            self.counters.no_sni.increment(1);
            return Some(self.fallback.clone());
        };
        let lowered;
        let name = if sni.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = sni.to_ascii_lowercase();
            lowered.as_str()
        } else {
            sni
        };
        let name = name.trim_end_matches('.');
        if let Some(e) = self.map.load().find(name) {
            self.counters.matched.increment(1);
            return Some(e.key.clone());
        }
        self.counters.fallback.increment(1);
        if let Some(tx) = self.on_missing.get() {
            if tx.try_send(name.to_owned()).is_err() {
                self.counters.hook_full.increment(1);
            }
        }
        Some(self.fallback.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(provider: &rustls::crypto::CryptoProvider, exp: i64) -> Entry {
        Entry {
            key: crate::tls::certs::self_signed_fallback(provider).unwrap(),
            not_after: exp,
        }
    }

    #[test]
    fn exact_then_one_label_wildcard() {
        let p = rustls::crypto::aws_lc_rs::default_provider();
        let mut m = CertMap::default();
        let (a, w) = (entry(&p, 5), entry(&p, 3));
        m.insert("shop.example.org", a.clone());
        m.insert("*.platform.test", w.clone());
        assert!(Arc::ptr_eq(
            &m.find("shop.example.org").unwrap().key,
            &a.key
        ));
        assert!(Arc::ptr_eq(
            &m.find("grace.platform.test").unwrap().key,
            &w.key
        ));
        // A wildcard covers one label only, and not its parent.
        assert!(m.find("a.b.platform.test").is_none());
        assert!(m.find("platform.test").is_none());
        assert!(m.find("other.example.org").is_none());
        assert_eq!(m.earliest_expiry(), Some(3));
        m.remove("*.platform.test");
        assert!(m.find("grace.platform.test").is_none());
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn updates_swap_and_hook_is_non_blocking() {
        let p = rustls::crypto::aws_lc_rs::default_provider();
        let fallback = crate::tls::certs::self_signed_fallback(&p).unwrap();
        let r = CertResolver::new(CertMap::default(), fallback.clone());
        assert!(Arc::ptr_eq(&r.lookup(Some("x.example")), &fallback));
        let e = entry(&p, 1);
        r.update("x.example", Some(e.clone()));
        assert!(Arc::ptr_eq(&r.lookup(Some("x.example")), &e.key));
        r.update("x.example", None);
        assert!(Arc::ptr_eq(&r.lookup(Some("x.example")), &fallback));
        let (tx, _rx) = mpsc::channel(1);
        assert!(r.set_on_missing(tx.clone()));
        assert!(!r.set_on_missing(tx));
    }
}
