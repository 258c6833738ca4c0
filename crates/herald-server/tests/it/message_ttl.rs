//! Per-message TTL (`Nats-TTL`) and subject delete markers, through
//! async-nats's JetStream and KV APIs.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;

use crate::common::TestServer;

/// Long enough for any expiry below to have happened many times over.
const PATIENCE: Duration = Duration::from_secs(20);

fn ttl(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("Nats-TTL", value);
    h
}

async fn ttl_stream(js: &jetstream::Context, name: &str, config: stream::Config) -> stream::Stream {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![format!("{}.>", name.to_lowercase())],
        allow_message_ttl: true,
        ..config
    })
    .await
    .expect("stream")
}

/// Waits until `check` holds; panics after `PATIENCE`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn messages(s: &mut stream::Stream) -> u64 {
    s.info().await.expect("info").state.messages
}

#[tokio::test]
async fn a_message_with_a_ttl_goes_when_it_runs_out() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let s = ttl_stream(&js, "EPHEMERAL", stream::Config::default()).await;
    js.publish_with_headers("ephemeral.short", ttl("1s"), Bytes::from("x"))
        .await
        .expect("sent")
        .await
        .expect("acked");
    js.publish_with_headers("ephemeral.long", ttl("1h"), Bytes::from("y"))
        .await
        .expect("sent")
        .await
        .expect("acked");
    js.publish("ephemeral.plain", Bytes::from("z"))
        .await
        .expect("sent")
        .await
        .expect("acked");
    let stored = s.get_raw_message(1).await.expect("still there");
    assert_eq!(
        stored.headers.get("Nats-TTL").map(|v| v.as_str()),
        Some("1s"),
        "the header is kept"
    );
    eventually("the 1s message expires", || {
        let mut s = s.clone();
        async move { messages(&mut s).await == 2 }
    })
    .await;
    assert!(s.get_raw_message(1).await.is_err());
    assert!(s.get_raw_message(2).await.is_ok(), "the 1h message stays");
}

#[tokio::test]
async fn ttl_headers_are_refused_where_not_allowed_or_invalid() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    js.create_stream(stream::Config {
        name: "PLAIN".into(),
        subjects: vec!["plain.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    let refused = js
        .publish_with_headers("plain.a", ttl("5s"), Bytes::from("x"))
        .await
        .expect("sent")
        .await
        .expect_err("refused");
    assert!(
        refused.to_string().contains("per-message TTL is disabled"),
        "{refused}"
    );

    ttl_stream(&js, "TTL", stream::Config::default()).await;
    for bad in ["500ms", "soon", "-3"] {
        let refused = js
            .publish_with_headers("ttl.a", ttl(bad), Bytes::from("x"))
            .await
            .expect("sent")
            .await
            .expect_err("refused");
        assert!(
            refused.to_string().contains("invalid per-message TTL"),
            "{bad}: {refused}"
        );
    }
}

#[tokio::test]
async fn never_outlives_max_age_and_ttls_survive_a_restart() {
    let server = TestServer::start().await;
    {
        let js = jetstream::new(server.client().await);
        ttl_stream(
            &js,
            "AGED",
            stream::Config {
                max_age: Duration::from_secs(1),
                ..Default::default()
            },
        )
        .await;
        js.publish_with_headers("aged.keep", ttl("never"), Bytes::from("forever"))
            .await
            .expect("sent")
            .await
            .expect("acked");
        js.create_stream(stream::Config {
            name: "LATER".into(),
            subjects: vec!["later.>".into()],
            allow_message_ttl: true,
            ..Default::default()
        })
        .await
        .expect("stream");
        js.publish_with_headers("later.a", ttl("2s"), Bytes::from("x"))
            .await
            .expect("sent")
            .await
            .expect("acked");
        js.publish("aged.drop", Bytes::from("old"))
            .await
            .expect("sent")
            .await
            .expect("acked");
    }
    let server = server.restart().await;
    let js = jetstream::new(server.client().await);
    let mut aged = js.get_stream("AGED").await.expect("stream");
    eventually("max_age removes the plain message", || {
        let mut s = aged.clone();
        async move { messages(&mut s).await == 1 }
    })
    .await;
    let kept = aged.get_raw_message(1).await.expect("never expires");
    assert_eq!(kept.payload, Bytes::from("forever"));
    let later = js.get_stream("LATER").await.expect("stream");
    eventually("the TTL read back after the restart runs out", || {
        let mut s = later.clone();
        async move { messages(&mut s).await == 0 }
    })
    .await;
    let _ = &mut aged;
}

#[tokio::test]
async fn a_subject_that_ages_out_leaves_a_marker_that_goes_too() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let s = ttl_stream(
        &js,
        "MARKED",
        stream::Config {
            max_age: Duration::from_secs(1),
            subject_delete_marker_ttl: Some(Duration::from_secs(1)),
            ..Default::default()
        },
    )
    .await;
    js.publish("marked.a", Bytes::from("x"))
        .await
        .expect("sent")
        .await
        .expect("acked");
    eventually("a marker replaces the aged-out message", || {
        let s = s.clone();
        async move {
            s.get_last_raw_message_by_subject("marked.a")
                .await
                .is_ok_and(|m| m.sequence == 2)
        }
    })
    .await;
    let marker = s
        .get_last_raw_message_by_subject("marked.a")
        .await
        .expect("marker");
    assert_eq!(
        marker.headers.get("Nats-Marker-Reason").map(|v| v.as_str()),
        Some("MaxAge")
    );
    assert!(marker.payload.is_empty());
    eventually("the marker expires without a marker of its own", || {
        let mut s = s.clone();
        async move { messages(&mut s).await == 0 }
    })
    .await;
    let mut s = s;
    assert_eq!(s.info().await.expect("info").state.last_sequence, 2);
}

#[tokio::test]
async fn kv_keys_with_a_ttl_and_limit_markers() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let kv = js
        .create_key_value(kv::Config {
            bucket: "sessions".into(),
            limit_markers: Some(Duration::from_secs(1)),
            ..Default::default()
        })
        .await
        .expect("bucket with markers");
    kv.create_with_ttl("user.1", Bytes::from("token"), Duration::from_secs(1))
        .await
        .expect("create with a ttl");
    kv.put("user.2", Bytes::from("stays")).await.expect("put");
    assert_eq!(
        kv.get("user.1").await.expect("get"),
        Some(Bytes::from("token"))
    );
    eventually("the key expires", || {
        let kv = kv.clone();
        async move { kv.get("user.1").await.expect("get").is_none() }
    })
    .await;
    assert_eq!(
        kv.get("user.2").await.expect("get"),
        Some(Bytes::from("stays"))
    );
}
