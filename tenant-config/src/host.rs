//! Host-name normalisation and classification.
//!
//! Every request the router sees is routed by its `Host` header, and the platform validates
//! custom domains with the same rules, so both sides must agree byte for byte on what a name
//! means. These functions are pure (no I/O, no allocation beyond the result) so they can be
//! property-tested and fuzzed.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::slug::{validate_slug, SlugError};

/// Longest host name we accept, in ASCII form (RFC 1035 limit without the trailing dot).
pub const MAX_NAME_LEN: usize = 253;
/// Longest single label (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;
/// Raw input longer than this is refused before any Unicode processing, so a hostile header
/// cannot make IDNA mapping expensive.
const MAX_RAW_LEN: usize = 1024;

/// Why a host name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Nothing left after trimming.
    #[error("host is empty")]
    Empty,
    /// The `:port` suffix is not a number from 1 to 65535.
    #[error("host has an invalid port")]
    BadPort,
    /// An IPv4 or IPv6 literal where a name is required.
    #[error("host is an IP address literal, a name is required")]
    IpLiteral,
    /// Two dots in a row, or a leading dot.
    #[error("host has an empty label")]
    EmptyLabel,
    /// A label longer than 63 octets.
    #[error("host has a label longer than 63 characters")]
    LabelTooLong,
    /// The whole name is longer than 253 octets.
    #[error("host is longer than 253 characters")]
    NameTooLong,
    /// A character outside letters, digits and hyphen (after IDNA mapping).
    #[error("host contains a character that is not allowed in a host name")]
    BadCharacter,
    /// A label that starts or ends with a hyphen.
    #[error("host has a label that starts or ends with a hyphen")]
    BadHyphen,
    /// A name with a single label, such as `localhost` on its own.
    #[error("host must have at least two labels")]
    SingleLabel,
}

/// Normalises a raw `Host` header value (or an operator-typed domain) to its canonical ASCII form.
///
/// Lower-cases, strips a `:port` suffix and one trailing dot, maps internationalised names to
/// their IDNA (punycode) form, and refuses empty labels, characters outside `[a-z0-9-]`,
/// hyphens at label edges, over-long labels or names, and IP literals.
pub fn normalize_host(raw: &str) -> Result<String, HostError> {
    canonical_host(raw).map(Cow::into_owned)
}

/// [`normalize_host`] that borrows `raw` when it is already canonical, as nearly every
/// request's `Host` is: one pass proves it and nothing is copied (the router runs this on
/// every request whose host it cannot answer from its cache as sent).
pub fn canonical_host(raw: &str) -> Result<Cow<'_, str>, HostError> {
    if is_canonical_plain(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    normalize_general(raw).map(Cow::Owned)
}

/// True only for names [`normalize_general`] would return unchanged without IDNA: lower-case
/// `[a-z0-9-]` labels of 1–63 bytes with no hyphen at either edge, at most 253 bytes, no port,
/// no trailing dot, no `xn--` anywhere, and a last label that starts with a letter (so it can
/// never read as an IPv4 address). Anything else takes the general path.
fn is_canonical_plain(raw: &str) -> bool {
    let b = raw.as_bytes();
    if b.is_empty() || b.len() > MAX_NAME_LEN {
        return false;
    }
    let mut start = 0;
    for i in 0..=b.len() {
        let c = b.get(i).copied().unwrap_or(b'.');
        if c == b'.' {
            let label = &b[start..i];
            match (label.first(), label.last()) {
                (Some(&f), Some(&l)) if label.len() <= MAX_LABEL_LEN && f != b'-' && l != b'-' => {}
                _ => return false,
            }
            if i < b.len() {
                start = i + 1;
            }
        } else if c == b'-' {
            if i >= 3 && &b[i - 3..=i] == b"xn--" {
                return false;
            }
        } else if !(c.is_ascii_lowercase() || c.is_ascii_digit()) {
            return false;
        }
    }
    b[start].is_ascii_lowercase()
}

/// Every rule, for names that are not already canonical (case, port, trailing dot, IDNA).
fn normalize_general(raw: &str) -> Result<String, HostError> {
    let raw = raw.trim_matches(|c: char| c == ' ' || c == '\t');
    if raw.is_empty() {
        return Err(HostError::Empty);
    }
    if raw.len() > MAX_RAW_LEN {
        return Err(HostError::NameTooLong);
    }
    let name = strip_port(raw)?;
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    // Check the structure before IDNA so errors name the real problem (IDNA would report an
    // empty label as a generic failure).
    if name.split('.').any(str::is_empty) {
        return Err(HostError::EmptyLabel);
    }
    // Pure-ASCII names without punycode labels skip IDNA: it would only lower-case them.
    let has_punycode = name
        .as_bytes()
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"xn--"));
    let ascii = if name.is_ascii() && !has_punycode {
        name.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii_cow(name.as_bytes(), idna::AsciiDenyList::STD3)
            .map_err(|_| HostError::BadCharacter)?
            .into_owned()
    };
    check_ascii_name(&ascii)?;
    Ok(ascii)
}

