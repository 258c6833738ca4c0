//! `herald-bench compare`: herald, nats-server and redis-server started side
//! by side on loopback, the same scenarios run against each, interleaved
//! round by round so that machine noise hits every server alike; medians,
//! ratios, memory, a JSON file, a chart and a markdown summary.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::scenario::{Client, Outcome, Params, Protocol, Scenario};
use crate::servers::{Memory, Server, idle_connection_cost};

/// Options of a comparison.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// The herald binary to start.
    pub herald: PathBuf,
    /// Scenarios to run.
    pub scenarios: Vec<Scenario>,
    /// Payload sizes to run each scenario with.
    pub sizes: Vec<usize>,
    /// Rounds: each scenario runs this many times per server; the median counts.
    pub rounds: usize,
    /// Base parameters (count, fan-out width, ...).
    pub params: Params,
    /// Messages per MQTT run (mosquitto delivers about 150 k/s, so the
    /// NATS count would make its runs take minutes).
    pub mqtt_count: u64,
    /// Idle connections held open to measure memory per connection (0 = skip).
    pub idle: usize,
    /// Where JSON and the chart go.
    pub out_dir: PathBuf,
    /// Markdown summary to write, if any.
    pub docs: Option<PathBuf>,
    /// The command line that produced this, for the summary.
    pub command: String,
    /// Stream sizes the async-nats consume runs use (none: skipped).
    pub stream_sizes: Vec<u64>,
    /// Also run the NATS core scenarios through async-nats.
    pub client_rows: bool,
    /// Subscribers that stop reading in the stuck runs (0: skipped).
    pub stuck: usize,
    /// How long each stuck run publishes.
    pub stuck_duration: Duration,
}

/// One server reached through one protocol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Target {
    /// Server name.
    pub server: String,
    /// Protocol used.
    pub protocol: String,
}

impl Target {
    pub(crate) fn label(&self) -> String {
        format!("{} ({})", self.server, self.protocol)
    }
}

/// The median outcome of one (scenario, size, target, client, stream size).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Scenario.
    pub scenario: Scenario,
    /// The client that drove it.
    pub client: Client,
    /// Messages in the stream (the async-nats consume runs by stream size).
    pub stream_messages: Option<u64>,
    /// Median server CPU nanoseconds per delivered message.
    pub cpu_ns_per_msg: Option<f64>,
    /// Its label.
    pub label: String,
    /// Payload size.
    pub size: usize,
    /// Target.
    pub target: Target,
    /// Median deliveries per second over the rounds.
    pub msgs_per_sec: f64,
    /// Median p99 latency (req/rep), microseconds.
    pub p99_us: Option<f64>,
    /// Median p50 latency (req/rep), microseconds.
    pub p50_us: Option<f64>,
    /// Deliveries lost over all rounds.
    pub lost: u64,
    /// Disconnect / slow-consumer events over all rounds.
    pub disconnects: u64,
}

/// Memory figures of one server.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryRow {
    /// Server name.
    pub server: String,
    /// After all throughput runs.
    pub after_runs: Memory,
    /// Bytes per idle connection, per protocol measured.
    pub per_idle_connection: Vec<IdleCost>,
}

/// What an idle connection over one protocol costs a server.
#[derive(Debug, Clone, Serialize)]
pub struct IdleCost {
    /// The protocol the connections spoke.
    pub protocol: Protocol,
    /// Bytes per connection; `None` when the measurement failed.
    pub bytes: Option<f64>,
}

/// Everything a comparison produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When (UTC, RFC 3339).
    pub date: String,
    /// The machine.
    pub machine: String,
    /// The command that produced it.
    pub command: String,
    /// Parameters.
    pub params: Params,
    /// Messages per MQTT run.
    pub mqtt_count: u64,
    /// Idle connections held for the memory measure.
    pub idle: usize,
    /// Rounds per scenario.
    pub rounds: usize,
    /// Median rows.
    pub rows: Vec<Row>,
    /// Memory rows.
    pub memory: Vec<MemoryRow>,
    /// `redis-benchmark -P 16 PUBLISH`, per client thread count and server.
    pub redis_benchmark: Vec<crate::redis_benchmark::RedisBenchmarkRow>,
    /// Stuck-subscriber runs.
    pub stuck: Vec<crate::passes::StuckRow>,
    /// `nats-server --version` of the nats-server compared.
    pub nats_server_version: Option<String>,
    /// Every run.
    pub runs: Vec<Outcome>,
}

/// The herald started with `--sync always`, for the stream scenarios.
pub(crate) const SYNC_ALWAYS: &str = "herald-sync-always";

pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the comparison and writes its outputs.
///
/// # Errors
/// A server cannot start, or an output cannot be written.
pub async fn compare(options: &CompareOptions) -> anyhow::Result<Report> {
    let servers = vec![
        Server::herald(&options.herald)?,
        Server::nats_server()?,
        Server::redis_server()?,
        Server::mosquitto()?,
        // Streams also with an fsync before every ack (herald's default syncs once a second).
        Server::herald_with(&options.herald, SYNC_ALWAYS, &["--sync", "always"])?,
    ];
    let mut targets: Vec<(usize, Protocol)> = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        for (protocol, _) in &server.endpoints {
            targets.push((i, *protocol));
        }
    }
    // Idle connections first, while every server is fresh: after the runs
    // a server's heap has room left over from them, which new connections
    // would fill without the resident size growing.
    let idle_costs: Vec<Vec<IdleCost>> = servers
        .iter()
        .filter(|s| s.name != SYNC_ALWAYS)
        .map(|server| {
            if server.name == "herald" {
                idle_per_protocol(&options.herald, options.idle)
            } else {
                server
                    .endpoints
                    .first()
                    .map(|(protocol, _)| measure_idle(server, *protocol, options.idle))
                    .into_iter()
                    .collect()
            }
        })
        .collect();
    let mut runs = Vec::new();
    for round in 0..options.rounds {
        for &size in &options.sizes {
            for &scenario in &options.scenarios {
                // Rotate the order every round so no server always goes first.
                let mut order = targets.clone();
                let shift = round % order.len().max(1);
                order.rotate_left(shift);
                for (i, protocol) in order {
                    // Run by stream size below.
                    if !scenario.supports(protocol) || scenario == Scenario::JsConsumeClient {
                        continue;
                    }
                    if servers[i].name == SYNC_ALWAYS
                        && (!scenario.is_stream() || protocol != Protocol::Nats)
                    {
                        continue;
                    }
                    let server = &servers[i];
                    let mut params = Params {
                        size,
                        ..options.params.clone()
                    };
                    if matches!(protocol, Protocol::Mqtt | Protocol::MqttQos1) {
                        params.count = options.mqtt_count;
                        params.duration = None;
                    }
                    eprintln!(
                        "round {}/{} · {} {}B · {} ({protocol:?})",
                        round + 1,
                        options.rounds,
                        scenario.label(&params),
                        size,
                        server.name
                    );
                    if let Some(outcome) = measure(server, protocol, scenario, &params).await {
                        runs.push(outcome);
                    }
                }
            }
        }
    }
    if options.client_rows {
        runs.extend(crate::passes::with_async_nats(&servers[..2], options).await);
    }
    runs.extend(crate::passes::stream_sizes(&servers[..2], options).await);
    runs.extend(crate::passes::cluster(options).await);
    let rows = summarize(&runs, &options.params);
    let mut memory = Vec::new();
    for (server, per_idle_connection) in servers
        .iter()
        .filter(|s| s.name != SYNC_ALWAYS)
        .zip(idle_costs)
    {
        memory.push(MemoryRow {
            server: server.name.clone(),
            after_runs: server.memory()?,
            per_idle_connection,
        });
    }
    // Only the servers it compares, so nothing else is running meanwhile
    // (the stream-sync variant of herald answers PUBLISH the same way).
    let servers: Vec<Server> = servers
        .into_iter()
        .filter(|s| s.name != SYNC_ALWAYS && s.endpoint(Protocol::Redis).is_some())
        .collect();
    let redis_benchmark =
        crate::redis_benchmark::run(&servers.iter().collect::<Vec<_>>(), options.rounds);
    drop(servers);
    let stuck = crate::passes::stuck(options).await;
    let nats_server_version = crate::servers::newest_nats_server()
        .ok()
        .and_then(|p| crate::servers::version_of(&p));
    let report = Report {
        date: now_utc(),
        machine: machine(),
        command: options.command.clone(),
        params: options.params.clone(),
        mqtt_count: options.mqtt_count,
        idle: options.idle,
        rounds: options.rounds,
        rows,
        memory,
        redis_benchmark,
        stuck,
        nats_server_version,
        runs,
    };
    write_outputs(&report, options)?;
    Ok(report)
}

/// Runs one scenario against `server`: prepares it, then measures it with
/// the server's CPU time around the measured part. A failure is reported
/// and skipped.
pub(crate) async fn measure(
    server: &Server,
    protocol: Protocol,
    scenario: Scenario,
    params: &Params,
) -> Option<Outcome> {
    let url = server.url(protocol)?;
    eprintln!(
        "· {} {}B · {} ({protocol:?}, {:?} client{})",
        scenario.label(params),
        params.size,
        server.name,
        params.client,
        if scenario == Scenario::JsConsumeClient {
            format!(", {} messages", params.js_count)
        } else {
            String::new()
        }
    );
    if let Err(error) = crate::scenario::prepare(&url, protocol, scenario, params).await {
        eprintln!("  failed to prepare: {error:#}");
        return None;
    }
    let before = server.cpu_time();
    let result = crate::scenario::run_prepared(&url, protocol, scenario, params).await;
    let after = server.cpu_time();
    // Let the servers settle between runs.
    tokio::time::sleep(Duration::from_millis(200)).await;
    match result {
        Ok(mut outcome) => {
            outcome.target = server.name.clone();
            if let (Some(before), Some(after)) = (before, after) {
                outcome.server_cpu_secs = Some((after - before).as_secs_f64());
            }
            if let Ok(json) = serde_json::to_string(&outcome) {
                crate::scenario::print_line(&json);
            }
            Some(outcome)
        }
        Err(error) => {
            eprintln!("  failed: {error:#}");
            None
        }
    }
}

