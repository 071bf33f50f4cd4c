//! The shared reconnecting `LISTEN` stream against a real PostgreSQL.

#![allow(clippy::unwrap_used)]

use tenant_config::db::listen::{ListenEvent, ListenStream};

#[tokio::test]
async fn notifications_arrive_and_a_lost_session_reconnects() {
    let db = testkit::database().await;
    let config = tenant_config::db::tls::PgTarget::parse(&db.owner_url()).unwrap();
    let mut stream = ListenStream::new(config, &["test_channel"], "test");
    assert_eq!(stream.next().await, ListenEvent::Connected);
    let owner = db.connect_as("postgres").await;
    owner
        .batch_execute("NOTIFY test_channel, 'hello'")
        .await
        .unwrap();
    assert_eq!(
        stream.next().await,
        ListenEvent::Notification {
            channel: "test_channel".into(),
            payload: "hello".into()
        }
    );
    // Ending the listening backend is a lost connection: the stream comes back on its own.
    owner
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE query LIKE 'LISTEN test_channel%'",
        )
        .await
        .unwrap();
    assert_eq!(stream.next().await, ListenEvent::Reconnected);
    owner
        .batch_execute("NOTIFY test_channel, 'again'")
        .await
        .unwrap();
    assert_eq!(
        stream.next().await,
        ListenEvent::Notification {
            channel: "test_channel".into(),
            payload: "again".into()
        }
    );
}