/// Splits a `host[:port]` authority and returns the host part, refusing IP-literal hosts.
fn strip_port(raw: &str) -> Result<&str, HostError> {
    if raw.starts_with('[') {
        // Bracketed IPv6 literal, with or without a port.
        let end = raw.find(']').ok_or(HostError::BadCharacter)?;
        return if raw[1..end].parse::<Ipv6Addr>().is_ok() {
            Err(HostError::IpLiteral)
        } else {
            Err(HostError::BadCharacter)
        };
    }
    match raw.matches(':').count() {
        0 => Ok(raw),
        1 => {
            let (host, port) = raw.split_once(':').ok_or(HostError::BadPort)?;
            let valid = !port.is_empty()
                && port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
                && matches!(port.parse::<u32>(), Ok(1..=65535));
            if valid {
                Ok(host)
            } else {
                Err(HostError::BadPort)
            }
        }
        _ if raw.parse::<Ipv6Addr>().is_ok() => Err(HostError::IpLiteral),
        _ => Err(HostError::BadCharacter),
    }
}

/// Validates an already lower-cased ASCII name label by label.
fn check_ascii_name(name: &str) -> Result<(), HostError> {
    if name.len() > MAX_NAME_LEN {
        return Err(HostError::NameTooLong);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(HostError::LabelTooLong);
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(HostError::BadCharacter);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(HostError::BadHyphen);
        }
    }
    if looks_like_ipv4(name) {
        return Err(HostError::IpLiteral);
    }
    Ok(())
}

/// True when a name would be read as an IPv4 address by a browser: a dotted quad, or any name
/// whose last label is numeric (WHATWG URL's "ends in a number" rule). No real TLD is numeric.
fn looks_like_ipv4(name: &str) -> bool {
    if name.parse::<Ipv4Addr>().is_ok() {
        return true;
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    let hex = last
        .strip_prefix("0x")
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    hex || last.bytes().all(|b| b.is_ascii_digit())
}

/// The base domain and admin host a deployment serves, already normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRules {
    base: String,
    www: String,
    admin: String,
    /// `.` followed by the base domain, precomputed for suffix checks.
    dot_base: String,
}

impl HostRules {
    /// Builds the rules from configured names, normalising both.
    pub fn new(base_domain: &str, admin_host: &str) -> Result<Self, HostError> {
        let base = normalize_host(base_domain)?;
        if !base.contains('.') {
            return Err(HostError::SingleLabel);
        }
        let admin = normalize_host(admin_host)?;
        Ok(Self {
            www: format!("www.{base}"),
            dot_base: format!(".{base}"),
            base,
            admin,
        })
    }

    /// The base (apex) domain, e.g. `platform.example`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The admin host, e.g. `admin.platform.example`.
    pub fn admin(&self) -> &str {
        &self.admin
    }

    /// True when `name` (normalised) is the base domain or any name below it.
    pub fn is_under_base(&self, name: &str) -> bool {
        name == self.base || name.ends_with(&self.dot_base)
    }

    /// Classifies a raw `Host` value. Never panics; anything unusable is [`HostClass::Invalid`].
    pub fn classify(&self, raw: &str) -> HostClass {
        match normalize_host(raw) {
            Ok(name) => self.classify_normalized(name),
            Err(e) => HostClass::Invalid(InvalidHost::Malformed(e)),
        }
    }

    /// Classifies a name that [`normalize_host`] already produced.
    pub fn classify_normalized(&self, name: String) -> HostClass {
        match self.classify_name(&name) {
            NameClass::Admin => HostClass::Admin,
            NameClass::Apex => HostClass::Apex,
            NameClass::Tenant(slug) => HostClass::Tenant { slug: slug.into() },
            NameClass::Custom(_) => HostClass::Custom { domain: name },
            NameClass::Invalid(e) => HostClass::Invalid(e),
        }
    }

