//! Everything the platform and the workers need to talk to Stripe Connect.
//!
//! - [`fee`]: the platform fee in integer minor units (no floating point touches money).
//! - [`webhook`]: `Stripe-Signature` verification against every `v1` value and every
//!   configured secret, with a timestamp tolerance, and the event envelope.
//! - [`ledger`]: the SQL that records a successful payment and queues its receipt.
//! - [`client`]: a small form-encoded API client for the handful of endpoints we call, with
//!   `Stripe-Account` (direct charges on connected accounts) and `Idempotency-Key` on every
//!   write so a retried request never charges twice.
//!
//! A hand-written client rather than a generated SDK: we call seven endpoints, and owning the
//! request shape keeps the Connect parameters (fee, account, idempotency key) visible in one
//! place and cheap to build.

pub mod client;
pub mod fee;
pub mod ledger;
pub mod webhook;

pub use client::{Form, Opts, StripeClient, StripeError};
pub use fee::{fee_percent_string, platform_fee};
pub use webhook::{verify_signature, Event, SignatureError};
