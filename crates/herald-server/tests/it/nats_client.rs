//! The NATS listener driven by the async-nats client crate.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;

use crate::common::raw::PATIENCE;
use crate::common::{TestServer, sync};

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(PATIENCE, sub.next())
        .await
        .expect("a message in time")
        .expect("subscription open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_reaches_subscriber_in_order() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let mut sub = client.subscribe("orders.new").await.expect("subscribe");
    sync(&client).await;
    for i in 0..100 {
        client
            .publish("orders.new", Bytes::from(format!("order {i}")))
            .await
            .expect("publish");
    }
    for i in 0..100 {
        let msg = next(&mut sub).await;
        assert_eq!(msg.subject.as_str(), "orders.new");
        assert_eq!(msg.payload, Bytes::from(format!("order {i}")));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_match_tokens() {
    let server = TestServer::start().await;
    let publisher = server.client().await;
    let subscriber = server.client().await;
    let mut star = subscriber.subscribe("sensors.*.temp").await.expect("sub");
    let mut tail = subscriber.subscribe("sensors.>").await.expect("sub");
    sync(&subscriber).await;
    for subject in [
        "sensors.kitchen.temp",
        "sensors.kitchen.humidity",
        "sensors.a.b.temp",
        "sensors",
    ] {
        publisher
            .publish(subject, "x".into())
            .await
            .expect("publish");
    }
    publisher.publish("done", "".into()).await.expect("publish");
    sync(&publisher).await;
    assert_eq!(
        next(&mut star).await.subject.as_str(),
        "sensors.kitchen.temp"
    );
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next(&mut tail).await.subject.to_string());
    }
    assert_eq!(
        seen,
        [
            "sensors.kitchen.temp",
            "sensors.kitchen.humidity",
            "sensors.a.b.temp"
        ]
    );
    // Nothing else may arrive: a round trip through a fresh subject proves the queue is empty.
    let mut marker = subscriber.subscribe("marker").await.expect("sub");
    sync(&subscriber).await;
    publisher
        .publish("marker", "".into())
        .await
        .expect("publish");
    next(&mut marker).await;
    assert!(star.now_or_never_pending());
    server.stop().await;
}

/// Polls a stream once without waiting.
trait NowOrNever {
    fn now_or_never_pending(&mut self) -> bool;
}