    /// [`HostRules::classify_normalized`] without taking ownership: the slug or domain borrows
    /// from `name`, so the router's per-request path classifies without allocating.
    pub fn classify_name<'a>(&self, name: &'a str) -> NameClass<'a> {
        if name == self.admin {
            return NameClass::Admin;
        }
        if name == self.base || name == self.www {
            return NameClass::Apex;
        }
        if let Some(prefix) = name.strip_suffix(self.dot_base.as_str()) {
            return match single_label(prefix) {
                None => NameClass::Invalid(InvalidHost::NestedSubdomain),
                Some(label) => match validate_slug(label) {
                    Ok(()) => NameClass::Tenant(label),
                    Err(e) => NameClass::Invalid(InvalidHost::NotASlug(e)),
                },
            };
        }
        if !name.contains('.') {
            return NameClass::Invalid(InvalidHost::Malformed(HostError::SingleLabel));
        }
        NameClass::Custom(name)
    }

    /// The one label in front of `.<base>`, not yet checked as a slug (`None` for the base
    /// itself, nested names and other domains): what a tenant subdomain would be keyed by.
    /// The router uses it to answer cached tenants before full classification.
    pub fn subdomain_label<'a>(&self, name: &'a str) -> Option<&'a str> {
        name.strip_suffix(self.dot_base.as_str())
            .and_then(single_label)
    }
}

/// `prefix` when it is a single label (no dot).
fn single_label(prefix: &str) -> Option<&str> {
    (!prefix.contains('.')).then_some(prefix)
}

/// [`HostClass`] borrowing from the classified name (see [`HostRules::classify_name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameClass<'a> {
    /// The platform admin console and API.
    Admin,
    /// The base domain itself or `www.<base>`.
    Apex,
    /// `<slug>.<base>`, with the validated slug.
    Tenant(&'a str),
    /// Any other well-formed name: a custom domain, if one is registered.
    Custom(&'a str),
    /// Not a name we serve.
    Invalid(InvalidHost),
}

/// What a request's host means for routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostClass {
    /// The platform admin console and API.
    Admin,
    /// The marketing site: the base domain itself or `www.<base>`.
    Apex,
    /// `<slug>.<base>`: a tenant by slug (existence is checked by the caller).
    Tenant {
        /// The validated slug.
        slug: String,
    },
    /// Any other well-formed name: a tenant's custom domain, if one is registered.
    Custom {
        /// The normalised domain.
        domain: String,
    },
    /// Not a name we serve; the router redirects to the apex.
    Invalid(InvalidHost),
}

