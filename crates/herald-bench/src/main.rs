//! `herald-bench`: measure herald beside nats-server and redis-server through
//! real client crates (async-nats, redis), so any of them can be driven.
//!
//! `herald-bench run` measures one scenario against one server;
//! `herald-bench compare` starts all three and compares them side by side
//! (what `scripts/bench-compare` runs).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use herald_bench::compare::{CompareOptions, compare};
use herald_bench::scenario::{Client, Params, Protocol, Scenario, print_line};

/// Benchmark herald, nats-server and redis-server side by side.
#[derive(Debug, Parser)]
#[command(name = "herald-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one scenario against one server and print the result (a table line and JSON).
    Run(RunArgs),
    /// Start herald, nats-server and redis-server and compare them.
    Compare(CompareArgs),
    /// Subscribers that stop reading next to a healthy one: the healthy
    /// one's rate, the stuck ones closed, the server's memory.
    Stuck(StuckArgs),
    /// Serve a Redis endpoint that only answers (`:0` to PUBLISH), never
    /// sleeping: what redis-benchmark reaches when the server costs nothing.
    NoopRedis {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:6379")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Debug, Args)]
struct Knobs {
    /// Messages to publish per run (long enough that start-up noise does not dominate).
    #[arg(long, default_value_t = 2_000_000)]
    count: u64,
    /// Publish for this long instead of --count messages (e.g. `5s`).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Subscribers in the fan-out scenario.
    #[arg(long, default_value_t = 10)]
    fanout: usize,
    /// Publishers in the fan-in scenario.
    #[arg(long, default_value_t = 10)]
    fanin: usize,
    /// Members of the queue group.
    #[arg(long, default_value_t = 4)]
    queue: usize,
    /// Round trips in the request/reply scenario.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Client for NATS and Redis throughput scenarios: herald-bench's lean
    /// ones, or async-nats and the redis crate (request/reply always uses
    /// async-nats).
    #[arg(long, value_enum, default_value = "raw")]
    client: Client,
    /// Messages per stream scenario (persisted publish, pull consume).
    #[arg(long, default_value_t = 200_000)]
    js_count: u64,
    /// Stream publishes in flight at once.
    #[arg(long, default_value_t = 256)]
    js_window: u64,
    /// Distinct subjects the stream scenarios publish to
    /// (`bench.stream.<n mod N>`; 1: `bench.stream` only).
    #[arg(long, default_value_t = 1)]
    js_subjects: u64,
    /// The stream consumer's filter subject (async-nats consume scenario).
    #[arg(long)]
    js_filter: Option<String>,
}

impl Knobs {
    fn params(&self, size: usize) -> Params {
        Params {
            size,
            count: self.count,
            duration: self.duration,
            fanout: self.fanout,
            fanin: self.fanin,
            queue: self.queue,
            requests: self.requests,
            progress: !self.quiet,
            client: self.client,
            js_count: self.js_count,
            js_window: self.js_window,
            js_subjects: self.js_subjects.max(1),
            js_filter: self.js_filter.clone(),
        }
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Server URL (`nats://host:port`, `redis://host:port` or `mqtt://host:port`).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    server: String,
    /// The protocol, when the URL's scheme is not enough (`mqtt-qos1`).
    #[arg(long, value_enum)]
    protocol: Option<Protocol>,
    /// The scenario.
    #[arg(long, value_enum, default_value = "pub-sub")]
    scenario: Scenario,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 16)]
    size: usize,
    #[command(flatten)]
    knobs: Knobs,
}

