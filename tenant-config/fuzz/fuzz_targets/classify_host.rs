//! Any bytes as a Host header: classification must not panic, and accepted names must be
//! canonical (normalising them again changes nothing, and they classify the same way).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenant_config::host::{normalize_host, HostRules};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let rules = HostRules::new("platform.example", "admin.platform.example").expect("valid rules");
    let class = rules.classify(raw);
    if let Ok(name) = normalize_host(raw) {
        assert_eq!(normalize_host(&name).as_deref(), Ok(name.as_str()));
        assert_eq!(rules.classify(&name), class);
        assert!(name.len() <= 253);
    }
});
