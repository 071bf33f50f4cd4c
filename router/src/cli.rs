//! Command line of the `router` binary.
//!
//! Exit codes: 0 success, 1 runtime failure, 64 bad configuration or usage.
//!
//! Signals (Pingora's): SIGTERM drains in-flight requests within
//! `lifecycle.shutdown_timeout_secs` and exits; SIGQUIT hands the listening sockets to a new
//! instance started with `serve --upgrade`, then drains and exits; SIGINT exits at once.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tenant_config::config::{self, RouterConfig, EXIT_BAD_CONFIG};

use crate::server::{run, StartMode};
use crate::store::load_static_tenants;

/// Edge router for the donation platform: tenants by host, TLS, rate limits, load balancing.
#[derive(Debug, Parser)]
#[command(name = "router", version)]
pub struct Cli {
    /// Configuration file (TOML); environment variables such as DATABASE_URL override it.
    #[arg(long, short, global = true, env = "ROUTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve until SIGTERM (graceful), SIGQUIT (hand over to an --upgrade instance) or SIGINT.
    Serve {
        /// Take over the listening sockets of the running instance (zero-downtime upgrade).
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate the configuration (and the static tenant file, if any) and exit.
    CheckConfig,
    /// Probe this instance's operator listener: exit 0 when `/ready` answers 200 (with
    /// `--live`: `/health`), 1 otherwise. For container HEALTHCHECKs; needs no curl.
    Healthcheck {
        /// Liveness only (`/health`): for runtimes that restart unhealthy containers.
        #[arg(long)]
        live: bool,
    },
}

/// Runs the parsed command and returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    let config: RouterConfig = config::load_or_exit("router", cli.config.as_deref());
    if let Command::Healthcheck { live } = cli.command {
        return tenant_config::health::healthcheck(
            "router",
            &config.listen.metrics.to_string(),
            live,
        );
    }
    // The static tenant file is part of the configuration: refuse a bad one up front. What
    // is read here is what `serve` serves (read once).
    let static_tenants = match (&config.database, &config.static_tenants) {
        (None, Some(path)) => {
            let loaded = config
                .domain
                .rules()
                .map_err(|e| e.to_string())
                .and_then(|r| load_static_tenants(path, &r, config.domain.policy()));
            match loaded {
                Ok(store) => Some(store),
                Err(e) => {
                    eprintln!("router: config error: {e}");
                    return EXIT_BAD_CONFIG;
                }
            }
        }
        _ => None,
    };
    match cli.command {
        Command::CheckConfig => {
            // What `serve` constructs from the configuration, built and dropped.
            if let Err(e) = crate::preflight::check(&config) {
                eprintln!("router: config error: {e}");
                return EXIT_BAD_CONFIG;
            }
            let rules = config
                .domain
                .rules()
                .map(|r| (r.base().to_owned(), r.admin().to_owned()));
            match rules {
                Ok((base, admin)) => {
                    println!(
                        "config ok: base domain {base}, admin host {admin}, listening on {}",
                        config.listen.http
                    );
                    0
                }
                Err(e) => {
                    eprintln!("router: config error: {e}");
                    EXIT_BAD_CONFIG
                }
            }
        }
        Command::Healthcheck { .. } => 0,
        Command::Serve { upgrade } => {
            // Both ring and aws-lc-rs are compiled in; choose one before any TLS is set up.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            crate::log_bridge::install();
            tenant_config::runtime::init_logging(&config.log);
            crate::log_bridge::follow_tracing_level();
            match run(config, StartMode { upgrade }, static_tenants) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("router: {e}");
                    1
                }
            }
        }
    }
}