#[derive(Debug, Args)]
struct StuckArgs {
    /// Server URL (`nats://host:port`).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    server: String,
    /// Subscribers that stop reading.
    #[arg(long, default_value_t = 10)]
    stuck: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// How long the publisher runs.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The server's process id, to read its memory.
    #[arg(long)]
    pid: Option<u32>,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// The herald binary to benchmark.
    #[arg(long, default_value = "target/release/herald")]
    herald: PathBuf,
    /// Scenarios (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Payload sizes.
    #[arg(long, value_delimiter = ',', default_value = "16,1024")]
    sizes: Vec<usize>,
    /// Runs per scenario and server; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Idle connections held open to measure memory per connection (0 = skip).
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Messages per MQTT run (mosquitto is slow; the NATS count would take minutes).
    #[arg(long, default_value_t = 500_000)]
    mqtt_count: u64,
    /// Output directory for JSON and the chart.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Write the markdown summary here.
    #[arg(long)]
    docs: Option<PathBuf>,
    /// Stream sizes for the async-nats consume-with-ack runs (empty: skip).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    stream_sizes: Vec<u64>,
    /// Skip the NATS core scenarios through async-nats.
    #[arg(long)]
    no_client_rows: bool,
    /// Subscribers that stop reading in the stuck runs (0: skip them).
    #[arg(long, default_value_t = 10)]
    stuck: usize,
    /// How long each stuck run publishes.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    stuck_duration: Duration,
    #[command(flatten)]
    knobs: Knobs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("herald-bench: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herald-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::NoopRedis { listen } => {
            let listener = std::net::TcpListener::bind(listen)
                .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
            tokio::task::spawn_blocking(move || herald_bench::noop_redis::serve(listener))
                .await??;
            Ok(())
        }
        Command::Stuck(args) => {
            let report = herald_bench::stuck::run(
                &args.server,
                args.stuck,
                args.size,
                args.duration,
                args.pid,
            )
            .await?;
            let mib = |b: Option<u64>| {
                b.map_or("—".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0))
            };
            print_line(&format!(
                "{} stuck · healthy {:.1} MiB/s · published {} ({:.0}/s) · stuck closed {} · peak RSS {} · after {}",
                report.stuck,
                report.healthy_mib_per_sec,
                report.published,
                report.published as f64 / report.seconds,
                report.stuck_closed,
                mib(report.peak_rss),
                mib(report.rss_after)
            ));
            print_line(&serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Run(args) => {
            let params = args.knobs.params(args.size);
            let protocol = args.protocol.unwrap_or({
                if args.server.starts_with("redis") {
                    Protocol::Redis
                } else if args.server.starts_with("mqtt") {
                    Protocol::Mqtt
                } else {
                    Protocol::Nats
                }
            });
            let mut outcome =
                herald_bench::scenario::run(&args.server, protocol, args.scenario, &params).await?;
            outcome.target = args.server.clone();
            print_line(&format!(
                "{:<12} {:>6} B  {:>12.0} msgs/s  {:>8.1} MB/s  received {}/{}  lost {}  disconnects {}{}",
                args.scenario.label(&params),
                params.size,
                outcome.msgs_per_sec,
                outcome.mb_per_sec,
                outcome.received,
                outcome.expected,
                outcome.lost,
                outcome.disconnects,
                outcome
                    .latency_us
                    .map(|l| format!(
                        "  p50 {:.0} µs  p90 {:.0} µs  p99 {:.0} µs  p99.9 {:.0} µs",
                        l.p50, l.p90, l.p99, l.p999
                    ))
                    .unwrap_or_default()
            ));
            print_line(&serde_json::to_string(&outcome)?);
            Ok(())
        }
        Command::Compare(args) => {
            let scenarios = if args.scenarios.is_empty() {
                Scenario::ALL.to_vec()
            } else {
                args.scenarios.clone()
            };
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            let options = CompareOptions {
                herald: args.herald.clone(),
                scenarios,
                sizes: args.sizes.clone(),
                rounds: args.rounds.max(1),
                params: args.knobs.params(16),
                idle: args.idle,
                mqtt_count: args.mqtt_count,
                out_dir: args.out.clone(),
                docs: args.docs.clone(),
                command: std::env::var("HERALD_BENCH_COMMAND").unwrap_or(command),
                stream_sizes: args.stream_sizes.clone(),
                client_rows: !args.no_client_rows,
                stuck: args.stuck,
                stuck_duration: args.stuck_duration,
            };
            compare(&options).await?;
            Ok(())
        }
    }
}
