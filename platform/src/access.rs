//! Who may call what: the capability each route needs, and which roles hold it.
//!
//! Every route is declared once in [`crate::routes`] with its [`Access`]; the router puts that
//! declaration into the request's extensions, and the session extractors
//! ([`crate::admin::auth::AdminSession`], [`crate::tenant::staff::StaffSession`]) check the
//! signed-in account's role against it before the handler runs. A route whose declaration is
//! missing or of the wrong kind is refused (fail closed), and `tests/access.rs` walks
//! [`crate::ROUTES`] asking every role.

use crate::error::AppError;

/// What an admin route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminCap {
    /// Any signed-in admin (logout).
    Session,
    /// Read tenants, domains, jobs, metrics and the audit log.
    Read,
    /// Create, suspend and resume tenants.
    TenantsWrite,
    /// Add, verify and remove custom domains.
    DomainsWrite,
    /// Change where a tenant's money goes (Stripe account, onboarding).
    PaymentsWrite,
}

/// A platform admin's role (`admin_users.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRole {
    /// Everything.
    Owner,
    /// Day-to-day tenant management, including payments.
    Admin,
    /// Read only.
    Viewer,
}

impl AdminRole {
    /// Every role, for tests and documentation.
    pub const ALL: [AdminRole; 3] = [AdminRole::Owner, AdminRole::Admin, AdminRole::Viewer];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::Owner => "owner",
            AdminRole::Admin => "admin",
            AdminRole::Viewer => "viewer",
        }
    }

    /// Parses a stored role; an unknown value holds no capability.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The role table.
    pub fn grants(self, cap: AdminCap) -> bool {
        use AdminCap::*;
        match self {
            AdminRole::Owner => true,
            AdminRole::Admin => matches!(
                cap,
                Session | Read | TenantsWrite | DomainsWrite | PaymentsWrite
            ),
            AdminRole::Viewer => matches!(cap, Session | Read),
        }
    }
}

impl AdminCap {
    /// The capability's name, as documentation and logs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminCap::Session => "session",
            AdminCap::Read => "read",
            AdminCap::TenantsWrite => "tenants:write",
            AdminCap::DomainsWrite => "domains:write",
            AdminCap::PaymentsWrite => "payments:write",
        }
    }
}

/// What a staff route (tenant host) needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffCap {
    /// Any signed-in staff member (logout).
    Session,
    /// The tenant's donations.
    DonationsRead,
    /// The tenant's reports and their CSV downloads.
    ReportsRead,
    /// The tenant's own settings (owners only).
    SettingsWrite,
}

/// A staff member's role (`tenant_users.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffRole {
    /// The tenant's owner: everything on the tenant.
    Owner,
    /// Staff: reads donations and reports.
    Staff,
}

impl StaffRole {
    /// Every role.
    pub const ALL: [StaffRole; 2] = [StaffRole::Owner, StaffRole::Staff];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::Owner => "owner",
            StaffRole::Staff => "staff",
        }
    }

    /// Parses a stored role; an unknown value holds no capability.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The role table.
    pub fn grants(self, cap: StaffCap) -> bool {
        match self {
            StaffRole::Owner => true,
            StaffRole::Staff => !matches!(cap, StaffCap::SettingsWrite),
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Operator endpoints with no edge signature (health, readiness, metrics, API document).
    Public,
    /// Anyone the router forwards (signed context), no session: pages, gifts, logins, webhooks
    /// (which carry their own Stripe signature).
    Edge,
    /// A signed-in platform admin holding the capability.
    Admin(AdminCap),
    /// A signed-in staff member of the request's tenant holding the capability.
    Staff(StaffCap),
}

/// One route of the service, as declared in [`crate::routes`].
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path template (axum syntax, `{id}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Part of the JSON API (listed in the OpenAPI document); `false` for HTML pages.
    pub api: bool,
}

/// The admin capability declared for this request's route; refused when there is none.
pub fn required_admin(ext: &axum::http::Extensions) -> Result<AdminCap, AppError> {
    match ext.get::<Access>() {
        Some(Access::Admin(cap)) => Ok(*cap),
        other => {
            tracing::error!(declared = ?other, "admin session used on a route not declared as admin; refused");
            Err(AppError::Forbidden)
        }
    }
}

/// The staff capability declared for this request's route; refused when there is none.
pub fn required_staff(ext: &axum::http::Extensions) -> Result<StaffCap, AppError> {
    match ext.get::<Access>() {
        Some(Access::Staff(cap)) => Ok(*cap),
        other => {
            tracing::error!(declared = ?other, "staff session used on a route not declared as staff; refused");
            Err(AppError::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_table() {
        use AdminCap::*;
        for cap in [Session, Read, TenantsWrite, DomainsWrite, PaymentsWrite] {
            assert!(AdminRole::Owner.grants(cap));
        }
        assert!(AdminRole::Viewer.grants(Read));
        for cap in [TenantsWrite, DomainsWrite, PaymentsWrite] {
            assert!(!AdminRole::Viewer.grants(cap), "{cap:?}");
            assert!(AdminRole::Admin.grants(cap), "{cap:?}");
        }
        assert!(!StaffRole::Staff.grants(StaffCap::SettingsWrite));
        assert!(StaffRole::Owner.grants(StaffCap::SettingsWrite));
        assert_eq!(AdminRole::parse("superuser"), None);
        assert_eq!(StaffRole::parse("Owner"), None);
    }
}
