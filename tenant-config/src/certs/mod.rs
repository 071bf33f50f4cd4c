//! Certificates at rest: the AES-256-GCM seal for private keys and ACME credentials
//! ([`seal`]), the certificate store every router loads from ([`store`]) and the shared
//! session-ticket keys ([`tickets`]).
//!
//! Lives in tenant-config (not the router) so the ACME issuer, the admin API's status pages
//! and tests all read and write one format.

pub mod seal;
pub mod store;
pub mod tickets;

pub use seal::{SealError, SealKey};
pub use store::{CertStore, CertStoreError, LoadStats, StoredCert, CHANNEL};

/// Environment variable holding the sealing key (`CERT_ENCRYPTION_KEY_FILE` names a file
/// instead): 32 bytes as 64 hex digits or base64.
pub const KEY_ENV: &str = "CERT_ENCRYPTION_KEY";
