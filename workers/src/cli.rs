//! Command line of the `workers` binary.
//!
//! Exit codes: 0 success, 1 runtime failure, 64 bad configuration or usage.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tenant_config::config::{self, WorkersConfig};

use crate::http::{app, WorkersState};

/// Queue consumers, cron scheduler and one-shot job triggers for the donation platform.
#[derive(Debug, Parser)]
#[command(name = "workers", version)]
pub struct Cli {
    /// Configuration file (TOML); environment variables such as DATABASE_URL override it.
    #[arg(long, short, global = true, env = "WORKERS_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the workers' HTTP endpoints until SIGTERM or Ctrl-C.
    Run,
    /// Validate the configuration and exit (0 when valid, 64 when not).
    CheckConfig,
}

/// Runs the parsed command and returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    let config: WorkersConfig = config::load_or_exit("workers", cli.config.as_deref());
    match cli.command {
        Command::CheckConfig => {
            println!("config ok: listening on {}", config.listen);
            0
        }
        Command::Run => {
            tenant_config::runtime::init_logging(&config.log);
            tenant_config::runtime::block_on("workers", run(config))
        }
    }
}

async fn run(config: WorkersConfig) -> i32 {
    let db = match tenant_config::db::pool(&config.database) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("workers: config error: {e}");
            return config::EXIT_BAD_CONFIG;
        }
    };
    let Some(listener) = tenant_config::runtime::bind("workers", &config.listen).await else {
        return 1;
    };
    tracing::info!(listen = %config.listen, "workers serving");
    let served = axum::serve(listener, app(WorkersState { db }))
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
