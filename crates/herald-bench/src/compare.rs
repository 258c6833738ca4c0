//! `herald-bench compare`: herald, nats-server and redis-server started side
//! by side on loopback, the same scenarios run against each, interleaved
//! round by round so that machine noise hits every server alike; medians,
//! ratios, memory, a JSON file, a chart and a markdown summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::scenario::{Outcome, Params, Protocol, Scenario};
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
    fn label(&self) -> String {
        format!("{} ({})", self.server, self.protocol)
    }
}

/// The median outcome of one (scenario, size, target).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Scenario.
    pub scenario: Scenario,
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
    /// Every run.
    pub runs: Vec<Outcome>,
}

/// The herald started with `--sync always`, for the stream scenarios.
const SYNC_ALWAYS: &str = "herald-sync-always";

fn median(values: &mut [f64]) -> f64 {
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
                    if !scenario.supports(protocol) {
                        continue;
                    }
                    if servers[i].name == SYNC_ALWAYS
                        && (!scenario.is_stream() || protocol != Protocol::Nats)
                    {
                        continue;
                    }
                    let server = &servers[i];
                    let url = server.url(protocol).context("endpoint")?;
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
                    let result = crate::scenario::run(&url, protocol, scenario, &params).await;
                    match result {
                        Ok(mut outcome) => {
                            outcome.target = server.name.clone();
                            crate::scenario::print_line(&serde_json::to_string(&outcome)?);
                            runs.push(outcome);
                        }
                        Err(error) => eprintln!("  failed: {error:#}"),
                    }
                    // Let the servers settle between runs.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
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
        runs,
    };
    write_outputs(&report, options)?;
    Ok(report)
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
    let mut groups: BTreeMap<(usize, usize, Target), Vec<&Outcome>> = BTreeMap::new();
    for run in runs {
        let order = Scenario::ALL
            .iter()
            .position(|s| *s == run.scenario)
            .unwrap_or(0);
        let target = Target {
            server: run.target.clone(),
            protocol: format!("{:?}", run.protocol).to_lowercase(),
        };
        groups
            .entry((order, run.size, target))
            .or_default()
            .push(run);
    }
    groups
        .into_iter()
        .map(|((_, size, target), outs)| {
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
            Row {
                scenario,
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

/// The rate of `server` for the row's scenario and size, if measured.
fn rate(rows: &[Row], row: &Row, server: &str, protocol: &str) -> Option<f64> {
    rows.iter()
        .find(|r| {
            r.scenario == row.scenario
                && r.size == row.size
                && r.target.server == server
                && r.target.protocol == protocol
        })
        .map(|r| r.msgs_per_sec)
}

fn fmt_rate(rate: Option<f64>) -> String {
    match rate {
        Some(r) if r >= 1e6 => format!("{:.2} M/s", r / 1e6),
        Some(r) => format!("{:.0} k/s", r / 1e3),
        None => "—".into(),
    }
}

fn fmt_ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

/// The markdown summary.
pub fn markdown(report: &Report) -> String {
    let rows = &report.rows;
    let mut md = String::new();
    let _ = writeln!(md, "# herald benchmarks\n");
    let _ = writeln!(
        md,
        "Measured {} on {}. Produced by:\n\n```sh\n{}\n```\n",
        report.date, report.machine, report.command
    );
    let _ = writeln!(
        md,
        "Every scenario ran {} times per server, interleaved (the order rotates every round); \
         the table shows medians. Rates count only deliveries that arrived. Clients: {}, \
         async-nats for request/reply; all on the same machine as the servers, sharing its \
         cores.\n",
        report.rounds,
        match report.params.client {
            crate::scenario::Client::Raw => {
                "herald-bench's lean clients for NATS and Redis throughput (batched writes; \
                 subscribers count frames in place; Redis publishers pipeline 64 PUBLISHes, \
                 at most 1,024 unanswered)"
            }
            crate::scenario::Client::Crate => {
                "async-nats for NATS throughput and the redis crate (pipelines of 64) for Redis"
            }
        }
    );
    let _ = writeln!(
        md,
        "| scenario | payload | herald (nats) | nats-server | herald / nats-server | herald (redis) | redis-server | herald / redis-server | lost | disconnects |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    let mut seen = std::collections::BTreeSet::new();
    for row in rows {
        if !seen.insert((row.scenario as usize, row.size)) {
            continue;
        }
        let herald_nats = rate(rows, row, "herald", "nats");
        let nats = rate(rows, row, "nats-server", "nats");
        let herald_redis = rate(rows, row, "herald", "redis");
        let redis = rate(rows, row, "redis-server", "redis");
        // Losses per server: a loss is one server's, not the scenario's.
        let per_server = |field: fn(&Row) -> u64| {
            let parts: Vec<String> = rows
                .iter()
                .filter(|r| r.scenario == row.scenario && r.size == row.size && field(r) > 0)
                .map(|r| format!("{} {}", r.target.label(), field(r)))
                .collect();
            if parts.is_empty() {
                "0".to_owned()
            } else {
                parts.join(", ")
            }
        };
        let _ = writeln!(
            md,
            "| {} | {} B | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.label,
            row.size,
            fmt_rate(herald_nats),
            fmt_rate(nats),
            fmt_ratio(herald_nats, nats),
            fmt_rate(herald_redis),
            fmt_rate(redis),
            fmt_ratio(herald_redis.or(herald_nats), redis),
            per_server(|r| r.lost),
            per_server(|r| r.disconnects)
        );
    }
    let _ = writeln!(
        md,
        "\n\"herald / redis-server\" compares both over Redis where herald has its Redis \
         listener, otherwise herald over NATS. Losses and disconnects name the server that \
         had them (redis-server closes subscribers past its 32 MB output-buffer limit; \
         herald's publishers wait for slow subscribers instead, up to a bound).\n"
    );
    let streams: Vec<&Row> = rows
        .iter()
        .filter(|r| r.scenario.is_stream() && r.target.server == "herald")
        .collect();
    if !streams.is_empty() {
        let _ = writeln!(
            md,
            "## Streams
"
        );
        let _ = writeln!(
            md,
            "Persisted publish with acks and pull consume with acks, against nats-server's \
             file store (JetStream on, its defaults: no fsync per message). herald's default \
             `--sync 1s` acks once the data is in the kernel and fsyncs every second; \
             `--sync always` fsyncs before every ack (publishes that arrive together share \
             one fsync).\n"
        );
        let _ = writeln!(
            md,
            "| scenario | payload | herald (sync 1s) | herald (sync always) | nats-server | herald / nats-server | herald always / nats-server |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|");
        for row in streams {
            let herald = rate(rows, row, "herald", "nats");
            let always = rate(rows, row, SYNC_ALWAYS, "nats");
            let nats = rate(rows, row, "nats-server", "nats");
            let _ = writeln!(
                md,
                "| {} | {} B | {} | {} | {} | {} | {} |",
                row.label,
                row.size,
                fmt_rate(herald),
                fmt_rate(always),
                fmt_rate(nats),
                fmt_ratio(herald, nats),
                fmt_ratio(always, nats)
            );
        }
        md.push('\n');
    }
    let mqtt: Vec<&Row> = rows
        .iter()
        .filter(|r| r.target.server == "herald" && r.target.protocol == "mqtt")
        .collect();
    if !mqtt.is_empty() {
        let _ = writeln!(md, "## MQTT\n");
        let _ = writeln!(
            md,
            "MQTT 3.1.1 clients (herald-bench's own, on herald's codec) against herald's MQTT \
             listener and mosquitto (persistence off, queue limits lifted), {} messages per \
             run. At QoS 1 every publish and every delivery is acknowledged.\n",
            report.mqtt_count
        );
        let _ = writeln!(
            md,
            "| scenario | payload | herald QoS 0 | mosquitto QoS 0 | herald / mosquitto | herald QoS 1 | mosquitto QoS 1 | herald / mosquitto |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
        for row in mqtt {
            let h0 = rate(rows, row, "herald", "mqtt");
            let m0 = rate(rows, row, "mosquitto", "mqtt");
            let h1 = rate(rows, row, "herald", "mqttqos1");
            let m1 = rate(rows, row, "mosquitto", "mqttqos1");
            let _ = writeln!(
                md,
                "| {} | {} B | {} | {} | {} | {} | {} | {} |",
                row.label,
                row.size,
                fmt_rate(h0),
                fmt_rate(m0),
                fmt_ratio(h0, m0),
                fmt_rate(h1),
                fmt_rate(m1),
                fmt_ratio(h1, m1)
            );
        }
        md.push('\n');
    }
    let latency: Vec<&Row> = rows.iter().filter(|r| r.p99_us.is_some()).collect();
    if !latency.is_empty() {
        let _ = writeln!(md, "## Request/reply latency\n");
        let _ = writeln!(md, "| payload | server | p50 | p99 |");
        let _ = writeln!(md, "|---|---|---|---|");
        for row in latency {
            let _ = writeln!(
                md,
                "| {} B | {} | {:.0} µs | {:.0} µs |",
                row.size,
                row.target.label(),
                row.p50_us.unwrap_or(0.0),
                row.p99_us.unwrap_or(0.0)
            );
        }
        md.push('\n');
    }
    let _ = writeln!(md, "## Memory\n");
    let _ = writeln!(
        md,
        "Per idle connection: the growth of the resident size while holding {} connections \
         that did their handshake (NATS `CONNECT` and `PING`, Redis `PING`, MQTT `CONNECT`), divided by their \
         number, measured on each server freshly started, before any run.\n",
        report.idle
    );
    let _ = writeln!(
        md,
        "| server | RSS after the runs | peak RSS | per idle connection |"
    );
    let _ = writeln!(md, "|---|---|---|---|");
    for m in &report.memory {
        let _ = writeln!(
            md,
            "| {} | {:.1} MiB | {:.1} MiB | {} |",
            m.server,
            m.after_runs.rss as f64 / 1048576.0,
            m.after_runs.peak as f64 / 1048576.0,
            idle_label(&m.per_idle_connection)
        );
    }
    md.push_str(&crate::redis_benchmark::markdown(
        &report.redis_benchmark,
        report.rounds,
    ));
    let _ = writeln!(
        md,
        "\nRaw results: `target/bench/compare.json`; chart: `target/bench/throughput.png`."
    );
    md
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
    let md = markdown(report);
    crate::scenario::print_line(&format!("\n{md}"));
    if let Some(docs) = &options.docs {
        std::fs::write(docs, &md).with_context(|| format!("writing {}", docs.display()))?;
        eprintln!("wrote {}", docs.display());
    }
    eprintln!("wrote {} and {}", json.display(), png.display());
    Ok(())
}

/// "6.0 KB" for one protocol, "6.0 KB NATS · 5.1 KB Redis" for several.
fn idle_label(costs: &[IdleCost]) -> String {
    let kb = |c: &IdleCost| {
        c.bytes
            .map_or("—".into(), |b| format!("{:.1} KB", b / 1000.0))
    };
    match costs {
        [] => "—".into(),
        [one] => kb(one),
        many => many
            .iter()
            .map(|c| format!("{} {}", kb(c), c.protocol.name()))
            .collect::<Vec<_>>()
            .join(" · "),
    }
}
