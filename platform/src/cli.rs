//! Command line of the `platform` binary.
//!
//! Exit codes: 0 success, 1 runtime failure (for example the database refused a migration),
//! 64 bad configuration or usage (one line on stderr naming the problem).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tenant_config::config::{self, PlatformConfig, EXIT_BAD_CONFIG};
use tenant_config::db::migrate::{DownTo, MigrationState, Migrator};

use crate::state::AppState;

/// Tenant and admin APIs, donations and webhooks for the donation platform.
#[derive(Debug, Parser)]
#[command(name = "platform", version)]
pub struct Cli {
    /// Configuration file (TOML); environment variables such as DATABASE_URL override it.
    #[arg(long, short, global = true, env = "PLATFORM_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP until SIGTERM or Ctrl-C.
    Serve,
    /// Validate the configuration and exit (0 when valid, 64 when not).
    CheckConfig,
    /// Probe this instance's operator listener: exit 0 when `/ready` answers 200 (with
    /// `--live`: `/health`), 1 otherwise. For container HEALTHCHECKs; needs no curl.
    Healthcheck {
        /// Liveness only (`/health`): for runtimes that restart unhealthy containers.
        #[arg(long)]
        live: bool,
    },
    /// Apply, revert or list database migrations (uses database.migration_url).
    Migrate {
        /// Direction.
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Tenants and their staff.
    Tenant {
        /// What to do.
        #[command(subcommand)]
        action: TenantAction,
    },
    /// Platform-admin accounts.
    Admin {
        /// What to do.
        #[command(subcommand)]
        action: AdminAction,
    },
}

/// `tenant` actions.
#[derive(Debug, Subcommand)]
pub enum TenantAction {
    /// Create a tenant (slug rules from tenant-config).
    Create {
        /// Subdomain label.
        #[arg(long)]
        slug: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Plan id.
        #[arg(long, default_value = "starter")]
        plan: String,
    },
    /// Add a staff account to a tenant; the password comes from STAFF_PASSWORD (or _FILE).
    AddStaff {
        /// Tenant slug.
        #[arg(long)]
        slug: String,
        /// Login email.
        #[arg(long)]
        email: String,
        /// owner or staff.
        #[arg(long, default_value = "staff")]
        role: String,
    },
}

/// `admin` actions.
#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Create a platform admin. The password is read from ADMIN_PASSWORD (or ADMIN_PASSWORD_FILE),
    /// never from the command line, where other users could see it.
    CreateUser {
        /// Login email.
        #[arg(long)]
        email: String,
        /// owner, admin or viewer.
        #[arg(long, default_value = "admin")]
        role: String,
    },
}

/// `migrate` actions.
#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the newest migration, or more.
    Down {
        /// How many to revert.
        #[arg(long, default_value_t = 1, conflicts_with = "all")]
        steps: usize,
        /// Revert every migration (drops all tables).
        #[arg(long)]
        all: bool,
    },
    /// List migrations and whether each is applied.
    Status,
}

/// Runs the parsed command and returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    let config: PlatformConfig = config::load_or_exit("platform", cli.config.as_deref());
    if let Command::CheckConfig = cli.command {
        return check_config(&config);
    }
    if let Command::Healthcheck { live } = cli.command {
        return tenant_config::health::healthcheck("platform", &config.operator_listen, live);
    }
    tenant_config::runtime::init_logging(&config.log);
    tenant_config::runtime::block_on("platform", async move {
        match cli.command {
            Command::Serve => serve(config).await,
            Command::Migrate { action } => migrate(&config, action).await,
            Command::Admin { action } => admin(&config, action).await,
            Command::Tenant { action } => tenant(&config, action).await,
            Command::CheckConfig | Command::Healthcheck { .. } => 0,
        }
    })
}

fn check_config(config: &PlatformConfig) -> i32 {
    // Everything `serve` builds (database and Redis targets with their TLS, Stripe client, host
    // rules, DNS resolver), built the same way, so what passes here starts.
    let built = tenant_config::runtime::block_on("platform", async {
        match AppState::from_config(config) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("platform: config error: {e}");
                EXIT_BAD_CONFIG
            }
        }
    });
    if built != 0 {
        return built;
    }
    let migration = config.database.migration_url();
    if let Err(e) = tenant_config::db::tls::PgTarget::parse(migration.expose()) {
        eprintln!("platform: config error: database.migration_url: {e}");
        return EXIT_BAD_CONFIG;
    }
    match config.domain.rules() {
        Ok(rules) => {
            println!(
                "config ok: base domain {}, admin host {}, listening on {}, operator listener {}",
                rules.base(),
                rules.admin(),
                config.listen,
                config.operator_listen
            );
            0
        }
        Err(e) => {
            eprintln!("platform: config error: {e}");
            EXIT_BAD_CONFIG
        }
    }
}

