//! Starts the `router` binary under test with a generated configuration on free ports.
//!
//! ```ignore
//! let r = testkit::router(env!("CARGO_BIN_EXE_router"))
//!     .database(&db.router_url())
//!     .platform(&[a.host_port()])
//!     .start();
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::spawn::{wait_for_port, Spawned};

/// The signing secret every test router uses; the platform side verifies with it.
pub const EDGE_SECRET: &str = "test-edge-secret-0123456789abcdef0123";
/// Base domain of test routers.
pub const BASE_DOMAIN: &str = "platform.test";

/// Builder for a router process.
#[derive(Debug, Clone)]
pub struct RouterBuilder {
    bin: PathBuf,
    database: Option<String>,
    static_tenants: Option<String>,
    platform: Vec<String>,
    workers: Vec<String>,
    settings: Vec<(String, String)>,
}

/// Starts building a router from the binary at `bin` (`env!("CARGO_BIN_EXE_router")`).
pub fn router(bin: &str) -> RouterBuilder {
    RouterBuilder {
        bin: bin.into(),
        database: None,
        static_tenants: None,
        platform: Vec::new(),
        workers: Vec::new(),
        settings: Vec::new(),
    }
}

/// A running router.
pub struct RouterProcess {
    /// The process (killed on drop).
    pub process: Spawned,
    /// Proxy (plain HTTP) port.
    pub port: u16,
    /// Metrics/admin port.
    pub metrics_port: u16,
    /// Generated configuration file.
    pub config: PathBuf,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl RouterBuilder {
    /// Resolve tenants through PostgreSQL at `url` (the router's login role).
    pub fn database(mut self, url: &str) -> Self {
        self.database = Some(url.into());
        self
    }

    /// Resolve tenants from this static tenant file text instead.
    pub fn static_tenants(mut self, toml: &str) -> Self {
        self.static_tenants = Some(toml.into());
        self
    }

    /// Platform instances.
    pub fn platform(mut self, addrs: &[String]) -> Self {
        self.platform = addrs.to_vec();
        self
    }

    /// Workers instances.
    pub fn workers(mut self, addrs: &[String]) -> Self {
        self.workers = addrs.to_vec();
        self
    }

    /// Sets `key = value` (TOML) in `table`, e.g. `.set("cache", "ttl_secs = 1")`; the table
    /// `""` is the top level (`.set("", "trusted_proxies = [\"127.0.0.1\"]")`).
    pub fn set(mut self, table: &str, line: &str) -> Self {
        self.settings.push((table.into(), line.into()));
        self
    }

    fn lines_for(&self, table: &str) -> String {
        self.settings
            .iter()
            .filter(|(t, _)| t == table)
            .map(|(_, l)| format!("{l}\n"))
            .collect()
    }

    /// Writes the configuration, starts the process and waits for its port.
    pub fn start(self) -> RouterProcess {
        let dir = tempfile::tempdir().expect("router temp dir");
        let port = crate::free_port();
        let metrics_port = crate::free_port();
        let list = |v: &[String]| {
            v.iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Top-level keys (`set("", ...)`) come before any table.
        let mut toml = self.lines_for("");
        if let Some(t) = &self.static_tenants {
            let path = dir.path().join("tenants.toml");
            std::fs::write(&path, t).expect("write tenants file");
            toml.push_str(&format!(
                "static_tenants = {:?}\n",
                path.display().to_string()
            ));
        }
        let generated = [
            ("domain", format!("base_domain = {BASE_DOMAIN:?}\nallow_special_use_domains = true\n")),
            ("listen", format!("http = \"127.0.0.1:{port}\"\nmetrics = \"127.0.0.1:{metrics_port}\"\n")),
            ("edge", format!("signing_secret = {EDGE_SECRET:?}\n")),
            (
                "lifecycle",
                format!(
                    "threads = 2\nshutdown_timeout_secs = 5\nupgrade_sock = {:?}\npid_file = {:?}\n",
                    dir.path().join("upgrade.sock").display().to_string(),
                    dir.path().join("router.pid").display().to_string(),
                ),
            ),
            ("log", "format = \"json\"\nlevel = \"info\"\n".to_owned()),
            (
                "database",
                self.database.as_ref().map_or_else(String::new, |url| {
                    format!("url = {url:?}\nconnect_timeout_ms = 500\nmax_connections = 4\n")
                }),
            ),
            (
                "upstreams",
                format!(
                    "platform = [{}]\nworkers = [{}]\nhealth_interval_ms = 200\n",
                    list(&self.platform),
                    list(&self.workers)
                ),
            ),
        ];
        let mut tables: Vec<&str> = generated.iter().map(|(t, _)| *t).collect();
        for (t, _) in &self.settings {
            if !t.is_empty() && !tables.contains(&t.as_str()) {
                tables.push(t);
            }
        }
        for table in tables {
            let base = generated
                .iter()
                .find(|(t, _)| *t == table)
                .map_or("", |(_, b)| b.as_str());
            let body = format!("{base}{}", self.lines_for(table));
            if !body.is_empty() {
                toml.push_str(&format!("[{table}]\n{body}"));
            }
        }
        let config = dir.path().join("router.toml");
        std::fs::write(&config, toml).expect("write router config");
        let process = spawn(&self.bin, &config, dir.path(), false);
        let mut r = RouterProcess {
            process,
            port,
            metrics_port,
            config,
            dir,
            bin: self.bin,
        };
        r.wait_ready();
        r
    }
}

fn spawn(bin: &Path, config: &Path, dir: &Path, upgrade: bool) -> Spawned {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("--config")
        .arg(config)
        .arg("serve");
    if upgrade {
        cmd.arg("--upgrade");
    }
    let log = dir.join(if upgrade {
        "router-upgrade.log"
    } else {
        "router.log"
    });
    Spawned::start(cmd, &log)
}

impl RouterProcess {
    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `http://127.0.0.1:<metrics port><path>`.
    pub fn metrics_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.metrics_port)
    }

    fn wait_ready(&mut self) {
        let up = wait_for_port(self.port, Duration::from_secs(30))
            && wait_for_port(self.metrics_port, Duration::from_secs(10));
        assert!(up, "router did not start:\n{}", self.process.output());
    }

    /// Starts a second process with `serve --upgrade` on the same configuration; it takes the
    /// sockets over once this one receives SIGQUIT.
    pub fn start_upgrade(&self) -> Spawned {
        spawn(&self.bin, &self.config, self.dir.path(), true)
    }

    /// The temporary directory holding config, logs and sockets.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
