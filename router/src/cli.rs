//! Command line of the `router` binary.
//!
//! Exit codes: 0 success, 1 runtime failure, 64 bad configuration or usage.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tenant_config::config::{self, RouterConfig, EXIT_BAD_CONFIG};

use crate::resolve::Resolver;

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
    /// Serve until SIGTERM or Ctrl-C.
    Serve,
    /// Validate the configuration (and the static tenant file, if any) and exit.
    CheckConfig,
}

/// Runs the parsed command and returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    let config: RouterConfig = config::load_or_exit("router", cli.config.as_deref());
    match cli.command {
        Command::CheckConfig => match Resolver::from_config(&config) {
            Ok(r) => {
                println!(
                    "config ok: base domain {}, admin host {}, listening on {}",
                    r.rules().base(),
                    r.rules().admin(),
                    config.listen.http
                );
                0
            }
            Err(e) => {
                eprintln!("router: config error: {e}");
                EXIT_BAD_CONFIG
            }
        },
        Command::Serve => {
            tenant_config::runtime::init_logging(&config.log);
            tenant_config::runtime::block_on("router", serve(config))
        }
    }
}

async fn serve(config: RouterConfig) -> i32 {
    let resolver = match Resolver::from_config(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("router: config error: {e}");
            return EXIT_BAD_CONFIG;
        }
    };
    let Some(listener) = tenant_config::runtime::bind("router", &config.listen.http).await else {
        return 1;
    };
    tracing::info!(listen = %config.listen.http, "router serving");
    let served = axum::serve(listener, crate::preview::app(resolver))
        .with_graceful_shutdown(tenant_config::runtime::shutdown_signal())
        .await;
    match served {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            1
        }
    }
}
