//! Throughput scenarios over Redis pub/sub with a lean client of our own:
//! pipelined `PUBLISH` writes with a bounded window of unanswered commands,
//! and subscribers that count `message` pushes in place.
//!
//! The redis crate waits for each pipeline's replies and hands every message
//! to a channel as an owned value; on two cores that client, not the server,
//! set the pace. This one costs little per message and drives any Redis
//! server the same way, so the servers' differences show.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::scenario::{Outcome, Params, Protocol, Scenario, Tally, next_batch, publish_and_finish};
use crate::wire_scan::{Scan, scan_resp, spawn_counter};

const CHANNEL: &[u8] = b"bench.subject";

/// `PUBLISH` commands per write, as `redis-benchmark -P` pipelines them.
const PIPELINE: u64 = 64;

/// Unanswered `PUBLISH`es a publisher allows before it waits for replies:
/// enough that the round trip does not set the pace (with 256, both
/// herald and redis-server idled between answers), few enough that no
/// server's input grows without bound. `redis-benchmark -P 16` with its 50
/// clients keeps 800 in flight.
const WINDOW: u64 = 16 * PIPELINE;

fn addr_of(url: &str) -> &str {
    url.strip_prefix("redis://")
        .unwrap_or(url)
        .trim_end_matches('/')
}

/// Appends one command as a RESP array of bulk strings.
fn encode_command(out: &mut BytesMut, args: &[&[u8]]) {
    out.put_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.put_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.put_slice(arg);
        out.put_slice(b"\r\n");
    }
}

/// Reads until the scan of what arrived satisfies `done`; returns the rest.
async fn read_until(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    mut done: impl FnMut(&Scan) -> bool,
) -> anyhow::Result<()> {
    loop {
        let scan = scan_resp(buf, &mut BytesMut::new());
        buf.advance(scan.consumed);
        if scan.failed {
            bail!("the server answered with an error");
        }
        if done(&scan) {
            return Ok(());
        }
        if stream.read_buf(buf).await? == 0 {
            bail!("the server closed the connection");
        }
    }
}

async fn connect(url: &str) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(addr_of(url))
        .await
        .with_context(|| format!("connecting to {url}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Publishes `count` messages (or for `duration`) in pipelines of
/// [`PIPELINE`], at most [`WINDOW`] unanswered, then waits for every reply.
async fn publish(
    url: &str,
    size: usize,
    count: u64,
    duration: Option<Duration>,
) -> anyhow::Result<u64> {
    let mut stream = connect(url).await?;
    let payload = vec![b'x'; size];
    let mut one = BytesMut::new();
    encode_command(&mut one, &[b"PUBLISH", CHANNEL, &payload]);
    let mut out = BytesMut::with_capacity(one.len() * PIPELINE as usize);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let start = Instant::now();
    let (mut sent, mut answered) = (0u64, 0u64);
    while let Some(batch) = next_batch(duration, start, sent, count, PIPELINE) {
        out.clear();
        for _ in 0..batch {
            out.put_slice(&one);
        }
        stream.write_all(&out).await?;
        sent += batch;
        if sent - answered > WINDOW - PIPELINE {
            let need = sent - (WINDOW - PIPELINE);
            read_until(&mut stream, &mut buf, |scan| {
                answered += scan.integers;
                answered >= need
            })
            .await?;
        }
    }
    read_until(&mut stream, &mut buf, |scan| {
        answered += scan.integers;
        answered >= sent
    })
    .await?;
    Ok(sent)
}

/// Runs a throughput scenario with the lean client.
///
/// # Errors
/// Connection failures, or a scenario Redis has no equivalent for; lost
/// messages are reported, not errors.
pub async fn run(url: &str, scenario: Scenario, params: &Params) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        scenario.supports(Protocol::Redis),
        "Redis has no {scenario:?} equivalent"
    );
    let shape = scenario
        .shape(params)
        .context("Redis has no request/reply")?;
    let tally = Tally::new();
    let mut receivers = Vec::new();
    for _ in 0..shape.subscribers {
        let mut stream = connect(url).await?;
        let mut hello = BytesMut::new();
        encode_command(&mut hello, &[b"SUBSCRIBE", CHANNEL]);
        stream.write_all(&hello).await?;
        let mut buf = BytesMut::with_capacity(256 * 1024);
        // The confirmation means the server has the subscription.
        read_until(&mut stream, &mut buf, |scan| scan.other > 0)
            .await
            .context("SUBSCRIBE")?;
        receivers.push(spawn_counter(stream, buf, tally.clone(), scan_resp));
    }
    let setup = (scenario, Protocol::Redis, shape);
    publish_and_finish(setup, params, &tally, receivers, |_, share| {
        publish(url, params.size, share, params.duration)
    })
    .await
}
