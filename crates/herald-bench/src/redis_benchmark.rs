//! `redis-benchmark PUBLISH ch msg`, pipelined with `-P 16`, against every
//! server with a Redis endpoint, with one client thread and with two.
//!
//! With one thread (its default) `redis-benchmark` itself needs a whole core
//! for about 1.7 M requests per second on this kind of machine, so it sets
//! the pace for any server that keeps up; the table shows the client's CPU
//! share to make that visible, and a no-op responder's row shows the most
//! the client reaches against any server. With two client threads the client can ask
//! for more than one core, and on two cores the server's own cost per
//! request decides how much is left for it. Each server's CPU time per
//! request is measured from `/proc` either way.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::scenario::Protocol;
use crate::servers::{NOOP_REDIS, Server, children_cpu_time, find_program};

/// Requests per run. With `--threads` redis-benchmark times a run in steps
/// of a quarter second, so a run must last several seconds for that step not
/// to matter.
const REQUESTS: u64 = 6_000_000;

/// Client thread counts measured.
const THREADS: [u32; 2] = [1, 2];

/// The median result of one server under one client setting.
#[derive(Debug, Clone, Serialize)]
pub struct RedisBenchmarkRow {
    /// `redis-benchmark --threads`.
    pub threads: u32,
    /// The server.
    pub server: String,
    /// Requests per second.
    pub requests_per_sec: f64,
    /// Server CPU time per request, in nanoseconds.
    pub server_ns_per_request: Option<f64>,
    /// The client's CPU time over the run's wall time (1.0 = one whole core).
    pub client_cores: Option<f64>,
}

/// One run's measurements.
struct Sample {
    rate: f64,
    server_ns: Option<f64>,
    client_cores: Option<f64>,
}

/// A server a run goes against.
#[derive(Clone, Copy)]
enum Target<'a> {
    /// One started by the caller, alive throughout.
    Running(&'a Server),
    /// The no-op responder, started for each run and stopped right after:
    /// it never sleeps, so alive it would take a core from every other run.
    Noop,
}

impl Target<'_> {
    fn name(&self) -> &str {
        match self {
            Self::Running(server) => &server.name,
            Self::Noop => NOOP_REDIS,
        }
    }
}

/// Runs `redis-benchmark` `rounds` times per server and thread count,
/// rotating the server order every round, and with one client thread also
/// against the no-op responder. Empty when it is not installed.
pub fn run(servers: &[&Server], rounds: usize) -> Vec<RedisBenchmarkRow> {
    let Some(program) = find_program("redis-benchmark") else {
        eprintln!("redis-benchmark is not installed; skipping it");
        return Vec::new();
    };
    let mut rows = Vec::new();
    for threads in THREADS {
        let mut targets: Vec<Target<'_>> = servers
            .iter()
            .filter(|s| s.endpoint(Protocol::Redis).is_some())
            .map(|s| Target::Running(s))
            .collect();
        if threads == 1 {
            // The client's own limit, measured where it sets the pace.
            targets.push(Target::Noop);
        }
        let mut samples: Vec<Vec<Sample>> = targets.iter().map(|_| Vec::new()).collect();
        for round in 0..rounds {
            for i in 0..targets.len() {
                let index = (i + round) % targets.len();
                let target = targets[index];
                eprintln!(
                    "redis-benchmark -P 16 --threads {threads} against {} (round {})",
                    target.name(),
                    round + 1
                );
                let sample = match target {
                    Target::Running(server) => run_once(&program, server, threads),
                    Target::Noop => match Server::noop_redis() {
                        Ok(noop) => run_once(&program, &noop, threads),
                        Err(error) => {
                            eprintln!("  no client ceiling: {error:#}");
                            None
                        }
                    },
                };
                samples[index].extend(sample);
            }
        }
        for (target, mut samples) in targets.iter().zip(samples) {
            if samples.is_empty() {
                continue;
            }
            samples.sort_by(|a, b| a.rate.total_cmp(&b.rate));
            let median = &samples[samples.len() / 2];
            rows.push(RedisBenchmarkRow {
                threads,
                server: target.name().to_owned(),
                requests_per_sec: median.rate,
                // The no-op responder spins: its CPU says nothing per request.
                server_ns_per_request: median
                    .server_ns
                    .filter(|_| matches!(target, Target::Running(_))),
                client_cores: median.client_cores,
            });
        }
    }
    rows
}

fn run_once(program: &std::path::Path, server: &Server, threads: u32) -> Option<Sample> {
    let addr = server.endpoint(Protocol::Redis)?;
    let server_before = server.cpu_time();
    let client_before = children_cpu_time();
    let start = Instant::now();
    let output = std::process::Command::new(program)
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["-n", &REQUESTS.to_string(), "-P", "16", "-q"])
        .args(["PUBLISH", "ch", "msg"])
        .output()
        .ok()?;
    let wall = start.elapsed();
    let text = String::from_utf8_lossy(&output.stdout);
    // "PUBLISH ch msg: 123456.78 requests per second, p50=..."
    let rate = text
        .rsplit(':')
        .flat_map(|part| part.split_whitespace())
        .find_map(|word| word.parse::<f64>().ok())?;
    let used =
        |before: Option<Duration>, after: Option<Duration>| Some(after?.saturating_sub(before?));
    let server_ns =
        used(server_before, server.cpu_time()).map(|cpu| cpu.as_nanos() as f64 / REQUESTS as f64);
    let client_cores = used(client_before, children_cpu_time())
        .map(|cpu| cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9));
    Some(Sample {
        rate,
        server_ns,
        client_cores,
    })
}

/// The markdown section for `rows`.
pub fn markdown(rows: &[RedisBenchmarkRow], rounds: usize) -> String {
    let mut md = String::new();
    if rows.is_empty() {
        return md;
    }
    let _ = writeln!(
        md,
        "\n## redis-benchmark PUBLISH, pipelined\n\n\
         `redis-benchmark -n {REQUESTS} -P 16 --threads T -q PUBLISH ch msg` (50 clients, \
         16 requests in flight each), median of {rounds} runs per server, interleaved. With one \
         client thread the client needs about a whole core and sets the pace for both servers \
         (its CPU share is in the last column): the {NOOP_REDIS} row is herald-bench's own \
         endpoint that routes nothing and never sleeps, the most this client reaches against \
         any server here. With two client threads, the CPU a server spends per request is CPU \
         the client cannot use on these two cores, so the server's cost decides.\n"
    );
    let _ = writeln!(
        md,
        "| client threads | server | requests/s | vs redis-server | server CPU per request | client CPU |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for row in rows {
        let reference = rows
            .iter()
            .find(|r| r.threads == row.threads && r.server == "redis-server")
            .map(|r| r.requests_per_sec);
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {} | {} | {} |",
            row.threads,
            row.server,
            row.requests_per_sec,
            reference.map_or("—".into(), |r| format!(
                "{:.2}×",
                row.requests_per_sec / r
            )),
            row.server_ns_per_request
                .map_or("—".into(), |ns| format!("{ns:.0} ns")),
            row.client_cores
                .map_or("—".into(), |c| format!("{:.0} %", c * 100.0)),
        );
    }
    md
}
