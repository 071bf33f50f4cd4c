//! Command line of the `workers` binary.
//!
//! Exit codes: 0 success; 1 runtime failure (for `trigger`: the run failed, so a Kubernetes
//! Job, a systemd timer or EventBridge sees a failure and may retry; for `healthcheck`: not
//! ready); 3 `trigger` found the job already running (nothing done, safe to ignore); 64 bad
//! configuration or usage (unknown job name).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tenant_config::config::{self, WorkersConfig};

use crate::context::Ctx;
use crate::cron::{CronError, CronJob, Trigger};
use crate::http::{app, WorkersState};

/// Exit code of `trigger` when another run of the job is in progress.
pub const EXIT_ALREADY_RUNNING: i32 = 3;

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
    /// Serve `/api/cron/*`, run queue consumers and (if leader) the cron scheduler until SIGTERM.
    Run,
    /// Run one cron job now and exit: for EventBridge Scheduler, Kubernetes CronJob, systemd
    /// timers. Exit 0 done, 1 failed, 3 already running elsewhere.
    Trigger {
        /// process-emails, process-donations, cleanup-sessions or generate-reports.
        job: String,
    },
    /// Validate the configuration and exit (0 when valid, 64 when not).
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
    let config: WorkersConfig = config::load_or_exit("workers", cli.config.as_deref());
    match cli.command {
        Command::Healthcheck { live } => {
            tenant_config::health::healthcheck("workers", &config.operator_listen, live)
        }
        Command::CheckConfig => {
            // Everything `run` builds (database target, mail transport, Stripe client, host
            // rules), built the same way, so what passes here starts.
            let built = tenant_config::runtime::block_on("workers", async {
                match crate::context::Ctx::from_config(&config) {
                    Ok(_) => 0,
                    Err(e) => {
                        eprintln!("workers: config error: {e}");
                        config::EXIT_BAD_CONFIG
                    }
                }
            });
            if built == 0 {
                println!(
                    "config ok: listening on {}, operator listener {}",
                    config.listen, config.operator_listen
                );
            }
            built
        }
        Command::Run => {
            tenant_config::runtime::init_logging(&config.log);
            tenant_config::runtime::block_on("workers", run(config))
        }
        Command::Trigger { job } => {
            let Some(job) = CronJob::from_name(&job) else {
                let names: Vec<&str> = crate::cron::ALL.iter().map(|j| j.name()).collect();
                eprintln!(
                    "workers: unknown job {job:?} (one of: {})",
                    names.join(", ")
                );
                return config::EXIT_BAD_CONFIG;
            };
            tenant_config::runtime::init_logging(&config.log);
            tenant_config::runtime::block_on("workers", trigger(config, job))
        }
    }
}

fn context(config: &WorkersConfig) -> Result<Ctx, i32> {
    Ctx::from_config(config).map_err(|e| {
        eprintln!("workers: config error: {e}");
        config::EXIT_BAD_CONFIG
    })
}

async fn trigger(config: WorkersConfig, job: CronJob) -> i32 {
    let ctx = match context(&config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match crate::cron::run(&ctx, job, Trigger::Cli, None).await {
        Ok(r) => {
            println!("{} run {} succeeded: {}", job.name(), r.run_id, r.counts);
            0
        }
        Err(CronError::AlreadyRunning(name)) => {
            println!("{name} is already running; nothing done");
            EXIT_ALREADY_RUNNING
        }
        Err(e) => {
            eprintln!("workers: {} {e}", job.name());
            1
        }
    }
}

async fn run(config: WorkersConfig) -> i32 {
    let ctx = match context(&config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(listener) = tenant_config::runtime::bind("workers", &config.listen).await else {
        return 1;
    };
    let Some(operator) = tenant_config::runtime::bind("workers", &config.operator_listen).await
    else {
        return 1;
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let consumers = tokio::spawn(crate::consumer::run(ctx.clone(), stop_rx.clone()));
    let scheduler = config
        .queue
        .scheduler
        .then(|| tokio::spawn(crate::cron::scheduler(ctx.clone(), stop_rx.clone())));
    tracing::info!(listen = %config.listen, operator = %config.operator_listen, worker = %ctx.worker_id, "workers running");
    let state = WorkersState {
        ctx,
        cron_secret: std::sync::Arc::new(config.cron_secret.expose().to_owned()),
        started: std::time::Instant::now(),
    };
    // The operator listener stops with the public one: on the same stop signal.
    let mut operator_stop = stop_rx.clone();
    let operator_app = crate::operator::app(state.clone());
    let operator_served = tokio::spawn(async move {
        axum::serve(operator, operator_app)
            .with_graceful_shutdown(async move {
                let _ = operator_stop.wait_for(|stop| *stop).await;
            })
            .await
    });
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            tenant_config::runtime::shutdown_signal().await;
            let _ = stop_tx.send(true);
        })
        .await;
    let served = match operator_served.await {
        Ok(Err(e)) if served.is_ok() => Err(e),
        _ => served,
    };
    let _ = consumers.await;
    if let Some(s) = scheduler {
        s.abort();
    }
    tenant_config::runtime::flush_logs();
    match served {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            1
        }
    }
}
