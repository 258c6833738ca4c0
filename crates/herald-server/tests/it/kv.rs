//! Key-Value buckets through async-nats's `kv` module, unmodified, as
//! applications use it: the bucket is a JetStream stream (`KV_<bucket>`)
//! and every call below is the client's own protocol.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::StreamExt;

use crate::common::TestServer;

const WAIT: Duration = Duration::from_secs(10);

async fn bucket(js: &jetstream::Context, name: &str, history: i64) -> kv::Store {
    js.create_key_value(kv::Config {
        bucket: name.into(),
        history,
        ..Default::default()
    })
    .await
    .expect("bucket created")
}

async fn next_entry(watch: &mut kv::Watch) -> kv::Entry {
    tokio::time::timeout(WAIT, watch.next())
        .await
        .expect("watch delivers in time")
        .expect("watch open")
        .expect("entry")
}

#[tokio::test]
async fn put_get_update_create_delete_and_purge() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let kv = bucket(&js, "config", 5).await;

    let r1 = kv.put("db.host", Bytes::from("a")).await.expect("put");
    let r2 = kv.put("db.host", Bytes::from("b")).await.expect("put");
    assert!(r2 > r1);
    assert_eq!(
        kv.get("db.host").await.expect("get"),
        Some(Bytes::from("b"))
    );
    let old = kv
        .entry_for_revision("db.host", r1)
        .await
        .expect("entry by revision")
        .expect("revision kept");
    assert_eq!(old.value, Bytes::from("a"));
    assert_eq!(old.revision, r1);
    assert_eq!(kv.get("missing").await.expect("get"), None);

    // Update only from the current revision.
    let r3 = kv
        .update("db.host", Bytes::from("c"), r2)
        .await
        .expect("update at the current revision");
    let stale = kv.update("db.host", Bytes::from("x"), r2).await;
    assert!(stale.is_err(), "an update from a stale revision is refused");

    // Create only where nothing (or a delete marker) is.
    kv.create("db.port", Bytes::from("5432"))
        .await
        .expect("create a new key");
    let again = kv.create("db.port", Bytes::from("1")).await;
    assert_eq!(
        again.expect_err("exists").kind(),
        kv::CreateErrorKind::AlreadyExists
    );

    kv.delete("db.port").await.expect("delete");
    assert_eq!(kv.get("db.port").await.expect("get"), None);
    let marker = kv.entry("db.port").await.expect("entry").expect("marker");
    assert_eq!(marker.operation, kv::Operation::Delete);
    kv.create("db.port", Bytes::from("6543"))
        .await
        .expect("create over a delete marker");
    assert_eq!(
        kv.get("db.port").await.expect("get"),
        Some(Bytes::from("6543"))
    );

    // A purge rolls the key up to one marker: no history left.
    kv.purge("db.host").await.expect("purge");
    assert_eq!(kv.get("db.host").await.expect("get"), None);
    assert!(
        kv.entry_for_revision("db.host", r3)
            .await
            .expect("entry")
            .is_none(),
        "purged revisions are gone"
    );
    let history: Vec<kv::Entry> = kv
        .history("db.host")
        .await
        .expect("history")
        .map(|e| e.expect("entry"))
        .collect()
        .await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].operation, kv::Operation::Purge);
}

#[tokio::test]
async fn history_keeps_the_configured_number_of_revisions() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let kv = bucket(&js, "hist", 3).await;
    for i in 0..5 {
        kv.put("k", Bytes::from(format!("v{i}")))
            .await
            .expect("put");
    }
    let values: Vec<Bytes> = kv
        .history("k")
        .await
        .expect("history")
        .map(|e| e.expect("entry").value)
        .collect()
        .await;
    assert_eq!(values, vec!["v2", "v3", "v4"]);
    let status = kv.status().await.expect("status");
    assert_eq!(status.history(), 3);
    assert_eq!(status.bucket(), "hist");
}

#[tokio::test]
async fn keys_lists_every_live_key() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let kv = bucket(&js, "many", 2).await;
    for i in 0..300 {
        kv.put(format!("key.{i:03}"), Bytes::from("x"))
            .await
            .expect("put");
    }
    kv.put("key.007", Bytes::from("again")).await.expect("put");
    kv.delete("key.100").await.expect("delete");
    kv.purge("key.200").await.expect("purge");
    let mut keys: Vec<String> = kv
        .keys()
        .await
        .expect("keys")
        .map(|k| k.expect("key"))
        .collect()
        .await;
    keys.sort();
    assert_eq!(keys.len(), 298, "deleted and purged keys are not listed");
    assert!(!keys.contains(&"key.100".to_owned()));
    assert!(!keys.contains(&"key.200".to_owned()));
    assert_eq!(keys[0], "key.000");
}

