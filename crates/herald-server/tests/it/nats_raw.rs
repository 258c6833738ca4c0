//! NATS protocol edge cases, in raw bytes.

use std::time::Duration;

use crate::common::raw::RawClient;
use crate::common::{TestServer, sync};

/// CONNECT options of a plain client: nats-server defaults verbose and
/// pedantic to true when they are absent, and real clients turn them off.
const QUIET: &str = r#"{"verbose":false,"pedantic":false}"#;

async fn connected(server: &TestServer, connect: &str) -> RawClient {
    let mut raw = RawClient::connect(server.nats).await;
    let info = raw.line().await;
    assert!(info.starts_with("INFO {"), "{info}");
    raw.send(format!("CONNECT {connect}\r\n")).await;
    raw
}

#[tokio::test]
async fn info_advertises_what_clients_need() {
    let server = TestServer::start().await;
    let mut raw = RawClient::connect(server.nats).await;
    let line = raw.line().await;
    let json: serde_json::Value =
        serde_json::from_str(line.strip_prefix("INFO ").expect("INFO")).expect("json");
    assert_eq!(json["headers"], true);
    assert_eq!(json["proto"], 1);
    assert_eq!(json["max_payload"], 1024 * 1024);
    assert!(json["server_id"].as_str().is_some_and(|s| s.len() == 56));
    assert!(
        json["version"]
            .as_str()
            .is_some_and(|v| v.split('.').count() == 3)
    );
    server.stop().await;
}

