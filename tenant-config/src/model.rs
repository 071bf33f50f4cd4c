//! The tenant model shared by every binary: tenants, their domains and plans.
//!
//! Status enums are stored as `text` with a `CHECK` constraint in PostgreSQL; the strings here
//! and in `migrations/` must match, which `tests/schema_matches_model.rs` checks against a live
//! database.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A tenant's primary key. A newtype so a tenant id is never passed where a donation id belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub Uuid);

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An unknown string where a status was expected (from the database or a config file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownVariant {
    /// Which enum was being parsed.
    pub kind: &'static str,
    /// The rejected text.
    pub value: String,
}

/// Declares a fieldless enum stored as text: `as_str`, `FromStr`, `Display`, serde, and `ALL`.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The text stored in the database.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant { kind: $kind, value: s.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// Whether a tenant is served. Only `Suspended` and `Cancelled` tenants are refused at the edge.
    TenantStatus, "tenant status" {
        /// Trying the platform before paying.
        Trial = "trial",
        /// Paying and served.
        Active = "active",
        /// Blocked by a platform admin (unpaid, abuse); shown a 403 page.
        Suspended = "suspended",
        /// Left the platform; kept for records, not served.
        Cancelled = "cancelled",
    }
}

impl TenantStatus {
    /// True when the router should serve the tenant's sites.
    pub const fn is_served(self) -> bool {
        matches!(self, TenantStatus::Trial | TenantStatus::Active)
    }
}

text_enum! {
    /// A one-time gift's (or one invoice's) payment state (`donations.status`). Moves forward
    /// only: a late failure never undoes a success.
    DonationStatus, "donation status" {
        /// Created; waiting for the donor to pay.
        Pending = "pending",
        /// Paid; the receipt is queued.
        Succeeded = "succeeded",
        /// The payment was refused.
        Failed = "failed",
        /// Abandoned before paying.
        Canceled = "canceled",
        /// Paid back in full.
        Refunded = "refunded",
        /// Paid back in part.
        PartiallyRefunded = "partially_refunded",
        /// The donor's bank disputes the charge.
        Disputed = "disputed",
    }
}

text_enum! {
    /// A recurring gift's state (`recurring_donations.status`), following its subscription.
    RecurringStatus, "recurring gift status" {
        /// Created; the first payment is not confirmed yet.
        Incomplete = "incomplete",
        /// Being charged on schedule.
        Active = "active",
        /// The last charge failed; Stripe retries.
        PastDue = "past_due",
        /// Stopped by the donor, staff or Stripe. Terminal.
        Canceled = "canceled",
        /// The first payment never completed. Terminal.
        IncompleteExpired = "incomplete_expired",
    }
}

impl RecurringStatus {
    /// Maps Stripe's subscription statuses onto ours.
    pub fn from_stripe(stripe: &str) -> Self {
        match stripe {
            "active" | "trialing" => RecurringStatus::Active,
            "past_due" | "unpaid" | "paused" => RecurringStatus::PastDue,
            "canceled" => RecurringStatus::Canceled,
            "incomplete_expired" => RecurringStatus::IncompleteExpired,
            _ => RecurringStatus::Incomplete,
        }
    }
}

text_enum! {
    /// Lifecycle of a custom domain: ownership is proven by a DNS TXT record before the domain is
    /// served or a certificate is requested for it.
    DomainStatus, "domain status" {
        /// Added; waiting for the TXT record.
        PendingVerification = "pending_verification",
        /// TXT record seen; certificate not yet issued.
        Verified = "verified",
        /// Verified and serving traffic.
        Active = "active",
        /// Verification or issuance failed; may be retried.
        Failed = "failed",
        /// Detached by the tenant or an admin. Terminal.
        Removed = "removed",
    }
}