async fn serve(config: PlatformConfig) -> i32 {
    let state = match AppState::from_config(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("platform: config error: {e}");
            return EXIT_BAD_CONFIG;
        }
    };
    let Some(listener) = tenant_config::runtime::bind("platform", &config.listen).await else {
        return 1;
    };
    let Some(operator) = tenant_config::runtime::bind("platform", &config.operator_listen).await
    else {
        return 1;
    };
    tracing::info!(listen = %config.listen, operator = %config.operator_listen, "platform serving");
    // One signal stops both listeners, after the lame-duck period (see `lame_duck`).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let flag = state.lame_duck.clone();
    let delay = std::time::Duration::from_secs(config.drain_delay_secs);
    tokio::spawn(async move {
        crate::lame_duck::shutdown_after_lame_duck(&flag, delay).await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let (public, private) = tokio::join!(
        crate::serve(listener, state.clone(), stopped(stop_rx.clone())),
        crate::operator::serve(operator, state, stopped(stop_rx)),
    );
    match public.and(private) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            1
        }
    }
}

async fn migrate(config: &PlatformConfig, action: MigrateAction) -> i32 {
    let url = config.database.migration_url();
    let mut m = match Migrator::connect(url.expose()).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("platform: {e}");
            return 1;
        }
    };
    let result = match action {
        MigrateAction::Up => m.up().await.map(|steps| {
            for s in &steps {
                println!("applied  {} ({} ms)", s.label, s.elapsed.as_millis());
            }
            println!("up to date: {} migration(s) applied now", steps.len());
        }),
        MigrateAction::Down { steps, all } => {
            let to = if all {
                DownTo::All
            } else {
                DownTo::Steps(steps)
            };
            m.down(to).await.map(|steps| {
                for s in &steps {
                    println!("reverted {} ({} ms)", s.label, s.elapsed.as_millis());
                }
                println!("{} migration(s) reverted", steps.len());
            })
        }
        MigrateAction::Status => m.status().await.map(|lines| {
            for l in &lines {
                let state = match l.state {
                    MigrationState::Applied => "applied",
                    MigrationState::Pending => "pending",
                    MigrationState::Changed => "CHANGED since applied",
                    MigrationState::Unknown => "unknown to this binary",
                };
                println!("{:<32} {state}", l.label);
            }
        }),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("platform: migrate: {e}");
            1
        }
    }
}

async fn admin(config: &PlatformConfig, action: AdminAction) -> i32 {
    use tenant_config::config::Env as _;
    let AdminAction::CreateUser { email, role } = action;
    let password = match tenant_config::config::ProcessEnv.lookup("ADMIN_PASSWORD") {
        Ok(Some(p)) => p,
        Ok(None) => {
            eprintln!("platform: admin create-user: set ADMIN_PASSWORD or ADMIN_PASSWORD_FILE");
            return EXIT_BAD_CONFIG;
        }
        Err(e) => {
            eprintln!("platform: {e}");
            return EXIT_BAD_CONFIG;
        }
    };
    let pool = match tenant_config::db::pool(&config.database) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("platform: {e}");
            return EXIT_BAD_CONFIG;
        }
    };
    match crate::admin::auth::create_admin(&pool, &email, &password, &role).await {
        Ok(id) => {
            println!("created admin {id} ({email}, {role})");
            0
        }
        Err(e) => {
            eprintln!("platform: admin create-user: {e}");
            1
        }
    }
}

async fn tenant(config: &PlatformConfig, action: TenantAction) -> i32 {
    use tenant_config::config::Env as _;
    let pool = match tenant_config::db::pool(&config.database) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("platform: {e}");
            return EXIT_BAD_CONFIG;
        }
    };
    let result = match action {
        TenantAction::Create { slug, name, plan } => {
            crate::admin::tenants::create_tenant(&pool, &slug, &name, &plan, None)
                .await
                .map(|v| format!("created tenant {} ({})", v.id, v.slug))
        }
        TenantAction::AddStaff { slug, email, role } => {
            let password = match tenant_config::config::ProcessEnv.lookup("STAFF_PASSWORD") {
                Ok(Some(p)) => p,
                Ok(None) => {
                    eprintln!(
                        "platform: tenant add-staff: set STAFF_PASSWORD or STAFF_PASSWORD_FILE"
                    );
                    return EXIT_BAD_CONFIG;
                }
                Err(e) => {
                    eprintln!("platform: {e}");
                    return EXIT_BAD_CONFIG;
                }
            };
            crate::tenant::staff::create_staff(&pool, &slug, &email, &password, &role)
                .await
                .map(|id| format!("created staff {id} ({email}, {role}) for {slug}"))
        }
    };
    match result {
        Ok(msg) => {
            println!("{msg}");
            0
        }
        Err(e) => {
            eprintln!("platform: tenant: {e}");
            1
        }
    }
}