#[tokio::test]
async fn verbose_acknowledges_every_operation() {
    let server = TestServer::start().await;
    let mut raw = connected(&server, r#"{"verbose":true}"#).await;
    raw.send("SUB a 1\r\nPUB a 2\r\nhi\r\nUNSUB 1\r\nPING\r\n")
        .await;
    let out = String::from_utf8(raw.until_pongs(1).await).expect("utf8");
    // CONNECT, SUB and PUB are acknowledged before the PUB's delivery, then UNSUB.
    assert_eq!(
        out,
        "+OK\r\n+OK\r\n+OK\r\nMSG a 1 2\r\nhi\r\n+OK\r\nPONG\r\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn oversize_payload_is_refused_and_closed() {
    let server = TestServer::start_with(|c| c.limits.max_payload = 16).await;
    let mut raw = connected(&server, QUIET).await;
    raw.send("PUB big 17\r\n").await;
    assert_eq!(raw.line().await, "-ERR 'Maximum Payload Violation'");
    assert!(raw.is_closed().await);
    server.stop().await;
}

#[tokio::test]
async fn long_control_line_is_refused() {
    let server = TestServer::start_with(|c| c.limits.max_control_line = 64).await;
    let mut raw = connected(&server, QUIET).await;
    raw.send(format!("SUB {} 1\r\n", "a".repeat(100))).await;
    assert_eq!(raw.line().await, "-ERR 'maximum control line exceeded'");
    assert!(raw.is_closed().await);
    server.stop().await;
}

#[tokio::test]
async fn pedantic_refuses_wildcard_publish_but_keeps_connection() {
    let server = TestServer::start().await;
    let mut raw = connected(&server, r#"{"verbose":false,"pedantic":true}"#).await;
    raw.send("PUB foo.* 1\r\nx\r\nPING\r\n").await;
    assert_eq!(raw.line().await, "-ERR 'Invalid Publish Subject'");
    assert_eq!(raw.line().await, "PONG");
    server.stop().await;
}

#[tokio::test]
async fn invalid_subscription_subject_keeps_connection() {
    let server = TestServer::start().await;
    let mut raw = connected(&server, QUIET).await;
    raw.send("SUB foo..bar 1\r\nSUB foo.>.bar 2\r\nPING\r\n")
        .await;
    assert_eq!(raw.line().await, "-ERR 'Invalid Subject'");
    assert_eq!(raw.line().await, "-ERR 'Invalid Subject'");
    assert_eq!(raw.line().await, "PONG");
    server.stop().await;
}

#[tokio::test]
async fn no_responders_status_goes_to_the_requester() {
    let server = TestServer::start().await;
    let mut raw = connected(
        &server,
        r#"{"verbose":false,"headers":true,"no_responders":true}"#,
    )
    .await;
    raw.send("SUB _INBOX.x.* 7\r\nPUB nobody _INBOX.x.1 0\r\n\r\nPING\r\n")
        .await;
    assert_eq!(raw.line().await, "HMSG _INBOX.x.1 7 38 38");
    assert_eq!(raw.line().await, "NATS/1.0 503");
    assert_eq!(raw.line().await, "Nats-Subject: nobody");
    assert_eq!(raw.line().await, "", "end of the header block");
    assert_eq!(raw.line().await, "", "empty payload");
    assert_eq!(raw.line().await, "PONG");
    server.stop().await;
}

#[tokio::test]
async fn headers_are_cut_for_clients_without_header_support() {
    let server = TestServer::start().await;
    let mut old = connected(&server, r#"{"verbose":false,"headers":false}"#).await;
    old.send("SUB h 1\r\nPING\r\n").await;
    assert_eq!(old.line().await, "PONG");
    let mut new = connected(&server, r#"{"verbose":false,"headers":true}"#).await;
    new.send("SUB h 2\r\nHPUB h 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nhi\r\nPING\r\n")
        .await;
    assert_eq!(new.line().await, "HMSG h 2 18 20");
    assert_eq!(new.bytes(22).await, b"NATS/1.0\r\nA: b\r\n\r\nhi\r\n");
    assert_eq!(new.line().await, "PONG");
    assert_eq!(old.line().await, "MSG h 1 2");
    assert_eq!(old.line().await, "hi");
    server.stop().await;
}

#[tokio::test]
async fn stale_connections_are_closed() {
    let server = TestServer::start_with(|c| {
        c.limits.ping_interval = Duration::from_millis(50);
        c.limits.max_pings_out = 2;
    })
    .await;
    let mut raw = connected(&server, QUIET).await;
    assert_eq!(raw.line().await, "PING");
    assert_eq!(raw.line().await, "PING");
    assert_eq!(raw.line().await, "-ERR 'Stale Connection'");
    assert!(raw.is_closed().await);
    server.stop().await;
}

#[tokio::test]
async fn answered_pings_keep_the_connection() {
    let server = TestServer::start_with(|c| {
        c.limits.ping_interval = Duration::from_millis(30);
        c.limits.max_pings_out = 1;
    })
    .await;
    let mut raw = connected(&server, QUIET).await;
    for _ in 0..5 {
        assert_eq!(raw.line().await, "PING");
        raw.send("PONG\r\n").await;
    }
    raw.send("PING\r\n").await;
    // Server PINGs may interleave; the PONG must come.
    loop {
        let line = raw.line().await;
        if line == "PONG" {
            break;
        }
        assert_eq!(line, "PING");
        raw.send("PONG\r\n").await;
    }
    server.stop().await;
}

#[tokio::test]
async fn slow_consumer_is_closed_and_publisher_unaffected() {
    let server = TestServer::start_with(|c| {
        c.limits.max_pending = 1024 * 1024;
        c.limits.max_payload = 16 * 1024;
    })
    .await;
    // A subscriber that never reads.
    let mut slow = connected(&server, QUIET).await;
    slow.send("SUB flood 1\r\nPING\r\n").await;
    assert_eq!(slow.line().await, "PONG");
    let fast_client = server.client().await;
    let mut fast = fast_client.subscribe("flood").await.expect("sub");
    sync(&fast_client).await;
    let publisher = server.client().await;
    let payload = bytes::Bytes::from(vec![b'x'; 8 * 1024]);
    // Far more than the socket buffers plus the pending limit can hold.
    const N: usize = 6000;
    let reader = tokio::spawn(async move {
        use futures::StreamExt;
        let mut n = 0;
        while n < N {
            if fast.next().await.is_none() {
                break;
            }
            n += 1;
        }
        n
    });
    for _ in 0..N {
        publisher
            .publish("flood", payload.clone())
            .await
            .expect("publish");
    }
    sync(&publisher).await;
    let received = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("fast subscriber keeps up")
        .expect("reader");
    assert_eq!(received, N, "the fast subscriber lost nothing");
    assert!(slow.is_closed().await, "the slow subscriber was closed");
    assert!(server.server().broker().stats().slow_consumers >= 1);
    server.stop().await;
}

#[tokio::test]
async fn connection_limit_refuses_extra_clients() {
    let server = TestServer::start_with(|c| c.limits.max_connections = 2).await;
    let mut a = connected(&server, QUIET).await;
    let mut b = connected(&server, QUIET).await;
    a.send("PING\r\n").await;
    b.send("PING\r\n").await;
    assert_eq!(a.line().await, "PONG");
    assert_eq!(b.line().await, "PONG");
    let mut c = RawClient::connect(server.nats).await;
    assert!(c.line().await.starts_with("INFO "));
    assert_eq!(c.line().await, "-ERR 'maximum connections exceeded'");
    assert!(c.is_closed().await);
    server.stop().await;
}

#[tokio::test]
async fn subscription_limit_refuses_extra_subscriptions() {
    let server = TestServer::start_with(|c| c.limits.max_subscriptions = 2).await;
    let mut raw = connected(&server, QUIET).await;
    raw.send("SUB a 1\r\nSUB b 2\r\nSUB c 3\r\nPING\r\n").await;
    assert_eq!(raw.line().await, "-ERR 'maximum subscriptions exceeded'");
    assert_eq!(raw.line().await, "PONG");
    server.stop().await;
}

#[tokio::test]
async fn frames_split_across_reads_are_reassembled() {
    let server = TestServer::start().await;
    let mut raw = connected(&server, QUIET).await;
    let script = b"SUB s 1\r\nPUB s 11\r\nhello world\r\nPING\r\n";
    for byte in script {
        raw.send([*byte]).await;
    }
    assert_eq!(raw.line().await, "MSG s 1 11");
    assert_eq!(raw.line().await, "hello world");
    assert_eq!(raw.line().await, "PONG");
    server.stop().await;
}
