//! Stuck subscribers: what subscribers that stop reading do to everyone
//! else. N connections subscribe and never read again, one healthy
//! subscriber counts what it gets, one publisher sends messages of `size`
//! bytes as fast as it can for a while. A broker that lets the stuck ones
//! gate the subject throttles the publisher and starves the healthy one; one
//! that cuts them off (slow consumers) keeps delivering at full speed.
//!
//! Reported: the healthy subscriber's MiB/s, the publisher's rate, how many
//! stuck subscribers the server closed, and the server's resident memory
//! (peak during the run, and after the stuck connections are gone).

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::raw_nats::{connect, publish};
use crate::scenario::Tally;
use crate::wire_scan::{scan_nats, spawn_counter};

const SUB: &[u8] = b"SUB bench.subject 1\r\n";

/// What a stuck-subscriber run measured.
#[derive(Debug, Clone, Serialize)]
pub struct StuckReport {
    /// Subscribers that stopped reading.
    pub stuck: usize,
    /// Payload size.
    pub size: usize,
    /// How long the publisher ran.
    pub seconds: f64,
    /// Messages published.
    pub published: u64,
    /// Messages the healthy subscriber received.
    pub healthy_received: u64,
    /// Its payload rate, MiB/s.
    pub healthy_mib_per_sec: f64,
    /// Stuck subscribers the server closed (slow consumers).
    pub stuck_closed: usize,
    /// Peak resident memory of the server during the run, bytes.
    pub peak_rss: Option<u64>,
    /// Resident memory after the stuck connections closed, bytes.
    pub rss_after: Option<u64>,
}

/// Resident memory of `pid`, bytes.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Whether the server closed `stream`: reads (and discards) what it had
/// queued until the end of the stream, or gives up after `patience`.
async fn closed_by_server(stream: &mut TcpStream, patience: Duration) -> bool {
    let mut buf = vec![0u8; 256 * 1024];
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// Runs the scenario against the NATS server at `url`; `pid` is the
/// server's, for its memory.
///
/// # Errors
/// Connections fail.
pub async fn run(
    url: &str,
    stuck: usize,
    size: usize,
    duration: Duration,
    pid: Option<u32>,
) -> anyhow::Result<StuckReport> {
    let mut stuck_conns = Vec::with_capacity(stuck);
    for _ in 0..stuck {
        let (stream, _) = connect(url, SUB).await.context("a stuck subscriber")?;
        stuck_conns.push(stream);
    }
    let tally = Tally::new();
    let (stream, buf) = connect(url, SUB).await.context("the healthy subscriber")?;
    let healthy = spawn_counter(stream, buf, tally.clone(), scan_nats);
    let sampler = pid.map(|pid| {
        let stop = tally.stop().clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !stop.is_cancelled() {
                peak = peak.max(rss_of(pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    });
    let start = Instant::now();
    let published = publish(url, size, u64::MAX, Some(duration)).await?;
    let seconds = start.elapsed().as_secs_f64();
    let healthy_received = tally.received();
    tally.stop().cancel();
    let _ = healthy.await;
    let peak_rss = match sampler {
        Some(sampler) => sampler.await.ok(),
        None => None,
    };
    let mut stuck_closed = 0;
    for stream in &mut stuck_conns {
        if closed_by_server(stream, Duration::from_millis(500)).await {
            stuck_closed += 1;
        }
    }
    drop(stuck_conns);
    // Give the server a moment to let go of what the stuck ones held.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(StuckReport {
        stuck,
        size,
        seconds,
        published,
        healthy_received,
        healthy_mib_per_sec: healthy_received as f64 * size as f64 / 1048576.0 / seconds,
        stuck_closed,
        peak_rss,
        rss_after: pid.and_then(rss_of),
    })
}
