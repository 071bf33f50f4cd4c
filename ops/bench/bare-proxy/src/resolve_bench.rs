//! Tenant resolution cost with many tenants loaded: builds a static store of N tenants, warms
//! the router's cache with every name, then times cache-hit resolutions. Prints the resident
//! memory before and after loading.
//!
//! Usage: `resolve-bench [tenants=100000] [lookups=1000000]`

use std::sync::Arc;
use std::time::Instant;

use router::cache::TenantCache;
use router::resolve::{Decision, Resolver};
use tenant_config::config::TenantCacheConfig;
use tenant_config::domain::DomainPolicy;
use tenant_config::store::StaticTenantStore;
use tenant_config::HostRules;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let tenants: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let lookups: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let before = rss_mib();
    let mut text = String::with_capacity(tenants * 64);
    for i in 0..tenants {
        text.push_str(&format!(
            "[[tenant]]\nslug = \"t{i:06}\"\nname = \"Tenant {i}\"\ndomains = [\"give.t{i:06}.org\"]\n"
        ));
    }
    let rules = HostRules::new("platform.test", "admin.platform.test").expect("rules");
    let store =
        StaticTenantStore::parse("bench", &text, &rules, DomainPolicy::default()).expect("tenants");
    drop(text);
    let cache = TenantCache::new(Arc::new(store), &TenantCacheConfig::default());
    let resolver = Resolver::new(rules, cache);
    let hosts: Vec<String> = (0..tenants)
        .flat_map(|i| {
            [
                format!("t{i:06}.platform.test"),
                format!("give.t{i:06}.org"),
            ]
        })
        .collect();
    rt.block_on(async {
        let warm = Instant::now();
        for h in &hosts {
            let (d, _) = resolver.resolve(h).await;
            assert!(matches!(d, Decision::Forward { .. }), "{h}");
        }
        let warm = warm.elapsed();
        let loaded = rss_mib();
        let start = Instant::now();
        let mut served = 0usize;
        for i in 0..lookups {
            // A stride through the names so consecutive lookups miss the CPU cache.
            let h = &hosts[(i * 7919) % hosts.len()];
            if let (Decision::Forward { .. }, _) = resolver.resolve(h).await {
                served += 1;
            }
        }
        let per = start.elapsed().as_nanos() as f64 / lookups as f64;
        println!(
            "tenants: {tenants} ({} names cached, {served} lookups served)",
            hosts.len()
        );
        println!(
            "warm-up (store lookups + inserts): {:.2} s",
            warm.as_secs_f64()
        );
        println!("cache-hit resolution: {per:.0} ns per lookup (classification + cache hit)");
        println!("resident memory: {before:.1} MiB before, {loaded:.1} MiB with everything loaded");
    });
}
