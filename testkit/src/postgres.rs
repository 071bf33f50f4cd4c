//! A throwaway PostgreSQL cluster with a migrated template database.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tenant_config::db::migrate::Migrator;
use tokio_postgres::NoTls;

use crate::process::{is_root, on_exit, pg_bin_dir, pg_command, run, shell_quote};

/// The login roles of `ops/dev/login-roles.sql`, created once per cluster.
const LOGIN_ROLES_SQL: &str = include_str!("../../ops/dev/login-roles.sql");
const TEMPLATE: &str = "testkit_template";

/// A running cluster, shared by the tests of one binary.
#[derive(Debug)]
pub struct PgCluster {
    /// Loopback port.
    pub port: u16,
    /// Data directory.
    pub data_dir: PathBuf,
    bin: PathBuf,
}

impl PgCluster {
    /// URL for `user` on database `db` (trust authentication, no password).
    pub fn url(&self, user: &str, db: &str) -> String {
        format!("postgresql://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the server (fast shutdown), for tests of behaviour while the database is down.
    pub fn stop(&self) {
        let mut c = pg_command(&self.bin.join("pg_ctl"));
        c.arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "stop"]);
        run(c, "pg_ctl stop");
    }

    /// Starts the server again after [`PgCluster::stop`], on the same port.
    pub fn start(&self) {
        let mut c = pg_command(&self.bin.join("pg_ctl"));
        c.arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.data_dir.join("server.log"))
            .args([
                "-w",
                "-t",
                "30",
                "-o",
                &server_options(self.port, &self.data_dir),
            ])
            .arg("start");
        run(c, "pg_ctl start");
    }
}

static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The binary's cluster, started (and its template migrated) on first call.
pub fn postgres() -> &'static PgCluster {
    CLUSTER.get_or_init(|| {
        // Setup needs async (the migration runner) but may be called from inside a test's
        // runtime, where blocking on another runtime panics: do it on a thread of its own.
        std::thread::spawn(start_cluster)
            .join()
            .expect("testkit: PostgreSQL setup panicked")
    })
}

fn server_options(port: u16, data_dir: &Path) -> String {
    format!(
        "-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
        data_dir.display()
    )
}

fn start_cluster() -> PgCluster {
    let bin = pg_bin_dir();
    let root = tempfile::Builder::new()
        .prefix("testkit-pg-")
        .tempdir()
        .expect("testkit: create temp dir")
        .keep();
    let data_dir = root.join("data");
    if is_root() {
        let mut c = Command::new("chown");
        c.args(["-R", "postgres:postgres"]).arg(&root);
        run(c, "chown of the PostgreSQL temp dir");
    }
    let mut init = pg_command(&bin.join("initdb"));
    init.arg("-D").arg(&data_dir).args([
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--no-sync",
    ]);
    run(init, "initdb (is the postgresql package installed?)");

    // Registered before start, so even a failed start is cleaned up.
    let pg_ctl = bin.join("pg_ctl");
    let stop = if is_root() {
        format!(
            "runuser -u postgres -- {} -D {} -m immediate stop",
            shell_quote(&pg_ctl.display().to_string()),
            shell_quote(&data_dir.display().to_string())
        )
    } else {
        format!(
            "{} -D {} -m immediate stop",
            shell_quote(&pg_ctl.display().to_string()),
            shell_quote(&data_dir.display().to_string())
        )
    };
    on_exit(format!(
        "{stop}; rm -rf {}",
        shell_quote(&root.display().to_string())
    ));

    let mut last_err = String::new();
    for _ in 0..5 {
        let port = crate::free_port();
        let cluster = PgCluster {
            port,
            data_dir: data_dir.clone(),
            bin: bin.clone(),
        };
        let mut c = pg_command(&pg_ctl);
        c.arg("-D")
            .arg(&data_dir)
            .arg("-l")
            .arg(data_dir.join("server.log"))
            .args(["-w", "-t", "30", "-o", &server_options(port, &data_dir)])
            .arg("start");
        match c.output() {
            Ok(o) if o.status.success() => {
                build_template(&cluster);
                return cluster;
            }
            Ok(o) => last_err = String::from_utf8_lossy(&o.stderr).into_owned(),
            Err(e) => last_err = e.to_string(),
        }
    }
    panic!("testkit: PostgreSQL did not start: {last_err}");
}

fn build_template(cluster: &PgCluster) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("testkit: runtime");
    rt.block_on(async {
        let admin = connect(&cluster.url("postgres", "postgres")).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {TEMPLATE}"))
            .await
            .expect("testkit: create template database");
        let url = cluster.url("postgres", TEMPLATE);
        let mut m = Migrator::connect(&url)
            .await
            .expect("testkit: connect for migrations");
        m.up().await.expect("testkit: migrations failed");
        drop(m);
        let t = connect(&url).await;
        t.batch_execute(LOGIN_ROLES_SQL)
            .await
            .expect("testkit: create login roles");
    });
    // Dropping the runtime closes every connection, so the template can be copied.
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("testkit: connect {url}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A database of its own for one test, migrated, with the login roles available.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Database name.
    pub name: String,
    /// Cluster port.
    pub port: u16,
}

impl TestDb {
    /// URL for any login role.
    pub fn url_as(&self, user: &str) -> String {
        format!("postgresql://{user}@127.0.0.1:{}/{}", self.port, self.name)
    }

    /// Superuser that owns the schema (what migrations run as).
    pub fn owner_url(&self) -> String {
        self.url_as("postgres")
    }

    /// The platform service's login role (NOINHERIT member of `platform_app` and
    /// `platform_service`).
    pub fn web_url(&self) -> String {
        self.url_as("platform_web")
    }

    /// The router's login role (member of `platform_edge`).
    pub fn router_url(&self) -> String {
        self.url_as("platform_router")
    }

    /// The workers' login role (member of `platform_service`).
    pub fn workers_url(&self) -> String {
        self.url_as("platform_workers")
    }

    /// Opens a connection as `user`; the connection task runs on the caller's runtime.
    pub async fn connect_as(&self, user: &str) -> tokio_postgres::Client {
        connect(&self.url_as(user)).await
    }
}

/// Creates a fresh database for the calling test from the migrated template.
pub async fn database() -> TestDb {
    let cluster = postgres();
    let name = format!(
        "test_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let admin = connect(&cluster.url("postgres", "postgres")).await;
    // Copying a template fails while another session is connected to it (for instance a
    // parallel copy's bookkeeping); retry briefly.
    let mut attempt = 0;
    loop {
        match admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
            .await
        {
            Ok(()) => break,
            Err(e) if attempt < 50 => {
                attempt += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("testkit: create database {name}: {e}"),
        }
    }
    TestDb {
        name,
        port: cluster.port,
    }
}
