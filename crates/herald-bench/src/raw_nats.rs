//! Throughput scenarios over the NATS protocol with a lean client of our
//! own: batched `PUB` writes and a streaming `MSG` counter on plain TCP.
//!
//! On a small machine the benchmark client shares the cores with the server
//! it measures; async-nats spends several times the server's CPU per message
//! (a channel hop and an allocation per message), so with it every server
//! looks alike. This client costs little per message, so the servers'
//! differences show. It speaks the plain protocol and drives any NATS server.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{BufMut, BytesMut};
use herald_protocol::Limits;
use herald_protocol::nats::{ServerOp, encode_pub, parse_server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::scenario::{Outcome, Params, Protocol, Scenario, Tally, publish_and_finish};
use crate::wire_scan::{scan_nats, spawn_counter};

const SUBJECT: &[u8] = b"bench.subject";
const CONNECT: &[u8] = b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"name\":\"herald-bench\"}\r\n";

fn addr_of(url: &str) -> &str {
    url.strip_prefix("nats://").unwrap_or(url)
}

fn limits() -> Limits {
    Limits {
        max_control_line: 64 * 1024,
        max_payload: 64 * 1024 * 1024,
    }
}

/// Connects, sends CONNECT and `extra`, and waits for the PONG of a PING
/// sent after them, so the server has processed everything.
pub(crate) async fn connect(url: &str, extra: &[u8]) -> anyhow::Result<(TcpStream, BytesMut)> {
    let mut stream = TcpStream::connect(addr_of(url))
        .await
        .with_context(|| format!("connecting to {url}"))?;
    stream.set_nodelay(true)?;
    let mut hello = BytesMut::new();
    hello.put_slice(CONNECT);
    hello.put_slice(extra);
    hello.put_slice(b"PING\r\n");
    stream.write_all(&hello).await?;
    let mut buf = BytesMut::with_capacity(256 * 1024);
    loop {
        while let Some(op) = parse_server(&mut buf, &limits())? {
            match op {
                ServerOp::Pong => return Ok((stream, buf)),
                ServerOp::Err(text) => bail!("server error: {}", String::from_utf8_lossy(&text)),
                _ => {}
            }
        }
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("server closed the connection during the handshake");
        }
    }
}

/// Publishes `count` messages (or for `duration`) in 64 KiB writes, then
/// waits for a PONG so the server has taken them all in.
pub(crate) async fn publish(
    url: &str,
    size: usize,
    count: u64,
    duration: Option<Duration>,
) -> anyhow::Result<u64> {
    let (mut stream, mut buf) = connect(url, b"").await?;
    let payload = vec![b'x'; size];
    let mut out = BytesMut::with_capacity(128 * 1024);
    let start = Instant::now();
    let mut sent = 0u64;
    loop {
        let done = match duration {
            Some(limit) => start.elapsed() >= limit,
            None => sent >= count,
        };
        if done {
            break;
        }
        encode_pub(&mut out, SUBJECT, None, &payload);
        sent += 1;
        if out.len() >= 64 * 1024 {
            stream.write_all(&out).await?;
            out.clear();
        }
    }
    out.put_slice(b"PING\r\n");
    stream.write_all(&out).await?;
    loop {
        while let Some(op) = parse_server(&mut buf, &limits())? {
            if op == ServerOp::Pong {
                return Ok(sent);
            }
        }
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("server closed the publisher");
        }
    }
}

/// Runs a throughput scenario (not request/reply) with the lean client.
///
/// # Errors
/// Connection failures; lost messages are reported, not errors.
pub async fn run(url: &str, scenario: Scenario, params: &Params) -> anyhow::Result<Outcome> {
    let Some(shape) = scenario.shape(params) else {
        bail!("request/reply runs on async-nats");
    };
    let tally = Tally::new();
    let mut receivers = Vec::new();
    for _ in 0..shape.subscribers {
        let sub: &[u8] = if shape.queue {
            b"SUB bench.subject bench 1\r\n"
        } else {
            b"SUB bench.subject 1\r\n"
        };
        let (stream, buf) = connect(url, sub).await?;
        receivers.push(spawn_counter(stream, buf, tally.clone(), scan_nats));
    }
    let setup = (scenario, Protocol::Nats, shape);
    publish_and_finish(setup, params, &tally, receivers, |_, share| {
        publish(url, params.size, share, params.duration)
    })
    .await
}

/// The cross-node fan-out: a publisher on `publisher` (a node's URL), the
/// subscribers spread over `subscribers` (the other nodes'). Interest
/// crosses between nodes on its own time, so single probes are published
/// until one reaches every subscriber; then the measured run starts.
///
/// # Errors
/// Connection failures, or interest that never crossed.
pub async fn run_across(
    publisher: &str,
    subscribers: &[String],
    params: &Params,
    ready: impl FnOnce(),
) -> anyhow::Result<Outcome> {
    let scenario = Scenario::ClusterFanout;
    let Some(shape) = scenario.shape(params) else {
        bail!("no shape");
    };
    let tally = Tally::new();
    let mut receivers = Vec::new();
    for i in 0..shape.subscribers {
        let url = &subscribers[i % subscribers.len()];
        let (stream, buf) = connect(url, b"SUB bench.subject 1\r\n").await?;
        receivers.push(spawn_counter(stream, buf, tally.clone(), scan_nats));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    'probing: loop {
        // From a quiet tally, so late copies of earlier probes (which
        // reached only some nodes) are not mistaken for this one's.
        let mut before = tally.received();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = tally.received();
            if now == before {
                break;
            }
            before = now;
        }
        publish(publisher, params.size, 1, None).await?;
        let sent = std::time::Instant::now();
        while sent.elapsed() < Duration::from_millis(200) {
            if tally.received() >= before + shape.subscribers as u64 {
                break 'probing;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if std::time::Instant::now() > deadline {
            bail!("interest never reached {publisher}");
        }
    }
    tally.reset();
    ready();
    let setup = (scenario, Protocol::Nats, shape);
    publish_and_finish(setup, params, &tally, receivers, |_, share| {
        publish(publisher, params.size, share, params.duration)
    })
    .await
}
