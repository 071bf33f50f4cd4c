//! A `LISTEN` session that survives its connection: the one place that keeps a dedicated
//! PostgreSQL session open for notifications and reconnects it with backoff.
//!
//! Used by the router (tenant cache invalidation), the workers (queue wake-ups) and, next, the
//! certificate store. Notifications sent while the session was down are lost, so every
//! reconnect is reported as [`ListenEvent::Reconnected`]: the caller decides what a gap means
//! (drop a cache, poll once).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client};

use super::tls::PgTarget;

/// First wait after a failed or lost connection; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What [`ListenStream::next`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenEvent {
    /// The first session is listening.
    Connected,
    /// A later session is listening; notifications may have been missed in between.
    Reconnected,
    /// A notification arrived.
    Notification {
        /// The channel it was sent on.
        channel: String,
        /// Its payload (may be empty).
        payload: String,
    },
}

/// One live session: the client (dropping it closes the connection) and the task that drives
/// the connection and forwards its notifications.
struct Session {
    _client: Client,
    notifications: mpsc::UnboundedReceiver<(String, String)>,
    pump: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

/// Notifications from `channels`, across reconnects. Needs a Tokio runtime (the connection is
/// driven by a spawned task).
pub struct ListenStream {
    config: PgTarget,
    channels: Vec<String>,
    name: &'static str,
    session: Option<Session>,
    connected_before: bool,
    backoff: Duration,
}

impl ListenStream {
    /// A stream for `channels` (plain identifiers, e.g. `tenant_changed`) on the database
    /// `config` names. Nothing connects before the first [`ListenStream::next`]. `name` labels
    /// the log lines.
    pub fn new(config: PgTarget, channels: &[&str], name: &'static str) -> Self {
        Self {
            config,
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
            name,
            session: None,
            connected_before: false,
            backoff: MIN_BACKOFF,
        }
    }

    /// The next event. Waits (with backoff) while the database cannot be reached; never ends.
    /// Cancel-safe: dropping the future loses no notification that was already received.
    pub async fn next(&mut self) -> ListenEvent {
        loop {
            match &mut self.session {
                Some(session) => match session.notifications.recv().await {
                    Some((channel, payload)) => {
                        return ListenEvent::Notification { channel, payload }
                    }
                    None => {
                        tracing::warn!(listener = self.name, "LISTEN session lost");
                        self.session = None;
                        self.pause().await;
                    }
                },
                None => match self.connect().await {
                    Ok(session) => {
                        self.session = Some(session);
                        self.backoff = MIN_BACKOFF;
                        tracing::info!(listener = self.name, channels = ?self.channels, "listening");
                        let again = std::mem::replace(&mut self.connected_before, true);
                        return if again {
                            ListenEvent::Reconnected
                        } else {
                            ListenEvent::Connected
                        };
                    }
                    Err(e) => {
                        tracing::warn!(listener = self.name, error = %e, "LISTEN session cannot start");
                        self.pause().await;
                    }
                },
            }
        }
    }

    async fn pause(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    async fn connect(&self) -> Result<Session, tokio_postgres::Error> {
        let (client, mut conn) = self.config.config.connect(self.config.tls.clone()).await?;
        let (tx, notifications) = mpsc::unbounded_channel();
        let name = self.name;
        let pump = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if tx
                            .send((n.channel().to_owned(), n.payload().to_owned()))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(listener = name, error = %e, "LISTEN connection failed");
                        return;
                    }
                    None => return,
                }
            }
        });
        // Dropping the session on an error below aborts the pump.
        let session = Session {
            _client: client,
            notifications,
            pump,
        };
        let listen: String = self
            .channels
            .iter()
            .map(|c| format!("LISTEN {c};"))
            .collect();
        session._client.batch_execute(&listen).await?;
        Ok(session)
    }
}