#[tokio::test]
async fn watch_sees_history_then_changes_in_order() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let kv = bucket(&js, "watched", 1).await;
    kv.put("a", Bytes::from("1")).await.expect("put");
    kv.put("b", Bytes::from("1")).await.expect("put");

    let mut all = kv.watch_with_history(">").await.expect("watch all");
    let first = next_entry(&mut all).await;
    let second = next_entry(&mut all).await;
    assert_eq!((first.key.as_str(), second.key.as_str()), ("a", "b"));
    assert!(second.seen_current, "the last historical entry is current");

    let mut only_a = kv.watch("a").await.expect("watch a");
    kv.put("b", Bytes::from("2")).await.expect("put");
    kv.put("a", Bytes::from("2")).await.expect("put");
    kv.delete("a").await.expect("delete");

    let e = next_entry(&mut only_a).await;
    assert_eq!((e.key.as_str(), &e.value[..]), ("a", &b"2"[..]));
    let e = next_entry(&mut only_a).await;
    assert_eq!(e.operation, kv::Operation::Delete);

    let seen: Vec<(String, kv::Operation)> = [
        next_entry(&mut all).await,
        next_entry(&mut all).await,
        next_entry(&mut all).await,
    ]
    .into_iter()
    .map(|e| (e.key, e.operation))
    .collect();
    assert_eq!(
        seen,
        vec![
            ("b".to_owned(), kv::Operation::Put),
            ("a".to_owned(), kv::Operation::Put),
            ("a".to_owned(), kv::Operation::Delete),
        ]
    );
}

#[tokio::test]
async fn buckets_survive_a_restart_and_can_be_deleted() {
    let server = TestServer::start().await;
    {
        let js = jetstream::new(server.client().await);
        let kv = bucket(&js, "durable", 2).await;
        kv.put("k", Bytes::from("one")).await.expect("put");
        kv.put("k", Bytes::from("two")).await.expect("put");
        kv.purge("gone").await.expect("purge of a missing key");
    }
    let server = server.restart().await;
    let js = jetstream::new(server.client().await);
    let kv = js
        .get_key_value("durable")
        .await
        .expect("bucket after restart");
    assert_eq!(kv.get("k").await.expect("get"), Some(Bytes::from("two")));
    js.delete_key_value("durable").await.expect("delete bucket");
    assert!(js.get_key_value("durable").await.is_err());
}

#[tokio::test]
async fn rollup_headers_need_the_stream_to_allow_them() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    js.create_stream(jetstream::stream::Config {
        name: "PLAIN".into(),
        subjects: vec!["plain.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Rollup", "sub");
    let refused = js
        .publish_with_headers("plain.a", headers, Bytes::from("x"))
        .await
        .expect("sent")
        .await
        .expect_err("refused");
    assert!(
        refused.to_string().contains("rollup not permitted"),
        "{refused}"
    );

    let refused = js
        .create_stream(jetstream::stream::Config {
            name: "BOTH".into(),
            subjects: vec!["both.>".into()],
            allow_rollup: true,
            deny_purge: true,
            ..Default::default()
        })
        .await
        .expect_err("rollups need purges");
    assert!(
        refused
            .to_string()
            .contains("roll-ups require the purge permission")
    );

    js.create_stream(jetstream::stream::Config {
        name: "ROLL".into(),
        subjects: vec!["roll.>".into()],
        allow_rollup: true,
        ..Default::default()
    })
    .await
    .expect("stream");
    for s in ["roll.a", "roll.a", "roll.b"] {
        js.publish(s, Bytes::from("x"))
            .await
            .expect("sent")
            .await
            .expect("acked");
    }
    let mut all = async_nats::HeaderMap::new();
    all.insert("Nats-Rollup", "all");
    js.publish_with_headers("roll.c", all, Bytes::from("only"))
        .await
        .expect("sent")
        .await
        .expect("acked");
    let mut stream = js.get_stream("ROLL").await.expect("stream");
    let info = stream.info().await.expect("info");
    assert_eq!(info.state.messages, 1, "a rollup of all keeps only itself");
    assert_eq!(info.state.first_sequence, 4);
    let mut bad = async_nats::HeaderMap::new();
    bad.insert("Nats-Rollup", "some");
    let refused = js
        .publish_with_headers("roll.c", bad, Bytes::from("x"))
        .await
        .expect("sent")
        .await
        .expect_err("refused");
    assert!(
        refused.to_string().contains("rollup value invalid"),
        "{refused}"
    );
}
