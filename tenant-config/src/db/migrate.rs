//! The migration runner behind `platform migrate up|down|status`.
//!
//! Migrations are embedded at build time (see `build.rs`). Each runs in its own transaction
//! together with its bookkeeping row, so a failed migration leaves nothing half-applied. A
//! session-level advisory lock serialises runners: when several instances start at once, one
//! migrates and the others wait, then find nothing left to do.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

/// One numbered migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Sequence number, from 1 without gaps.
    pub version: i64,
    /// The `name` part of `NNNN_name.up.sql`.
    pub name: &'static str,
    /// SQL applying the change.
    pub up: &'static str,
    /// SQL reverting it.
    pub down: &'static str,
}

impl Migration {
    /// SHA-256 of the up script, stored when applied so later edits are detected.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.up.as_bytes()))
    }

    /// `NNNN_name`, as in the file name.
    pub fn label(&self) -> String {
        format!("{:04}_{}", self.version, self.name)
    }
}

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Arbitrary but fixed key for `pg_advisory_lock`, shared by every runner of this schema.
const LOCK_KEY: i64 = 0x005e_edd0_7a71_0001;

/// Migration failures, each naming the migration involved.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The URL (or its TLS settings) cannot be used.
    #[error("database URL: {0}")]
    Url(String),
    /// Connecting failed.
    #[error("cannot connect to the database: {0}")]
    Connect(tokio_postgres::Error),
    /// A statement failed.
    #[error("{context}: {source}")]
    Sql {
        /// What was being done.
        context: String,
        /// The database error.
        source: tokio_postgres::Error,
    },
    /// An applied migration's script differs from the embedded one.
    #[error("migration {0} was changed after it was applied (checksum mismatch); add a new migration instead")]
    Checksum(String),
    /// The database has migrations this binary does not know, so rolling back is unsafe.
    #[error("database is at version {db}, newer than this binary's {binary}; use a newer binary")]
    Newer {
        /// Highest version in the database.
        db: i64,
        /// Highest version embedded.
        binary: i64,
    },
}

fn sql(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> MigrateError {
    let context = context.into();
    move |source| MigrateError::Sql { context, source }
}

/// Something a run did, for the report printed by the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Which migration.
    pub label: String,
    /// How long it took.
    pub elapsed: Duration,
}

/// One line of `migrate status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    /// `NNNN_name`.
    pub label: String,
    /// Applied, pending, changed since applied, or unknown to this binary.
    pub state: MigrationState,
}

/// State of one migration in a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationState {
    /// Applied with the embedded script.
    Applied,
    /// Not applied yet.
    Pending,
    /// Applied, but the embedded script now differs.
    Changed,
    /// Applied by a newer binary.
    Unknown,
}

/// Which script of a migration runs.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Up,
    Down,
}

/// How far `down` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownTo {
    /// Revert this many of the newest migrations.
    Steps(usize),
    /// Revert everything.
    All,
}

/// Runs migrations against one database over a dedicated connection.
pub struct Migrator {
    client: Client,
    migrations: &'static [Migration],
}

