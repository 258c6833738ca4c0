//! Hostile input on every listener at once: connections that send random
//! bytes to the NATS, Redis and web ports, over and over, while a
//! well-behaved NATS client and a Redis subscriber exchange messages. The
//! good clients lose nothing, the server answers afterwards, and the
//! metrics count what was refused.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;

use crate::common::garbage::{self, Xorshift};
use crate::common::{TestServer, sync};

const GOOD_MESSAGES: usize = 2_000;

/// Sends `rounds` connections' worth of random bytes to `addr`, reading
/// and discarding whatever comes back.
async fn send_garbage(addr: SocketAddr, seed: u64, rounds: usize) {
    let mut rng = Xorshift::new(seed);
    for _ in 0..rounds {
        let mut bytes = rng.bytes(4096);
        // Some rounds look like the start of a real frame, to get past the first checks.
        let prefix: &[u8] = match rng.next() % 4 {
            0 => b"PUB a 99999999\r\n",
            1 => b"*3\r\n$7\r\nPUBLISH\r\n$1\r\na\r\n",
            2 => b"GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\n",
            _ => b"",
        };
        bytes.splice(0..0, prefix.iter().copied());
        garbage::send(addr, &bytes, Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_on_every_port_harm_no_one_else() {
    let server = TestServer::start().await;
    let good = server.client().await;
    let mut sub = good.subscribe("good.n.>").await.expect("subscribe");
    let redis = redis::Client::open(server.redis_url()).expect("redis client");
    let mut pubsub = redis.get_async_pubsub().await.expect("redis pubsub");
    pubsub
        .subscribe("good.redis")
        .await
        .expect("redis subscribe");
    sync(&good).await;

    let attackers: Vec<_> = [server.nats, server.redis, server.http]
        .into_iter()
        .enumerate()
        .flat_map(|(i, addr)| {
            (0..2).map(move |j| {
                tokio::spawn(send_garbage(addr, 0xdead_beef + (i * 10 + j) as u64, 150))
            })
        })
        .collect();

    let publisher = server.client().await;
    for i in 0..GOOD_MESSAGES {
        publisher
            .publish(format!("good.n.{}", i % 3), format!("{i}").into())
            .await
            .expect("publish");
        if i % 5 == 0 {
            publisher
                .publish("good.redis", format!("r{i}").into())
                .await
                .expect("publish");
        }
    }
    sync(&publisher).await;
    for i in 0..GOOD_MESSAGES {
        let msg = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .expect("no good message is lost")
            .expect("subscription open");
        assert_eq!(msg.payload.as_ref(), format!("{i}").as_bytes(), "in order");
    }
    let mut redis_messages = pubsub.on_message();
    for i in (0..GOOD_MESSAGES).step_by(5) {
        let msg = tokio::time::timeout(Duration::from_secs(20), redis_messages.next())
            .await
            .expect("no redis message is lost")
            .expect("open");
        let payload: String = msg.get_payload().expect("text");
        assert_eq!(payload, format!("r{i}"));
    }
    drop(redis_messages);
    for attacker in attackers {
        attacker.await.expect("attacker task");
    }
    // Still serving everyone.
    sync(&good).await;
    let health = reqwest::get(server.http_url("/healthz"))
        .await
        .expect("web answers");
    assert_eq!(health.status(), 200);
    let metrics = reqwest::get(server.http_url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    // The oversized `PUB` prefixes were refused and counted.
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("herald_refusals_total{reason=\"max_payload\"} "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the max_payload refusal counter");
    assert!(refused > 0, "{metrics}");
}