impl DomainStatus {
    /// Whether the lifecycle allows moving from `self` to `next`.
    pub fn can_transition_to(self, next: DomainStatus) -> bool {
        use DomainStatus::*;
        matches!(
            (self, next),
            (PendingVerification, Verified | Failed | Removed)
                | (Verified, Active | Failed | Removed)
                | (Active, Failed | Removed)
                | (Failed, PendingVerification | Removed)
        )
    }

    /// Whether the router may route requests for a domain in this state.
    pub const fn is_routable(self) -> bool {
        matches!(self, DomainStatus::Verified | DomainStatus::Active)
    }

    /// Whether a certificate may be requested for a domain in this state. Never for an
    /// unverified name: issuing for names nobody proved they own is how on-demand TLS is abused.
    pub const fn may_issue_certificate(self) -> bool {
        matches!(self, DomainStatus::Verified | DomainStatus::Active)
    }
}

text_enum! {
    /// Certificate state of a domain, tracked apart from its verification status.
    CertificateStatus, "certificate status" {
        /// No certificate requested yet.
        None = "none",
        /// An ACME order is in progress.
        Pending = "pending",
        /// A valid certificate is stored.
        Issued = "issued",
        /// The last issuance or renewal failed; see the error kept beside it.
        Failed = "failed",
        /// The stored certificate has expired.
        Expired = "expired",
    }
}

/// Requests per second and burst a plan grants a tenant, enforced by the router (GCRA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitPolicy {
    /// Sustained requests per second per client address.
    pub requests_per_second: u32,
    /// Requests allowed in a burst above the sustained rate.
    pub burst: u32,
}

impl Default for RateLimitPolicy {
    fn default() -> Self {
        Self {
            requests_per_second: 10,
            burst: 20,
        }
    }
}

/// A subscription plan: what a tenant pays and the limits that come with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Stable identifier, e.g. `starter`.
    pub id: String,
    /// Name shown to admins.
    pub name: String,
    /// Monthly price in minor units of `currency`.
    pub monthly_price_minor: i64,
    /// ISO 4217 code, lower-case as Stripe uses it.
    pub currency: String,
    /// Edge rate limit for the tenant's hosts.
    pub rate_limit: RateLimitPolicy,
    /// How many custom domains the tenant may attach.
    pub max_custom_domains: i32,
}

/// What the router needs to know about a tenant to route a request: small and cheap to cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedTenant {
    /// Primary key.
    pub id: TenantId,
    /// The tenant's subdomain label.
    pub slug: String,
    /// Display name (used on the suspended page).
    pub name: String,
    /// Whether the tenant is served.
    pub status: TenantStatus,
    /// Plan identifier.
    pub plan_id: String,
    /// Edge rate limit from the plan.
    pub rate_limit: RateLimitPolicy,
}

/// A custom domain attached to a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantDomain {
    /// Primary key.
    pub id: Uuid,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Normalised name.
    pub domain: String,
    /// Verification lifecycle.
    pub status: DomainStatus,
    /// Certificate lifecycle.
    pub cert_status: CertificateStatus,
    /// Value the tenant publishes in a TXT record to prove ownership.
    pub verification_token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        for s in DomainStatus::ALL {
            assert_eq!(s.as_str().parse::<DomainStatus>().unwrap(), *s);
        }
        for s in TenantStatus::ALL {
            assert_eq!(s.to_string().parse::<TenantStatus>().unwrap(), *s);
        }
        assert!("bogus".parse::<CertificateStatus>().is_err());
    }

    #[test]
    fn domain_lifecycle() {
        use DomainStatus::*;
        assert!(PendingVerification.can_transition_to(Verified));
        assert!(Verified.can_transition_to(Active));
        assert!(Failed.can_transition_to(PendingVerification));
        assert!(
            !PendingVerification.can_transition_to(Active),
            "must verify first"
        );
        for s in DomainStatus::ALL {
            assert!(!Removed.can_transition_to(*s), "removed is terminal");
        }
        assert!(!PendingVerification.may_issue_certificate());
        assert!(Active.is_routable() && !Failed.is_routable());
    }
}
