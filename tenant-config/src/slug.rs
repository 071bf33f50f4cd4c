//! Tenant slug rules, shared by the router (classifying `<slug>.<base>`) and the platform
//! (creating tenants), so a slug the admin can create is exactly a slug the router will serve.

/// Shortest slug. Two-letter names are too easy to squat and to confuse.
pub const MIN_SLUG_LEN: usize = 3;
/// Longest slug: one DNS label.
pub const MAX_SLUG_LEN: usize = 63;

/// Subdomains that belong to the platform itself and can never name a tenant.
///
/// Covers our own hosts, common service names that attackers use for phishing look-alikes, and
/// names mail and certificate tooling probe automatically.
pub const RESERVED_SLUGS: &[&str] = &[
    "about",
    "account",
    "accounts",
    "acme",
    "admin",
    "administrator",
    "api",
    "app",
    "apps",
    "assets",
    "auth",
    "autoconfig",
    "autodiscover",
    "billing",
    "blog",
    "cdn",
    "console",
    "dashboard",
    "dev",
    "dns",
    "docs",
    "donate",
    "email",
    "ftp",
    "git",
    "health",
    "help",
    "imap",
    "img",
    "internal",
    "login",
    "logout",
    "mail",
    "media",
    "metrics",
    "mx",
    "ns",
    "ns1",
    "ns2",
    "ns3",
    "ns4",
    "oauth",
    "platform",
    "pop",
    "pop3",
    "postmaster",
    "root",
    "security",
    "signup",
    "smtp",
    "sso",
    "staging",
    "static",
    "status",
    "stripe",
    "support",
    "system",
    "test",
    "webhooks",
    "webmail",
    "www",
];

/// Why a slug was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    /// Fewer than [`MIN_SLUG_LEN`] or more than [`MAX_SLUG_LEN`] characters.
    #[error("slug must be 3 to 63 characters long")]
    Length,
    /// A character other than `a-z`, `0-9` or `-`.
    #[error("slug may contain only lower-case letters, digits and hyphens")]
    BadCharacter,
    /// Must start with a letter and end with a letter or digit.
    #[error("slug must start with a letter and end with a letter or digit")]
    BadEdge,
    /// `--` is refused so a slug can never look like a punycode (`xn--`) label.
    #[error("slug must not contain two hyphens in a row")]
    DoubleHyphen,
    /// One of [`RESERVED_SLUGS`].
    #[error("slug is reserved for the platform")]
    Reserved,
}

/// Checks a slug against the platform's rules. The input must already be lower-case: slugs are
/// identifiers, and silently folding case here would let two spellings name one tenant.
pub fn validate_slug(slug: &str) -> Result<(), SlugError> {
    if !(MIN_SLUG_LEN..=MAX_SLUG_LEN).contains(&slug.len()) {
        return Err(SlugError::Length);
    }
    let bytes = slug.as_bytes();
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Err(SlugError::BadCharacter);
    }
    let first_ok = bytes.first().is_some_and(u8::is_ascii_lowercase);
    let last_ok = bytes.last().is_some_and(|b| *b != b'-');
    if !first_ok || !last_ok {
        return Err(SlugError::BadEdge);
    }
    if slug.contains("--") {
        return Err(SlugError::DoubleHyphen);
    }
    if is_reserved_slug(slug) {
        return Err(SlugError::Reserved);
    }
    Ok(())
}

/// True for names in [`RESERVED_SLUGS`].
pub fn is_reserved_slug(slug: &str) -> bool {
    RESERVED_SLUGS.binary_search(&slug).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_list_is_sorted_for_binary_search() {
        assert!(RESERVED_SLUGS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn accepts_ordinary_slugs() {
        for s in ["grace", "st-marys", "church42", "abc", &"a".repeat(63)] {
            assert_eq!(validate_slug(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn refuses_bad_slugs() {
        let cases = [
            ("ab", SlugError::Length),
            ("Grace", SlugError::BadCharacter),
            ("gr_ace", SlugError::BadCharacter),
            ("1grace", SlugError::BadEdge),
            ("grace-", SlugError::BadEdge),
            ("-grace", SlugError::BadEdge),
            ("xn--grace", SlugError::DoubleHyphen),
            ("admin", SlugError::Reserved),
            ("www", SlugError::Reserved),
            ("api", SlugError::Reserved),
        ];
        for (s, want) in cases {
            assert_eq!(validate_slug(s), Err(want), "{s}");
        }
        assert_eq!(validate_slug(&"a".repeat(64)), Err(SlugError::Length));
    }
}