impl Migrator {
    /// Connects with the owner role's URL (any role that can read `schema_migrations` is
    /// enough for [`Migrator::status`] and [`Migrator::pending`]).
    pub async fn connect(url: &str) -> Result<Self, MigrateError> {
        let target = super::tls::PgTarget::parse(url).map_err(MigrateError::Url)?;
        let (client, conn) = target
            .config
            .connect(target.tls.clone())
            .await
            .map_err(MigrateError::Connect)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "migration connection closed with an error");
            }
        });
        Ok(Self {
            client,
            migrations: EMBEDDED,
        })
    }

    /// Applies every pending migration in order and returns what was applied.
    pub async fn up(&mut self) -> Result<Vec<Step>, MigrateError> {
        self.lock().await?;
        let result = self.up_inner().await;
        self.unlock().await;
        result
    }

    /// Reverts migrations, newest first, and returns what was reverted.
    pub async fn down(&mut self, to: DownTo) -> Result<Vec<Step>, MigrateError> {
        self.lock().await?;
        let result = self.down_inner(to).await;
        self.unlock().await;
        result
    }

    /// Every embedded or applied migration with its state.
    pub async fn status(&mut self) -> Result<Vec<StatusLine>, MigrateError> {
        let applied = self.applied().await?;
        let mut lines: Vec<StatusLine> = self
            .migrations
            .iter()
            .map(|m| {
                let state = match applied.iter().find(|(v, _)| *v == m.version) {
                    None => MigrationState::Pending,
                    Some((_, sum)) if *sum == m.checksum() => MigrationState::Applied,
                    Some(_) => MigrationState::Changed,
                };
                StatusLine {
                    label: m.label(),
                    state,
                }
            })
            .collect();
        for (v, _) in applied {
            if !self.migrations.iter().any(|m| m.version == v) {
                lines.push(StatusLine {
                    label: format!("{v:04}_(unknown)"),
                    state: MigrationState::Unknown,
                });
            }
        }
        Ok(lines)
    }

    /// Number of embedded migrations not yet applied; `/ready` is false while this is non-zero.
    pub async fn pending(&mut self) -> Result<usize, MigrateError> {
        Ok(self
            .status()
            .await?
            .iter()
            .filter(|l| l.state == MigrationState::Pending)
            .count())
    }

    async fn lock(&self) -> Result<(), MigrateError> {
        self.client
            .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(sql("taking the migration lock"))?;
        Ok(())
    }

    async fn ensure_table(&self) -> Result<(), MigrateError> {
        // Checked first so repeated runs do not log "already exists" notices.
        let exists: bool = self
            .client
            .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
            .await
            .map_err(sql("looking for schema_migrations"))?
            .get(0);
        if exists {
            return Ok(());
        }
        self.client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version    bigint PRIMARY KEY,
                     name       text NOT NULL,
                     checksum   text NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )",
            )
            .await
            .map_err(sql("creating schema_migrations"))
    }

    /// Applied versions with their checksums; empty when the bookkeeping table does not exist,
    /// so read-only callers (status, readiness) never need to create it.
    async fn applied(&self) -> Result<Vec<(i64, String)>, MigrateError> {
        let exists: bool = self
            .client
            .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
            .await
            .map_err(sql("looking for schema_migrations"))?
            .get(0);
        if !exists {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                "SELECT version, checksum FROM schema_migrations ORDER BY version",
                &[],
            )
            .await
            .map_err(sql("reading schema_migrations"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn up_inner(&mut self) -> Result<Vec<Step>, MigrateError> {
        self.ensure_table().await?;
        let applied = self.applied().await?;
        for (v, sum) in &applied {
            if let Some(m) = self.migrations.iter().find(|m| m.version == *v) {
                if *sum != m.checksum() {
                    return Err(MigrateError::Checksum(m.label()));
                }
            }
        }
        let mut steps = Vec::new();
        for m in self.migrations {
            if applied.iter().any(|(v, _)| *v == m.version) {
                continue;
            }
            steps.push(self.step(m, Direction::Up).await?);
        }
        Ok(steps)
    }

    async fn down_inner(&mut self, to: DownTo) -> Result<Vec<Step>, MigrateError> {
        self.ensure_table().await?;
        let applied = self.applied().await?;
        let newest_known = self.migrations.last().map_or(0, |m| m.version);
        if let Some((v, _)) = applied.last() {
            if *v > newest_known {
                return Err(MigrateError::Newer {
                    db: *v,
                    binary: newest_known,
                });
            }
        }
        let count = match to {
            DownTo::All => applied.len(),
            DownTo::Steps(n) => n.min(applied.len()),
        };
        let mut steps = Vec::new();
        for (v, _) in applied.iter().rev().take(count) {
            let Some(m) = self.migrations.iter().find(|m| m.version == *v) else {
                continue;
            };
            steps.push(self.step(m, Direction::Down).await?);
        }
        Ok(steps)
    }

    /// Applies or reverts one migration together with its bookkeeping row, in one transaction.
    async fn step(&mut self, m: &Migration, dir: Direction) -> Result<Step, MigrateError> {
        let start = Instant::now();
        let (verb, script) = match dir {
            Direction::Up => ("applying", m.up),
            Direction::Down => ("reverting", m.down),
        };
        let what = |doing: &str| format!("{doing} {} ({verb})", m.label());
        let checksum = m.checksum();
        let tx = self
            .client
            .transaction()
            .await
            .map_err(sql(what("beginning")))?;
        tx.batch_execute(script)
            .await
            .map_err(sql(what("running")))?;
        let (record, params): (&str, Vec<&(dyn tokio_postgres::types::ToSql + Sync)>) = match dir {
            Direction::Up => (
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                vec![&m.version, &m.name, &checksum],
            ),
            Direction::Down => (
                "DELETE FROM schema_migrations WHERE version = $1",
                vec![&m.version],
            ),
        };
        tx.execute(record, &params)
            .await
            .map_err(sql(what("recording")))?;
        tx.commit().await.map_err(sql(what("committing")))?;
        Ok(Step {
            label: m.label(),
            elapsed: start.elapsed(),
        })
    }

    async fn unlock(&self) {
        // If this fails the connection is gone, and the lock went with the session.
        let _ = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
            .await;
    }
}

/// Embedded migrations not yet applied, read through any client or transaction whose role can
/// select from `schema_migrations` (readiness probes use this instead of a [`Migrator`]).
pub async fn pending_versions(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Vec<i64>, tokio_postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    let applied: Vec<i64> = if exists {
        client
            .query("SELECT version FROM schema_migrations", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
    } else {
        Vec::new()
    };
    Ok(EMBEDDED
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_migrations_are_numbered_and_paired() {
        assert!(!EMBEDDED.is_empty());
        for (i, m) in EMBEDDED.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
            assert!(
                !m.up.trim().is_empty() && !m.down.trim().is_empty(),
                "{}",
                m.label()
            );
        }
    }
}