/// Why a host cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidHost {
    /// The host is not a well-formed name.
    #[error(transparent)]
    Malformed(HostError),
    /// A name two or more levels below the base domain (`a.b.<base>`).
    #[error("nested subdomains of the base domain are not served")]
    NestedSubdomain,
    /// `<label>.<base>` where the label is reserved or not a valid slug.
    #[error("subdomain is not a tenant slug: {0}")]
    NotASlug(SlugError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_host_borrows_only_names_already_canonical() {
        let sent = "grace.platform.example";
        assert!(matches!(canonical_host(sent), Ok(Cow::Borrowed(s)) if s == sent));
        for raw in [
            "Grace.Platform.Example",
            "grace.platform.example:8443",
            "grace.platform.example.",
        ] {
            let got = canonical_host(raw);
            assert!(
                matches!(&got, Ok(Cow::Owned(s)) if s == sent),
                "{raw:?}: {got:?}"
            );
            assert_eq!(normalize_host(raw).as_deref(), Ok(sent));
        }
        assert_eq!(canonical_host("a..example"), Err(HostError::EmptyLabel));
    }

    #[test]
    fn subdomain_label_is_the_one_label_before_the_base() {
        let r = HostRules::new("platform.example", "admin.platform.example").unwrap();
        assert_eq!(r.subdomain_label("grace.platform.example"), Some("grace"));
        assert_eq!(r.subdomain_label("admin.platform.example"), Some("admin"));
        for name in [
            "platform.example",
            "a.b.platform.example",
            "grace.example.org",
        ] {
            assert_eq!(r.subdomain_label(name), None, "{name}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// The one-pass check only ever accepts what the general path returns unchanged.
        #[test]
        fn canonical_fast_path_agrees_with_the_general_one(
            raw in "([a-z0-9x-]{0,8}[.]?){1,6}(xn--)?[a-z0-9.-]{0,4}"
        ) {
            if is_canonical_plain(&raw) {
                proptest::prop_assert_eq!(normalize_general(&raw), Ok(raw.clone()));
            }
        }
    }

    #[test]
    fn fast_path_sends_everything_unusual_to_the_general_path() {
        for raw in [
            "grace.platform.test.",
            "Grace.platform.test",
            "grace.platform.test:8443",
            "xn--bcher-kva.example",
            "a..b",
            "-a.example",
            "a-.example",
            "10.0.0.1",
            "a.0x1f",
            "a.123",
            " a.example",
            "",
        ] {
            assert!(!is_canonical_plain(raw), "{raw:?}");
        }
        for raw in [
            "grace.platform.test",
            "a",
            "give.grace-church.org",
            "t0001.platform.test",
        ] {
            assert!(is_canonical_plain(raw), "{raw:?}");
            assert_eq!(normalize_general(raw), Ok(raw.to_owned()));
        }
        let long_label = format!("{}.example", "a".repeat(64));
        assert!(!is_canonical_plain(&long_label));
        assert_eq!(normalize_host(&long_label), Err(HostError::LabelTooLong));
    }

    fn rules() -> HostRules {
        HostRules::new("platform.example", "admin.platform.example").unwrap()
    }

    #[test]
    fn normalises_case_port_and_trailing_dot() {
        assert_eq!(
            normalize_host("Grace.Platform.Example:8443").unwrap(),
            "grace.platform.example"
        );
        assert_eq!(normalize_host("example.org.").unwrap(), "example.org");
        assert_eq!(normalize_host(" example.org ").unwrap(), "example.org");
    }

    #[test]
    fn maps_unicode_to_punycode() {
        assert_eq!(
            normalize_host("Bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        // Full-width dot and letters map through UTS 46.
        assert_eq!(normalize_host("ＥＸＡＭＰＬＥ.org").unwrap(), "example.org");
    }

    #[test]
    fn refuses_malformed_names() {
        let cases = [
            ("", HostError::Empty),
            (".", HostError::Empty),
            ("a..b", HostError::EmptyLabel),
            (".a.b", HostError::EmptyLabel),
            ("a.b..", HostError::EmptyLabel),
            ("a_b.example", HostError::BadCharacter),
            ("a b.example", HostError::BadCharacter),
            ("-a.example", HostError::BadHyphen),
            ("a-.example", HostError::BadHyphen),
            ("host:0", HostError::BadPort),
            ("host:", HostError::BadPort),
            ("host:99999", HostError::BadPort),
            ("host:+80", HostError::BadPort),
            ("127.0.0.1", HostError::IpLiteral),
            ("127.0.0.1:80", HostError::IpLiteral),
            ("[::1]:443", HostError::IpLiteral),
            ("::1", HostError::IpLiteral),
            ("foo.123", HostError::IpLiteral),
            ("foo.0x7f", HostError::IpLiteral),
            ("user@host.example", HostError::BadCharacter),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_host(raw), Err(want), "input {raw:?}");
        }
        let long_label = format!("{}.example", "a".repeat(64));
        assert_eq!(normalize_host(&long_label), Err(HostError::LabelTooLong));
        let long_name = vec!["abcdefghi"; 26].join(".");
        assert_eq!(normalize_host(&long_name), Err(HostError::NameTooLong));
    }

    #[test]
    fn classifies_each_kind() {
        let r = rules();
        assert_eq!(r.classify("admin.platform.example"), HostClass::Admin);
        assert_eq!(r.classify("platform.example"), HostClass::Apex);
        assert_eq!(r.classify("WWW.platform.example:80"), HostClass::Apex);
        assert_eq!(
            r.classify("grace.platform.example"),
            HostClass::Tenant {
                slug: "grace".into()
            }
        );
        assert_eq!(
            r.classify("give.gracechurch.org."),
            HostClass::Custom {
                domain: "give.gracechurch.org".into()
            }
        );
        assert!(matches!(
            r.classify("api.platform.example"),
            HostClass::Invalid(InvalidHost::NotASlug(SlugError::Reserved))
        ));
        assert!(matches!(
            r.classify("a.b.platform.example"),
            HostClass::Invalid(InvalidHost::NestedSubdomain)
        ));
        assert!(matches!(r.classify("localhost"), HostClass::Invalid(_)));
        assert!(matches!(r.classify("10.0.0.1"), HostClass::Invalid(_)));
    }

    #[test]
    fn admin_host_outside_base_is_recognised() {
        let r = HostRules::new("platform.example", "console.ops.example").unwrap();
        assert_eq!(r.classify("console.ops.example"), HostClass::Admin);
        // `admin` stays a reserved slug, so it is never a tenant either.
        assert!(matches!(
            r.classify("admin.platform.example"),
            HostClass::Invalid(_)
        ));
    }

    #[test]
    fn rules_refuse_single_label_base() {
        assert_eq!(
            HostRules::new("localhost", "admin.localhost"),
            Err(HostError::SingleLabel)
        );
    }
}
