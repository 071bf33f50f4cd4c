//! Property tests for host normalisation and classification.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use proptest::prelude::*;
use tenant_config::host::{normalize_host, HostClass, HostRules, MAX_LABEL_LEN, MAX_NAME_LEN};
use tenant_config::slug::{validate_slug, RESERVED_SLUGS};

fn rules() -> HostRules {
    HostRules::new("platform.example", "admin.platform.example").unwrap()
}

/// A syntactically valid DNS label.
fn label() -> impl Strategy<Value = String> {
    "[a-z]([a-z0-9-]{0,20}[a-z0-9])?"
}

/// A valid name of 2–4 labels that ends in an alphabetic TLD.
fn name() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 1..4), "[a-z]{2,6}")
        .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary input never panics, and whatever is accepted is canonical.
    #[test]
    fn normalize_output_is_canonical(raw in any::<String>()) {
        if let Ok(n) = normalize_host(&raw) {
            prop_assert!(n.len() <= MAX_NAME_LEN);
            prop_assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'));
            for l in n.split('.') {
                prop_assert!(!l.is_empty() && l.len() <= MAX_LABEL_LEN);
                prop_assert!(!l.starts_with('-') && !l.ends_with('-'));
            }
            prop_assert_eq!(normalize_host(&n), Ok(n.clone()), "idempotent");
        }
    }

    /// Header-ish input (printable ASCII with dots, colons, brackets) never panics either.
    #[test]
    fn classify_never_panics_on_header_like_input(raw in "[ -~]{0,80}") {
        let _ = rules().classify(&raw);
    }

    /// Case, a port and a trailing dot never change what a name means.
    #[test]
    fn case_port_and_trailing_dot_are_ignored(n in name(), port in 1u16.., upper in any::<bool>()) {
        let r = rules();
        let plain = r.classify(&n);
        let cased = if upper { n.to_ascii_uppercase() } else { n.clone() };
        prop_assert_eq!(r.classify(&format!("{cased}.:{port}")), plain.clone());
        prop_assert_eq!(r.classify(&format!("{cased}:{port}")), plain);
    }

    /// `<slug>.<base>` is a tenant exactly when the slug is valid (which excludes reserved ones).
    #[test]
    fn subdomain_is_tenant_iff_valid_slug(l in label()) {
        let class = rules().classify(&format!("{l}.platform.example"));
        let is_special = l == "admin" || l == "www";
        match class {
            HostClass::Tenant { slug } => {
                prop_assert_eq!(&slug, &l);
                prop_assert!(validate_slug(&slug).is_ok());
            }
            HostClass::Admin | HostClass::Apex => prop_assert!(is_special),
            HostClass::Invalid(_) => prop_assert!(validate_slug(&l).is_err()),
            HostClass::Custom { .. } => prop_assert!(false, "a subdomain of base is never custom"),
        }
    }

    /// Names outside the base domain are custom domains, never tenants by slug. Labels that
    /// look like punycode (`xn--…`) must also decode as punycode, so the generator's random
    /// ones are invalid, never custom.
    #[test]
    fn foreign_names_are_custom_domains(n in name()) {
        prop_assume!(!n.ends_with("platform.example"));
        let class = rules().classify(&n);
        if n.split('.').any(|l| l.starts_with("xn--")) {
            let ok = matches!(class, HostClass::Invalid(_) | HostClass::Custom { .. });
            prop_assert!(ok, "{n}: {class:?}");
        } else {
            prop_assert_eq!(class, HostClass::Custom { domain: n.clone() });
        }
    }

    /// Names two levels under the base are never served.
    #[test]
    fn nested_subdomains_are_invalid(a in label(), b in label()) {
        let class = rules().classify(&format!("{a}.{b}.platform.example"));
        prop_assert!(matches!(class, HostClass::Invalid(_)));
    }
}

#[test]
fn reserved_slugs_are_never_tenants() {
    let r = rules();
    for s in RESERVED_SLUGS {
        let class = r.classify(&format!("{s}.platform.example"));
        assert!(
            !matches!(class, HostClass::Tenant { .. }),
            "{s} classified as a tenant"
        );
    }
}
