//! Real servers for tests: a throwaway PostgreSQL cluster and Redis on free loopback ports.
//!
//! Each is started at most once per test binary (on first use) and stopped when the binary
//! exits, however it exits: a small reaper process holds the read end of a pipe whose write end
//! only this process has, so when the process ends (normally, by panic or by `SIGKILL`) the
//! pipe closes and the reaper stops the servers and deletes their files.
//!
//! Every test gets its own database cloned from a template that the real migration runner built,
//! so tests run in parallel without seeing each other's rows.
//!
//! Also: an in-process HTTP/WebSocket [`origin`] for proxy tests, [`Spawned`] child
//! processes (the binaries under test) that are killed by PID when dropped, the Stripe emulator
//! ([`stripe`]: localstripe behind a recording proxy) and an SMTP sink ([`SmtpSink`]: aiosmtpd).
//!
//! Login roles in the cluster (trust authentication on loopback; see `ops/dev/login-roles.sql`):
//! `postgres` (superuser, owns the schema), `platform_web`, `platform_router`,
//! `platform_workers`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bind;
mod dns;
pub mod edge;
mod origin;
mod pebble;
mod postgres;
mod process;
mod redis;
mod router;
mod smtp;
mod spawn;
mod stripe;
pub mod tls;

pub use bind::{Bind, TSIG_KEY_NAME};
pub use dns::{dns, dns_strict, DnsServer};
pub use origin::{origin, Origin, OriginBuilder};
pub use pebble::{pebble, Pebble, PebbleBuilder};
pub use postgres::{database, postgres, PgCluster, TestDb};
pub use redis::{redis, RedisServer};
pub use router::{router, RouterBuilder, RouterProcess, BASE_DOMAIN, EDGE_SECRET};
pub use smtp::SmtpSink;
pub use spawn::{wait_for_port, Spawned};
pub use stripe::{param, stripe, StripeEmulator, STRIPE_TEST_KEY};

/// A free TCP port on 127.0.0.1 (bound and released; callers retry if another process wins).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}
