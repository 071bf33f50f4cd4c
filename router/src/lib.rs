//! The edge router: resolves the tenant from the `Host` header and forwards to the platform.
//!
//! Module map:
//! - [`cli`]: command line (`serve`, `check-config`), called by `main.rs`.
//! - [`resolve`]: host classification plus tenant lookup through the configured store.
//! - [`preview`]: the interim HTTP front that reports how a request would be routed.

pub mod cli;
pub mod preview;
pub mod resolve;
