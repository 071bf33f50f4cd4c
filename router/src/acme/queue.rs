//! The issuance queue: bounded and deduplicated, so a burst of handshakes for one new name
//! queues it once, and a flood of names cannot grow memory. Dropped names are not lost: the
//! periodic scan finds every verified name without a certificate again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// Why a name is queued (the `kind` label of order metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A domain was verified, or the scan found it without a certificate.
    New,
    /// A handshake arrived for a verified name with no certificate.
    Handshake,
    /// The certificate is due for renewal (ARI window, two thirds of its life, or a chain
    /// that no longer verifies).
    Renewal,
}

/// The sending side, cheap to clone.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::Sender<(String, Reason)>,
    queued: Arc<Mutex<HashSet<String>>>,
}

/// The receiving side, for the workers.
pub struct Receiver {
    rx: mpsc::Receiver<(String, Reason)>,
    queued: Arc<Mutex<HashSet<String>>>,
}

/// A queue holding at most `capacity` names.
pub fn queue(capacity: usize) -> (Queue, Receiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let queued = Arc::new(Mutex::new(HashSet::new()));
    (
        Queue {
            tx,
            queued: queued.clone(),
        },
        Receiver { rx, queued },
    )
}

impl Queue {
    /// Queues `name` unless it is already waiting or the queue is full; never waits.
    /// Returns whether it was queued.
    pub fn push(&self, name: &str, reason: Reason) -> bool {
        let Ok(mut queued) = self.queued.lock() else {
            return false;
        };
        if queued.contains(name) {
            return false;
        }
        match self.tx.try_send((name.to_owned(), reason)) {
            Ok(()) => {
                queued.insert(name.to_owned());
                true
            }
            Err(_) => {
                metrics::counter!("router_acme_queue_dropped_total").increment(1);
                false
            }
        }
    }
}

impl Receiver {
    /// The next name; `None` once every sender is gone. The name may be queued again as soon
    /// as it is handed out.
    pub async fn next(&mut self) -> Option<(String, Reason)> {
        let item = self.rx.recv().await?;
        if let Ok(mut queued) = self.queued.lock() {
            queued.remove(&item.0);
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deduplicates_and_bounds() {
        let (q, mut rx) = queue(2);
        assert!(q.push("a.example", Reason::Handshake));
        assert!(!q.push("a.example", Reason::Handshake), "already waiting");
        assert!(q.push("b.example", Reason::New));
        assert!(!q.push("c.example", Reason::New), "full");
        assert_eq!(rx.next().await.unwrap().0, "a.example");
        assert!(
            q.push("a.example", Reason::Renewal),
            "handed out: may queue again"
        );
        assert_eq!(rx.next().await.unwrap().0, "b.example");
        assert_eq!(
            rx.next().await.unwrap(),
            ("a.example".into(), Reason::Renewal)
        );
    }
}
