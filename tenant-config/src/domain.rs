//! Custom-domain rules: which names a tenant may attach, shared by the platform (when an admin
//! adds a domain) and the router (which only ever looks up names that passed these rules).

use crate::host::{normalize_host, HostError, HostRules};

/// Top-level names reserved for local or documentation use (RFC 2606, RFC 6761, RFC 6762,
/// and `.internal`). They can never get a public certificate, so production refuses them; the
/// local demo allows them through [`DomainPolicy::allow_special_use`].
pub const SPECIAL_USE_TLDS: &[&str] = &[
    "example",
    "home",
    "internal",
    "invalid",
    "lan",
    "local",
    "localhost",
    "test",
];

/// Why a custom domain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Not a well-formed host name.
    #[error("domain is not a valid host name: {0}")]
    Malformed(#[from] HostError),
    /// The base domain or a name below it: those are served as subdomains, not custom domains.
    #[error("domain is part of the platform's own domain")]
    PlatformDomain,
    /// A reserved top-level name such as `.localhost` or `.test`.
    #[error("domain uses a reserved top-level name that cannot be served publicly")]
    SpecialUse,
    /// The last label must be alphabetic (or an IDNA label): no real TLD is numeric.
    #[error("domain has an invalid top-level label")]
    BadTld,
    /// A public suffix (`co.uk`, `github.io`): names under it belong to many owners, so no
    /// one tenant can own it, and a certificate for it would never be issued.
    #[error("domain is a public suffix (like co.uk or github.io), not a name one owner can hold")]
    PublicSuffix,
}

/// Deployment-specific switches for custom-domain validation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomainPolicy {
    /// Accept `.localhost`, `.test` and the other special-use names (local demo and tests only).
    pub allow_special_use: bool,
}

/// Validates a domain a tenant wants to attach and returns its normalised form.
pub fn validate_custom_domain(
    raw: &str,
    rules: &HostRules,
    policy: DomainPolicy,
) -> Result<String, DomainError> {
    let name = normalize_host(raw)?;
    if !name.contains('.') {
        return Err(HostError::SingleLabel.into());
    }
    if rules.is_under_base(&name) || name == rules.admin() {
        return Err(DomainError::PlatformDomain);
    }
    let tld = name.rsplit('.').next().unwrap_or_default();
    let tld_ok =
        tld.len() >= 2 && (tld.bytes().all(|b| b.is_ascii_lowercase()) || tld.starts_with("xn--"));
    if !tld_ok {
        return Err(DomainError::BadTld);
    }
    if !policy.allow_special_use && SPECIAL_USE_TLDS.contains(&tld) {
        return Err(DomainError::SpecialUse);
    }
    if is_public_suffix(&name) {
        return Err(DomainError::PublicSuffix);
    }
    Ok(name)
}

/// Whether `name` is itself on the Public Suffix List (ICANN and private sections, as the
/// `psl` crate compiles them in): `co.uk`, `github.io`, `s3.amazonaws.com`. Names below a
/// suffix (`grace.co.uk`) are not; unlisted TLDs count as suffixes only as a whole.
pub fn is_public_suffix(name: &str) -> bool {
    psl::suffix(name.as_bytes()).is_some_and(|s| s.is_known() && s.as_bytes() == name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> HostRules {
        HostRules::new("platform.example", "admin.platform.example").unwrap()
    }

    #[test]
    fn accepts_and_normalises() {
        let d = validate_custom_domain("Give.GraceChurch.org.", &rules(), DomainPolicy::default());
        assert_eq!(d.unwrap(), "give.gracechurch.org");
    }

    #[test]
    fn refuses_platform_and_special_names() {
        let strict = DomainPolicy::default();
        let r = rules();
        assert_eq!(
            validate_custom_domain("x.platform.example", &r, strict),
            Err(DomainError::PlatformDomain)
        );
        assert_eq!(
            validate_custom_domain("platform.example", &r, strict),
            Err(DomainError::PlatformDomain)
        );
        assert_eq!(
            validate_custom_domain("grace-church.localhost", &r, strict),
            Err(DomainError::SpecialUse)
        );
        assert_eq!(
            validate_custom_domain("org", &r, strict),
            Err(DomainError::Malformed(HostError::SingleLabel))
        );
        assert_eq!(
            validate_custom_domain("a.b.c1", &r, strict),
            Err(DomainError::BadTld)
        );
        for suffix in ["co.uk", "github.io", "CO.UK.", "s3.amazonaws.com"] {
            assert_eq!(
                validate_custom_domain(suffix, &r, strict),
                Err(DomainError::PublicSuffix),
                "{suffix}"
            );
        }
        assert_eq!(
            validate_custom_domain("grace.co.uk", &r, strict).unwrap(),
            "grace.co.uk"
        );
        assert_eq!(
            validate_custom_domain("grace.github.io", &r, strict).unwrap(),
            "grace.github.io"
        );
        let local = DomainPolicy {
            allow_special_use: true,
        };
        assert_eq!(
            validate_custom_domain("grace-church.localhost", &r, local).unwrap(),
            "grace-church.localhost"
        );
    }
}