impl NowOrNever for async_nats::Subscriber {
    fn now_or_never_pending(&mut self) -> bool {
        futures::FutureExt::now_or_never(self.next()).is_none()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_group_shares_messages_fairly() {
    let server = TestServer::start().await;
    let publisher = server.client().await;
    let mut workers = Vec::new();
    for _ in 0..3 {
        let client = server.client().await;
        let sub = client
            .queue_subscribe("jobs", "workers".into())
            .await
            .expect("queue sub");
        sync(&client).await;
        workers.push((client, sub));
    }
    let mut plain = publisher.subscribe("jobs").await.expect("sub");
    sync(&publisher).await;
    const N: usize = 300;
    for i in 0..N {
        publisher
            .publish("jobs", Bytes::from(i.to_string()))
            .await
            .expect("publish");
    }
    sync(&publisher).await;
    // The plain subscriber sees every message.
    for _ in 0..N {
        next(&mut plain).await;
    }
    // Each message went to exactly one worker, and every worker got a share.
    let mut all = BTreeSet::new();
    let mut counts = Vec::new();
    let total = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut handles = Vec::new();
    for (client, mut sub) in workers {
        let total = total.clone();
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                if total.load(std::sync::atomic::Ordering::SeqCst) >= N {
                    break;
                }
                match tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
                    Ok(Some(msg)) => {
                        got.push(String::from_utf8_lossy(&msg.payload).into_owned());
                        total.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(None) => break,
                    Err(_) => {}
                }
            }
            drop(client);
            got
        }));
    }
    for handle in handles {
        let got = tokio::time::timeout(PATIENCE, handle)
            .await
            .expect("workers finish")
            .expect("worker task");
        counts.push(got.len());
        for item in got {
            assert!(all.insert(item), "a message was delivered twice");
        }
    }
    assert_eq!(all.len(), N, "every message delivered once");
    assert!(
        counts.iter().all(|&c| c > 0),
        "every worker got work: {counts:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_round_trip() {
    let server = TestServer::start().await;
    let service = server.client().await;
    let mut requests = service.subscribe("svc.echo").await.expect("sub");
    sync(&service).await;
    let responder = tokio::spawn(async move {
        for _ in 0..10 {
            let Some(req) = requests.next().await else {
                break;
            };
            let reply = req.reply.expect("reply subject");
            let mut body = b"echo: ".to_vec();
            body.extend_from_slice(&req.payload);
            service.publish(reply, body.into()).await.expect("reply");
        }
        sync(&service).await;
    });
    let client = server.client().await;
    for i in 0..10 {
        let reply = client
            .request("svc.echo", Bytes::from(format!("hi {i}")))
            .await
            .expect("request answered");
        assert_eq!(reply.payload, Bytes::from(format!("echo: hi {i}")));
    }
    responder.await.expect("responder");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_responders_fails_fast() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let err = client
        .request("nobody.home", "?".into())
        .await
        .expect_err("no responders");
    assert_eq!(
        err.kind(),
        async_nats::client::RequestErrorKind::NoResponders,
        "{err}: the server's 503 status, not the client's timeout"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_round_trip() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let mut sub = client.subscribe("with.headers").await.expect("sub");
    sync(&client).await;
    let mut headers = HeaderMap::new();
    headers.insert("Trace-Id", "abc-123");
    headers.append("Multi", "one");
    headers.append("Multi", "two");
    client
        .publish_with_headers("with.headers", headers, "body".into())
        .await
        .expect("publish");
    let msg = next(&mut sub).await;
    let got = msg.headers.expect("headers arrive");
    assert_eq!(got.get("Trace-Id").map(|v| v.as_str()), Some("abc-123"));
    let multi: Vec<&str> = got.get_all("Multi").map(|v| v.as_str()).collect();
    assert_eq!(multi, ["one", "two"]);
    assert_eq!(msg.payload, "body");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_after_max_messages() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let mut sub = client.subscribe("limited").await.expect("sub");
    sub.unsubscribe_after(3).await.expect("unsub max");
    sync(&client).await;
    for i in 0..10 {
        client
            .publish("limited", Bytes::from(i.to_string()))
            .await
            .expect("publish");
    }
    sync(&client).await;
    for i in 0..3 {
        assert_eq!(next(&mut sub).await.payload, Bytes::from(i.to_string()));
    }
    let end = tokio::time::timeout(PATIENCE, sub.next())
        .await
        .expect("ends");
    assert!(end.is_none(), "subscription ends after 3");
    // The server removed it.
    let limited = herald_core::Pattern::new("limited").expect("pattern");
    assert_eq!(server.server().broker().index().count_for(&limited), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_false_hides_own_messages() {
    let server = TestServer::start().await;
    let quiet = async_nats::ConnectOptions::new()
        .no_echo()
        .connect(server.nats_url())
        .await
        .expect("connect");
    let other = server.client().await;
    let mut own = quiet.subscribe("room").await.expect("sub");
    let mut theirs = other.subscribe("room").await.expect("sub");
    sync(&quiet).await;
    sync(&other).await;
    quiet
        .publish("room", "from quiet".into())
        .await
        .expect("pub");
    other
        .publish("room", "from other".into())
        .await
        .expect("pub");
    sync(&quiet).await;
    sync(&other).await;
    assert_eq!(next(&mut own).await.payload, "from other");
    let mut seen: Vec<Bytes> = vec![
        next(&mut theirs).await.payload,
        next(&mut theirs).await.payload,
    ];
    seen.sort();
    assert_eq!(seen, [Bytes::from("from other"), Bytes::from("from quiet")]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_closes_only_the_offender() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let mut sub = client.subscribe("steady").await.expect("sub");
    sync(&client).await;
    let mut bad = crate::common::raw::RawClient::connect(server.nats).await;
    let info = bad.line().await;
    assert!(info.starts_with("INFO "));
    bad.send(b"CONNECT {\"verbose\":false}\r\n\x00\x01\x02 GARBAGE!!\r\n")
        .await;
    assert_eq!(bad.line().await, "-ERR 'Unknown Protocol Operation'");
    assert!(bad.is_closed().await);
    for i in 0..50 {
        client
            .publish("steady", Bytes::from(i.to_string()))
            .await
            .expect("publish");
    }
    for i in 0..50 {
        assert_eq!(next(&mut sub).await.payload, Bytes::from(i.to_string()));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_connections() {
    let _ = rlimit::increase_nofile_limit(8192);
    let server = TestServer::start().await;
    const CONNS: usize = 1000;
    let mut clients = Vec::with_capacity(CONNS);
    for i in 0..CONNS {
        let mut raw = crate::common::raw::RawClient::connect(server.nats).await;
        raw.send(format!(
            "CONNECT {{\"verbose\":false}}\r\nSUB fanout {i}\r\nPING\r\n"
        ))
        .await;
        clients.push(raw);
    }
    for raw in &mut clients {
        assert!(raw.line().await.starts_with("INFO "));
        assert_eq!(raw.line().await, "PONG");
    }
    assert_eq!(server.server().broker().subscription_count(), CONNS);
    let publisher = server.client().await;
    publisher
        .publish("fanout", "all".into())
        .await
        .expect("pub");
    sync(&publisher).await;
    let mut sids = HashMap::new();
    for raw in &mut clients {
        let head = raw.line().await;
        let mut parts = head.split(' ');
        assert_eq!(parts.next(), Some("MSG"));
        assert_eq!(parts.next(), Some("fanout"));
        let sid = parts.next().expect("sid").to_owned();
        assert_eq!(raw.bytes(5).await, b"all\r\n");
        *sids.entry(sid).or_insert(0) += 1;
    }
    assert_eq!(sids.len(), CONNS, "each connection got its own copy");
    drop(clients);
    server.stop().await;
}
