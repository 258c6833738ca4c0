//! A consumer's timers when its events arrive inline (applied by the
//! publishing connection, not by its driver task): a pull request that
//! expires before the driver's next planned wake still ends on time.

use std::time::Duration;

use futures::StreamExt;
use herald_core::{Broker, Message, Subject};
use herald_store::{ConsumerConfig, CreateAction, Store, StreamConfig, SyncPolicy};

fn config<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> T {
    serde_json::from_value(json).expect("config")
}

#[tokio::test(start_paused = true)]
async fn a_short_pull_request_expires_on_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = Broker::new();
    let store = Store::open(dir.path(), broker.clone(), SyncPolicy::Always).expect("store");
    let stream: StreamConfig = config(serde_json::json!({
        "name": "T", "subjects": ["t.>"], "storage": "memory"
    }));
    store.create_stream(stream).expect("stream");
    let consumer: ConsumerConfig = config(serde_json::json!({
        "durable_name": "c", "ack_policy": "explicit"
    }));
    store
        .create_consumer("T", Some("c"), consumer, CreateAction::Create)
        .expect("consumer");
    // Let the driver plan its next wake (nothing pending: a second from now).
    tokio::time::sleep(Duration::from_millis(10)).await;

    let mut inbox = broker.subscribe("_INBOX.pull").expect("inbox");
    let request = Message::new(
        Subject::new("$JS.API.CONSUMER.MSG.NEXT.T.c").expect("subject"),
        r#"{"batch":1,"expires":100000000}"#,
    )
    .with_reply(Subject::new("_INBOX.pull").expect("inbox"));
    broker.publish_message(&request);

    // Nothing to deliver: the request ends with 408 once its 100 ms are up,
    // not when the driver would next have woken anyway.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let status = tokio::time::timeout(Duration::from_millis(1), inbox.next())
        .await
        .expect("the 408 within its expiry")
        .expect("a message");
    let headers = status.headers.expect("a status");
    assert_eq!(headers.status(), Some(408));
}
