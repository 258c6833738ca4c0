//! Consumers through the store's public API: a pull request that expires
//! before the driver's next planned wake still ends on time (events arrive
//! inline, applied by the publishing connection, not by the driver), and a
//! redelivery whose message is gone frees its place under
//! `max_ack_pending`; deleting an interest stream's consumer drops what no
//! consumer left wants.

use std::time::Duration;

use futures::StreamExt;
use herald_core::{Broker, Message, Subject};
use herald_store::{ConsumerConfig, CreateAction, Store, StreamConfig, SyncPolicy};

fn config<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> T {
    serde_json::from_value(json).expect("config")
}

/// A store in a temporary directory with a memory stream `T` on `t.>`.
fn store_with_stream() -> (tempfile::TempDir, Broker, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = Broker::new();
    let store = Store::open(dir.path(), broker.clone(), SyncPolicy::Always).expect("store");
    let stream: StreamConfig = config(serde_json::json!({
        "name": "T", "subjects": ["t.>"], "storage": "memory"
    }));
    store.create_stream(stream).expect("stream");
    (dir, broker, store)
}

#[tokio::test(start_paused = true)]
async fn a_short_pull_request_expires_on_time() {
    let (_dir, broker, store) = store_with_stream();
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

/// A pull request for one message on `inbox`; returns what arrives.
async fn pull_one(broker: &Broker, inbox: &mut herald_core::Subscription) -> Message {
    let request = Message::new(
        Subject::new("$JS.API.CONSUMER.MSG.NEXT.T.c").expect("subject"),
        r#"{"batch":1,"expires":5000000000}"#,
    )
    .with_reply(Subject::new("_INBOX.pull").expect("inbox"));
    broker.publish_message(&request);
    tokio::time::timeout(Duration::from_secs(10), inbox.next())
        .await
        .expect("a message in time")
        .expect("a message")
}

#[tokio::test]
async fn a_redelivery_whose_message_is_gone_frees_its_place() {
    let (_dir, broker, store) = store_with_stream();
    let handle = store.stream("T").expect("stream handle");
    for body in ["one", "two"] {
        handle
            .publish(Message::new(Subject::new("t.x").expect("subject"), body))
            .await
            .expect("stored");
    }
    let consumer: ConsumerConfig = config(serde_json::json!({
        "durable_name": "c", "ack_policy": "explicit", "max_ack_pending": 1
    }));
    store
        .create_consumer("T", Some("c"), consumer, CreateAction::Create)
        .expect("consumer");
    let mut inbox = broker.subscribe("_INBOX.pull").expect("inbox");
    let first = pull_one(&broker, &mut inbox).await;
    assert_eq!(first.payload, "one");
    // Not now: it waits for redelivery, holding the only place.
    let nak = Message::new(first.reply.expect("ack subject"), "-NAK");
    broker.publish_message(&nak);
    // Then it is deleted from the stream: the place is free again.
    handle.delete_message(1).expect("deleted");
    let second = pull_one(&broker, &mut inbox).await;
    assert_eq!(second.payload, "two");
    let info = store.consumer("T", "c").expect("consumer").info();
    assert_eq!(info.num_ack_pending, 1, "only the second is pending");
}

#[tokio::test]
async fn deleting_a_consumer_drops_what_no_one_left_wants() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), Broker::new(), SyncPolicy::Always).expect("store");
    let stream: StreamConfig = config(serde_json::json!({
        "name": "I", "subjects": ["i.>"], "retention": "interest"
    }));
    store.create_stream(stream).expect("stream");
    for name in ["all", "odd"] {
        let filter = if name == "odd" { "i.odd" } else { "i.>" };
        let consumer: ConsumerConfig = config(serde_json::json!({
            "durable_name": name, "ack_policy": "explicit", "filter_subject": filter
        }));
        store
            .create_consumer("I", Some(name), consumer, CreateAction::Create)
            .expect("consumer");
    }
    let handle = store.stream("I").expect("stream");
    for subject in ["i.odd", "i.even", "i.odd"] {
        handle
            .publish(Message::new(Subject::new(subject).expect("subject"), "x"))
            .await
            .expect("stored");
    }
    assert_eq!(handle.state().messages, 3);
    // Without "all", the even one is wanted by no one; "odd" still wants 1 and 3.
    store.delete_consumer("I", "all").expect("deleted");
    assert_eq!(handle.state().messages, 2);
    store.delete_consumer("I", "odd").expect("deleted");
    assert_eq!(handle.state().messages, 0);
}
