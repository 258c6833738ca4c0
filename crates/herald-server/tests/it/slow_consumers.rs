//! Subscribers that stop reading, over every protocol, next to a healthy
//! one on the same subject: the healthy one gets everything, the stuck
//! ones are cut off (closed, or their messages dropped and counted), and
//! the publisher is held up only briefly (the number of back-pressure
//! waits stays small however much is published), as `/metrics` shows.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use herald_core::SlowConsumerPolicy;
use herald_protocol::mqtt::{Packet, QoS, Version, encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::TestServer;
use crate::common::mqtt_raw::{connect_packet, subscribe_packet};

/// Messages published, and their size: far more than the stuck ones may
/// hold (32 MiB each), and more batches than the bound on waits below.
const MESSAGES: usize = 2_000;
const SIZE: usize = 16 * 1024;
/// Output a connection may hold: enough that the healthy subscriber, on a
/// busy machine, stays well inside it.
const MAX_PENDING: usize = 8 * 1024 * 1024;

/// A TCP connection whose receive buffer is small, so that a client that
/// stops reading fills it (and the server's send buffer) quickly.
async fn tight(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small buffer");
    socket.connect(addr).await.expect("connect")
}

/// Reads until `done` says what arrived is enough.
async fn read_until(stream: &mut TcpStream, done: impl Fn(&[u8]) -> bool) {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !done(&seen) {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .expect("readable");
        assert!(n > 0, "closed during the handshake: {seen:?}");
        seen.extend_from_slice(&chunk[..n]);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn stuck_nats(server: &TestServer) -> TcpStream {
    let mut s = tight(server.nats).await;
    s.write_all(b"CONNECT {\"verbose\":false}\r\nSUB stuck.t 1\r\nPING\r\n")
        .await
        .expect("write");
    read_until(&mut s, |b| contains(b, b"PONG\r\n")).await;
    s
}

async fn stuck_redis(server: &TestServer) -> TcpStream {
    let mut s = tight(server.redis).await;
    s.write_all(b"SUBSCRIBE stuck.t\r\n").await.expect("write");
    read_until(&mut s, |b| contains(b, b":1\r\n")).await;
    s
}

async fn stuck_mqtt(server: &TestServer, client_id: &str) -> TcpStream {
    let mut s = tight(server.mqtt).await;
    let mut out = BytesMut::new();
    let connect = Packet::Connect(Box::new(connect_packet(Version::V311, client_id)));
    encode(&mut out, Version::V311, &connect).expect("encode");
    encode(
        &mut out,
        Version::V311,
        &subscribe_packet(1, "stuck/t", QoS::AtMostOnce),
    )
    .expect("encode");
    s.write_all(&out).await.expect("write");
    // CONNACK (4 bytes) and SUBACK (5 bytes).
    read_until(&mut s, |b| b.len() >= 9).await;
    s
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn stuck_ws(server: &TestServer) -> Ws {
    let tcp = tight(server.http).await;
    let url = format!("ws://{}/v1/ws", server.http);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .expect("websocket");
    let _hello = ws.next().await;
    let subscribe = r#"{"op":"subscribe","sid":"1","subject":"stuck.t"}"#;
    futures::SinkExt::send(&mut ws, subscribe.into())
        .await
        .expect("subscribe");
    let _ok = ws.next().await;
    ws
}

/// Whether the server closed the connection: reads (and drops) what it had
/// queued until the end of the stream.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

async fn ws_closed(ws: &mut Ws) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(None | Some(Err(_))) => return true,
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => {}
            Err(_) => return false,
        }
    }
}

/// A value of herald's `/metrics`.
async fn metric(server: &TestServer, name: &str) -> u64 {
    let text = reqwest::get(server.http_url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

/// Publishes everything from async-nats while a healthy async-nats
/// subscriber counts; returns what it received.
async fn publish_beside_a_healthy_subscriber(server: &TestServer) -> usize {
    let healthy = server.client().await;
    let mut sub = healthy.subscribe("stuck.t").await.expect("subscribe");
    healthy.flush().await.expect("flush");
    let counter = tokio::spawn(async move {
        let mut got = 0;
        while got < MESSAGES {
            match tokio::time::timeout(Duration::from_secs(30), sub.next()).await {
                Ok(Some(msg)) => {
                    assert_eq!(msg.payload.len(), SIZE);
                    got += 1;
                }
                _ => break,
            }
        }
        got
    });
    publish_all(server).await;
    counter.await.expect("counter")
}

/// Publishes `MESSAGES` of `SIZE` bytes on `stuck.t` from async-nats.
async fn publish_all(server: &TestServer) {
    let publisher = server.client().await;
    let payload = Bytes::from(vec![b'x'; SIZE]);
    for _ in 0..MESSAGES {
        publisher
            .publish("stuck.t", payload.clone())
            .await
            .expect("publish");
    }
    publisher.flush().await.expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_subscribers_on_every_protocol_are_cut_off_and_the_healthy_one_gets_everything() {
    let server = TestServer::start_with(|ready| {
        ready.limits.max_pending = MAX_PENDING;
        // Not the write deadline: here they are cut off at their limit,
        // reached at the publisher's full speed once they are seen stuck.
        ready.limits.write_deadline = Duration::from_secs(600);
        ready.redis_config.output_buffer_hard = MAX_PENDING;
        ready.redis_config.output_buffer_soft = MAX_PENDING;
    })
    .await;
    let mut raw = [
        stuck_nats(&server).await,
        stuck_nats(&server).await,
        stuck_redis(&server).await,
        stuck_redis(&server).await,
        stuck_mqtt(&server, "stuck-1").await,
        stuck_mqtt(&server, "stuck-2").await,
    ];
    let mut ws = [stuck_ws(&server).await, stuck_ws(&server).await];

    let received = publish_beside_a_healthy_subscriber(&server).await;
    assert_eq!(received, MESSAGES, "the healthy subscriber got everything");

    for (i, stream) in raw.iter_mut().enumerate() {
        assert!(closed(stream).await, "stuck connection {i} still open");
    }
    for (i, socket) in ws.iter_mut().enumerate() {
        assert!(ws_closed(socket).await, "stuck WebSocket {i} still open");
    }
    let stuck = (raw.len() + ws.len()) as u64;
    let slow = metric(&server, "herald_slow_consumers_total").await;
    assert!(slow >= stuck, "{slow} slow consumers counted of {stuck}");
    // Each stuck writer held publishers up until it was seen stuck (a
    // fraction of a second), not for every batch of the 8 MiB published.
    let stalls = metric(&server, "herald_stalls_total").await;
    assert!(stalls <= 40, "{stalls} back-pressure waits");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_drop_newest_stuck_subscribers_stay_and_their_messages_are_counted() {
    let server = TestServer::start_with(|ready| {
        ready.limits.max_pending = MAX_PENDING;
        ready.limits.write_deadline = Duration::from_secs(1);
        ready.limits.slow_consumer = SlowConsumerPolicy::DropNewest;
    })
    .await;
    let mut stuck = [stuck_nats(&server).await, stuck_nats(&server).await];
    let received = publish_beside_a_healthy_subscriber(&server).await;
    assert_eq!(received, MESSAGES, "the healthy subscriber got everything");
    // Each stuck one holds at most its limit (and what the kernel buffers
    // took); most of what was published to them was dropped, and counted.
    let dropped = metric(&server, "herald_dropped_total").await;
    assert!(dropped >= MESSAGES as u64, "{dropped} dropped");
    assert_eq!(metric(&server, "herald_slow_consumers_total").await, 0);
    let stalls = metric(&server, "herald_stalls_total").await;
    assert!(stalls <= 40, "{stalls} back-pressure waits");
    // Still connected: a stuck client under drop-newest may read again.
    for stream in &mut stuck {
        stream.write_all(b"PING\r\n").await.expect("still open");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_subscriber_is_closed_at_the_write_deadline_with_nothing_more_published() {
    let server = TestServer::start_with(|ready| {
        ready.limits.write_deadline = Duration::from_secs(1);
    })
    .await;
    let mut stuck = stuck_nats(&server).await;
    // Enough to fill its socket, below its 64 MiB limit; then silence.
    publish_all(&server).await;
    // Not a byte read meanwhile (reading would be progress).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metric(&server, "herald_slow_consumers_total").await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never closed as a slow consumer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed(&mut stuck).await, "closed at its write deadline");
    assert_eq!(metric(&server, "herald_slow_consumers_total").await, 1);
    server.stop().await;
}
