//! Stream scenarios: persisted publish with acks (a window of publishes in
//! flight, each acknowledged once stored) and pull consume with an ack per
//! message. Setup (stream, consumer) goes through async-nats; the measured
//! traffic through the same lean client as the other throughput scenarios,
//! so the servers' costs show, not the client's.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_nats::jetstream::{self, consumer, stream};
use bytes::{BufMut, BytesMut};
use herald_protocol::Limits;
use herald_protocol::nats::{ServerOp, encode_pub, parse_server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::scenario::{Outcome, Params, Protocol, Scenario};

const STREAM: &str = "HERALD_BENCH";
const SUBJECT: &[u8] = b"bench.stream";
const ACK_INBOX: &[u8] = b"_INBOX.herald_bench_acks";
const PULL_INBOX: &[u8] = b"_INBOX.herald_bench_pull";
const CONSUMER: &str = "bench";
/// Pull batch; two requests are kept outstanding.
const PULL_BATCH: u64 = 512;

fn limits() -> Limits {
    Limits {
        max_control_line: 64 * 1024,
        max_payload: 64 * 1024 * 1024,
    }
}

async fn connect(url: &str, extra: &[u8]) -> anyhow::Result<(TcpStream, BytesMut)> {
    let addr = url.strip_prefix("nats://").unwrap_or(url);
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    stream.set_nodelay(true)?;
    let mut hello = BytesMut::new();
    hello.put_slice(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"name\":\"herald-bench\"}\r\n");
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

/// A fresh file-backed stream on the bench subject with `replicas`,
/// retried for a minute while a cluster is still forming (herald's meta
/// group forms a few seconds after its nodes mesh; nats-server's likewise).
async fn fresh_stream(url: &str, replicas: usize) -> anyhow::Result<jetstream::stream::Stream> {
    let client = async_nats::connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let js = jetstream::new(client);
    let _ = js.delete_stream(STREAM).await;
    let subject = String::from_utf8_lossy(SUBJECT).into_owned();
    let config = stream::Config {
        name: STREAM.to_owned(),
        subjects: vec![subject.clone(), format!("{subject}.>")],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match js.create_stream(config.clone()).await {
            Ok(stream) => return Ok(stream),
            Err(_) if replicas > 1 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e).context("creating the bench stream"),
        }
    }
}

/// Publishes with acks into a fresh stream of three replicas, through
/// the node at `url` (the stream's leader may be any node).
pub(crate) async fn run_replicated_publish(url: &str, params: &Params) -> anyhow::Result<Outcome> {
    fresh_stream(url, 3).await?;
    run_publish(url, Scenario::ClusterJsPub, params).await
}

/// Publishes `params.js_count` messages of `params.size` bytes with acks,
/// at most `params.js_window` unacknowledged, spread over
/// `params.js_subjects` subjects. Returns (acked, refused, elapsed).
async fn publish_with_acks(url: &str, params: &Params) -> anyhow::Result<(u64, u64, Duration)> {
    let (size, count, window, progress) = (
        params.size,
        params.js_count,
        params.js_window,
        params.progress,
    );
    let subjects = params.js_subjects.max(1);
    let mut subject = BytesMut::new();
    let mut numbers = itoa::Buffer::new();
    let sub = format!("SUB {} 1\r\n", String::from_utf8_lossy(ACK_INBOX));
    let (mut conn, mut buf) = connect(url, sub.as_bytes()).await?;
    let payload = vec![b'x'; size];
    let mut out = BytesMut::with_capacity(256 * 1024);
    let (mut sent, mut acked, mut refused) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    while acked + refused < count {
        while sent < count && sent - acked - refused < window {
            if subjects == 1 {
                encode_pub(&mut out, SUBJECT, Some(ACK_INBOX), &payload);
            } else {
                subject.clear();
                subject.put_slice(SUBJECT);
                subject.put_u8(b'.');
                subject.put_slice(numbers.format(sent % subjects).as_bytes());
                encode_pub(&mut out, &subject, Some(ACK_INBOX), &payload);
            }
            sent += 1;
        }
        if !out.is_empty() {
            conn.write_all(&out).await?;
            out.clear();
        }
        if conn.read_buf(&mut buf).await? == 0 {
            bail!("server closed the publisher after {acked} acks");
        }
        while let Some(op) = parse_server(&mut buf, &limits())? {
            match op {
                ServerOp::Msg { payload, .. } => {
                    if payload.windows(7).any(|w| w == b"\"error\"") {
                        refused += 1;
                    } else {
                        acked += 1;
                    }
                }
                ServerOp::Ping => conn.write_all(b"PONG\r\n").await?,
                ServerOp::Err(text) => bail!("server error: {}", String::from_utf8_lossy(&text)),
                _ => {}
            }
        }
        if progress && acked % 16_384 < window {
            eprint!("\r  stream publish: {acked}/{count} acked   ");
        }
    }
    if progress {
        eprint!("\r{:70}\r", "");
    }
    Ok((acked, refused, start.elapsed()))
}

/// The bench stream, as [`prepare`] left it.
async fn bench_stream(url: &str) -> anyhow::Result<jetstream::stream::Stream> {
    let client = async_nats::connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    jetstream::new(client)
        .get_stream(STREAM)
        .await
        .context("the bench stream (prepared?)")
}

/// Persisted publish with acks, `params.js_window` in flight, reported
/// as `scenario`.
async fn run_publish(url: &str, scenario: Scenario, params: &Params) -> anyhow::Result<Outcome> {
    let count = params.js_count;
    let (acked, refused, elapsed) = publish_with_acks(url, params).await?;
    Ok(Outcome::new(
        scenario,
        Protocol::Nats,
        params.size,
        count,
        count,
        acked,
        refused,
        elapsed,
    ))
}

/// Consumes the (filled) stream through a pull consumer, acking each message.
async fn run_consume(url: &str, params: &Params) -> anyhow::Result<Outcome> {
    let stream = bench_stream(url).await?;
    let count = params.js_count;
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(CONSUMER.to_owned()),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: 20_000,
            ..Default::default()
        })
        .await
        .context("creating the bench consumer")?;
    let sub = format!("SUB {} 1\r\n", String::from_utf8_lossy(PULL_INBOX));
    let (mut conn, mut buf) = connect(url, sub.as_bytes()).await?;
    let next = format!("$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{CONSUMER}");
    let request = format!("{{\"batch\":{PULL_BATCH},\"expires\":5000000000}}");
    let mut out = BytesMut::with_capacity(256 * 1024);
    let mut requested = 0u64;
    let mut received = 0u64;
    let start = Instant::now();
    let mut quiet = Instant::now();
    while received < count {
        // Keep two batches asked for.
        while requested < count && requested < received + 2 * PULL_BATCH {
            encode_pub(
                &mut out,
                next.as_bytes(),
                Some(PULL_INBOX),
                request.as_bytes(),
            );
            requested += PULL_BATCH;
        }
        if !out.is_empty() {
            conn.write_all(&out).await?;
            out.clear();
        }
        let read = tokio::time::timeout(Duration::from_secs(3), conn.read_buf(&mut buf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => bail!("server closed the consumer after {received}"),
            Ok(Ok(_)) => {}
            Err(_) => break,
        }
        while let Some(op) = parse_server(&mut buf, &limits())? {
            match op {
                ServerOp::Msg {
                    reply: Some(ack),
                    payload,
                    headers,
                    ..
                } => {
                    let status =
                        headers.is_some() && payload.is_empty() && !ack.starts_with(b"$JS.ACK.");
                    if !status {
                        encode_pub(&mut out, &ack, None, b"");
                        received += 1;
                        quiet = Instant::now();
                    }
                }
                ServerOp::Msg { reply: None, .. } => {
                    // A status (408 timeout, 409): ask again.
                    requested = received;
                }
                ServerOp::Ping => out.put_slice(b"PONG\r\n"),
                ServerOp::Err(text) => bail!("server error: {}", String::from_utf8_lossy(&text)),
                _ => {}
            }
        }
        if params.progress && received % 16_384 < PULL_BATCH {
            eprint!("\r  stream consume: {received}/{count}   ");
        }
        if quiet.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    if !out.is_empty() {
        conn.write_all(&out).await?;
    }
    let elapsed = start.elapsed();
    if params.progress {
        eprint!("\r{:70}\r", "");
    }
    Ok(Outcome::new(
        Scenario::JsConsume,
        Protocol::Nats,
        params.size,
        count,
        count,
        received,
        0,
        elapsed,
    ))
}

/// Consumes the (filled) stream with async-nats's own JetStream API, as
/// applications do: a durable pull consumer read through
/// `messages()` (batches of 256 kept asked for), every message acknowledged
/// with `ack()`. The client does more per message than the lean one, so this
/// shows what a user sees, and how the rate holds up as the stream grows.
async fn run_consume_client(url: &str, params: &Params) -> anyhow::Result<Outcome> {
    use futures::StreamExt;
    let stream = bench_stream(url).await?;
    let count = params.js_count;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(CONSUMER.to_owned()),
            ack_policy: consumer::AckPolicy::Explicit,
            filter_subject: params.js_filter.clone().unwrap_or_default(),
            ..Default::default()
        })
        .await
        .context("creating the bench consumer")?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(256)
        .messages()
        .await
        .context("starting to pull")?;
    let mut received = 0u64;
    let mut errors = 0u64;
    let start = Instant::now();
    while received < count {
        match tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
            Ok(Some(Ok(message))) => {
                message
                    .ack()
                    .await
                    .map_err(|e| anyhow::anyhow!("ack: {e}"))?;
                received += 1;
                if params.progress && received.is_multiple_of(16_384) {
                    eprint!("\r  stream consume (async-nats): {received}/{count}   ");
                }
            }
            Ok(Some(Err(error))) => {
                errors += 1;
                if errors > 100 {
                    bail!("pull failed: {error}");
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    let elapsed = start.elapsed();
    if params.progress {
        eprint!("\r{:70}\r", "");
    }
    Ok(Outcome::new(
        Scenario::JsConsumeClient,
        Protocol::Nats,
        params.size,
        count,
        count,
        received,
        errors,
        elapsed,
    ))
}

/// Sets a stream scenario up, before what is measured: a fresh stream,
/// filled with `params.js_count` messages for the consume scenarios.
///
/// # Errors
/// Connection or setup failures.
pub(crate) async fn prepare(url: &str, scenario: Scenario, params: &Params) -> anyhow::Result<()> {
    fresh_stream(url, 1).await?;
    if matches!(scenario, Scenario::JsConsume | Scenario::JsConsumeClient) {
        let (acked, refused, _) = publish_with_acks(url, params).await?;
        anyhow::ensure!(
            refused == 0 && acked == params.js_count,
            "filling the stream: {acked} acked, {refused} refused"
        );
    }
    Ok(())
}

/// Runs a stream scenario [`prepare`]d for it.
///
/// # Errors
/// Connection, setup or protocol failures.
pub(crate) async fn run(url: &str, scenario: Scenario, params: &Params) -> anyhow::Result<Outcome> {
    match scenario {
        Scenario::JsPub => run_publish(url, Scenario::JsPub, params).await,
        Scenario::JsConsume => run_consume(url, params).await,
        Scenario::JsConsumeClient => run_consume_client(url, params).await,
        other => bail!("{other:?} is not a stream scenario"),
    }
}
