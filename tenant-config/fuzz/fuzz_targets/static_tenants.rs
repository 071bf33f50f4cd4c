//! Any text as a static tenant file: parsing must return Ok or a one-line error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenant_config::domain::DomainPolicy;
use tenant_config::host::HostRules;
use tenant_config::store::StaticTenantStore;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let rules = HostRules::new("platform.example", "admin.platform.example").expect("valid rules");
    if let Err(e) = StaticTenantStore::parse("fuzz.toml", text, &rules, DomainPolicy::default()) {
        let _ = e.to_string();
    }
});