/// Bytes per idle connection to `server` over `protocol`, `None` when it
/// failed (the measurement is skipped when `count` is 0).
fn measure_idle(server: &Server, protocol: Protocol, count: usize) -> IdleCost {
    let bytes = (count > 0)
        .then(|| {
            eprintln!(
                "holding {count} idle {} connections to {}",
                protocol.name(),
                server.name
            );
            idle_connection_cost(server, protocol, count)
                .map_err(|error| eprintln!("  idle connections failed: {error:#}"))
                .ok()
        })
        .flatten();
    IdleCost { protocol, bytes }
}

/// herald's idle cost over each of its protocols, each on a herald of its
/// own started for it: a second measurement on the same process would find
/// heap room the first left behind.
fn idle_per_protocol(herald: &std::path::Path, count: usize) -> Vec<IdleCost> {
    [Protocol::Nats, Protocol::Redis, Protocol::Mqtt]
        .into_iter()
        .map(|protocol| match Server::herald(herald) {
            Ok(server) => measure_idle(&server, protocol, count),
            Err(error) => {
                eprintln!("  cannot start herald for idle connections: {error:#}");
                IdleCost {
                    protocol,
                    bytes: None,
                }
            }
        })
        .collect()
}

fn summarize(runs: &[Outcome], params: &Params) -> Vec<Row> {
    type Key = (usize, usize, Target, Client, Option<u64>);
    let mut groups: BTreeMap<Key, Vec<&Outcome>> = BTreeMap::new();
    for run in runs {
        let order = Scenario::ALL
            .iter()
            .position(|s| *s == run.scenario)
            .unwrap_or(0);
        let target = Target {
            server: run.target.clone(),
            protocol: format!("{:?}", run.protocol).to_lowercase(),
        };
        let stream_messages = (run.scenario == Scenario::JsConsumeClient).then_some(run.published);
        groups
            .entry((order, run.size, target, run.client, stream_messages))
            .or_default()
            .push(run);
    }
    groups
        .into_iter()
        .map(|((_, size, target, client, stream_messages), outs)| {
            let scenario = outs[0].scenario;
            let mut rates: Vec<f64> = outs.iter().map(|o| o.msgs_per_sec).collect();
            let mut p99: Vec<f64> = outs
                .iter()
                .filter_map(|o| o.latency_us.map(|l| l.p99))
                .collect();
            let mut p50: Vec<f64> = outs
                .iter()
                .filter_map(|o| o.latency_us.map(|l| l.p50))
                .collect();
            let mut cpu: Vec<f64> = outs.iter().filter_map(|o| o.cpu_ns_per_msg()).collect();
            Row {
                scenario,
                client,
                stream_messages,
                cpu_ns_per_msg: (!cpu.is_empty()).then(|| median(&mut cpu)),
                label: scenario.label(params),
                size,
                target,
                msgs_per_sec: median(&mut rates),
                p99_us: (!p99.is_empty()).then(|| median(&mut p99)),
                p50_us: (!p50.is_empty()).then(|| median(&mut p50)),
                lost: outs.iter().map(|o| o.lost).sum(),
                disconnects: outs.iter().map(|o| o.disconnects).sum(),
            }
        })
        .collect()
}

fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cores} cores, {cpu}, {mem_gib:.0} GiB")
}

fn write_outputs(report: &Report, options: &CompareOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.out_dir)
        .with_context(|| format!("creating {}", options.out_dir.display()))?;
    let json = options.out_dir.join("compare.json");
    std::fs::write(&json, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let png = options.out_dir.join("throughput.png");
    if let Err(error) = crate::chart::draw(report, &png) {
        eprintln!("chart not drawn: {error:#}");
    }
    let md = crate::summary::markdown(report);
    crate::scenario::print_line(&format!("\n{md}"));
    if let Some(docs) = &options.docs {
        std::fs::write(docs, &md).with_context(|| format!("writing {}", docs.display()))?;
        eprintln!("wrote {}", docs.display());
    }
    eprintln!("wrote {} and {}", json.display(), png.display());
    Ok(())
}
