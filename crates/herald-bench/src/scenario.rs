//! What a benchmark run measures, and what it reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// A traffic shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// One publisher, nobody subscribed: how fast the server takes messages in.
    Pub,
    /// One publisher, one subscriber.
    PubSub,
    /// One publisher, N subscribers, each on its own connection.
    Fanout,
    /// N publishers, one subscriber.
    Fanin,
    /// One publisher, a queue group of N members.
    Queue,
    /// Request/reply round trips, one at a time, with latency percentiles.
    ReqRep,
    /// Publishes into a file-backed stream, each acknowledged once stored,
    /// with a window of publishes in flight.
    JsPub,
    /// Consumes a file-backed stream through a pull consumer, acking each message.
    JsConsume,
    /// The same through async-nats's JetStream API (`messages()`, `ack()`).
    JsConsumeClient,
    /// Three nodes of a cluster: one publisher on the first, N subscribers
    /// spread over the other two (every message crosses a route).
    ClusterFanout,
    /// Three nodes of a cluster: publishes with acks into a stream with
    /// three replicas (acked once a quorum stored them), through the first.
    ClusterJsPub,
}

impl Scenario {
    /// Every scenario, in report order.
    pub const ALL: [Scenario; 11] = [
        Scenario::Pub,
        Scenario::PubSub,
        Scenario::Fanout,
        Scenario::Fanin,
        Scenario::Queue,
        Scenario::ReqRep,
        Scenario::JsPub,
        Scenario::JsConsume,
        Scenario::JsConsumeClient,
        Scenario::ClusterFanout,
        Scenario::ClusterJsPub,
    ];

    /// A short label for tables and charts.
    pub fn label(self, params: &Params) -> String {
        match self {
            Scenario::Pub => "pub only".to_owned(),
            Scenario::PubSub => "1→1".to_owned(),
            Scenario::Fanout => format!("1→{}", params.fanout),
            Scenario::Fanin => format!("{}→1", params.fanin),
            Scenario::Queue => format!("queue of {}", params.queue),
            Scenario::ReqRep => "req/rep".to_owned(),
            Scenario::JsPub => format!("stream pub ({} in flight)", params.js_window),
            Scenario::JsConsume => "stream pull+ack".to_owned(),
            Scenario::JsConsumeClient => "stream pull+ack (async-nats)".to_owned(),
            Scenario::ClusterFanout => format!("1→{} across nodes", params.fanout),
            Scenario::ClusterJsPub => format!("R3 stream pub ({} in flight)", params.js_window),
        }
    }

    /// The connections a throughput scenario uses; `None` for request/reply.
    pub(crate) fn shape(self, params: &Params) -> Option<Shape> {
        let (subscribers, publishers, queue) = match self {
            Scenario::Pub => (0, 1, false),
            Scenario::PubSub => (1, 1, false),
            Scenario::Fanout | Scenario::ClusterFanout => (params.fanout, 1, false),
            Scenario::Fanin => (1, params.fanin, false),
            Scenario::Queue => (params.queue, 1, true),
            Scenario::ReqRep
            | Scenario::ClusterJsPub
            | Scenario::JsPub
            | Scenario::JsConsume
            | Scenario::JsConsumeClient => {
                return None;
            }
        };
        Some(Shape {
            subscribers,
            publishers,
            queue,
        })
    }

    /// Whether this is a stream (persisted) scenario.
    pub fn is_stream(self) -> bool {
        matches!(
            self,
            Scenario::JsPub | Scenario::JsConsume | Scenario::JsConsumeClient
        )
    }

    /// Whether `protocol` has this traffic shape (Redis has no queue groups
    /// and no request/reply).
    pub fn supports(self, protocol: Protocol) -> bool {
        if matches!(self, Scenario::ClusterFanout | Scenario::ClusterJsPub) {
            // Runs against clusters only (see `passes::cluster`).
            return false;
        }
        match protocol {
            Protocol::Nats => true,
            Protocol::Redis => {
                !matches!(self, Scenario::Queue | Scenario::ReqRep) || self.is_stream()
            }
            Protocol::Mqtt | Protocol::MqttQos1 => {
                matches!(self, Scenario::PubSub | Scenario::Fanout | Scenario::Fanin)
            }
        }
    }
}

/// Subscribers and publishers of a throughput scenario.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Subscriber connections.
    pub(crate) subscribers: usize,
    /// Publisher connections.
    pub(crate) publishers: usize,
    /// The subscribers form one queue group.
    pub(crate) queue: bool,
}

impl Shape {
    /// Deliveries each published message should make.
    pub(crate) fn per_message(self) -> u64 {
        if self.queue {
            1
        } else {
            self.subscribers as u64
        }
    }

    /// Messages each publisher sends so that they share `count` evenly.
    pub(crate) fn per_publisher(self, count: u64) -> u64 {
        count / self.publishers as u64
    }
}

/// The wire protocol a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// The NATS client protocol, through async-nats.
    Nats,
    /// Redis pub/sub, through the redis crate.
    Redis,
    /// MQTT 3.1.1 at QoS 0, through herald-bench's own client.
    Mqtt,
    /// MQTT 3.1.1 at QoS 1 (publishes acknowledged, deliveries acknowledged).
    MqttQos1,
}

impl Protocol {
    /// The protocol's name as people write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nats => "NATS",
            Self::Redis => "Redis",
            Self::Mqtt => "MQTT",
            Self::MqttQos1 => "MQTT QoS 1",
        }
    }
}

/// Which client drives NATS and Redis throughput scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Client {
    /// herald-bench's lean clients (batched writes, counting in place): the
    /// client's own CPU cost stays small, so servers' differences show.
    Raw,
    /// The client crates applications use: async-nats and redis.
    #[value(alias = "async-nats")]
    Crate,
}

/// Knobs of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// Payload size in bytes.
    pub size: usize,
    /// Messages to publish (in total, across publishers).
    pub count: u64,
    /// Publish for this long instead of `count` messages.
    #[serde(skip)]
    pub duration: Option<Duration>,
    /// Subscribers in the fan-out scenario.
    pub fanout: usize,
    /// Publishers in the fan-in scenario.
    pub fanin: usize,
    /// Members of the queue group.
    pub queue: usize,
    /// Round trips in the request/reply scenario.
    pub requests: u64,
    /// Print a progress line on stderr.
    #[serde(skip)]
    pub progress: bool,
    /// The client for NATS and Redis throughput scenarios (request/reply
    /// always uses async-nats).
    pub client: Client,
    /// Messages in each stream scenario.
    pub js_count: u64,
    /// Stream publishes in flight (unacknowledged) at once.
    pub js_window: u64,
    /// Distinct subjects stream scenarios publish to.
    pub js_subjects: u64,
    /// The consumer's filter subject in the async-nats consume scenario.
    pub js_filter: Option<String>,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            size: 16,
            count: 2_000_000,
            duration: None,
            fanout: 10,
            fanin: 10,
            queue: 4,
            requests: 20_000,
            progress: true,
            client: Client::Raw,
            js_count: 200_000,
            js_window: 256,
            js_subjects: 1,
            js_filter: None,
        }
    }
}

/// Round-trip latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
}

impl Latency {
    /// Percentiles of `samples` (sorted here).
    pub fn from_samples(samples: &mut [Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i].as_secs_f64() * 1e6
        };
        Some(Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
        })
    }
}

/// What one run measured. Only messages that arrived are counted.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The traffic shape.
    pub scenario: Scenario,
    /// Which server (a name given by the caller, e.g. `herald`).
    pub target: String,
    /// The protocol used to reach it.
    pub protocol: Protocol,
    /// Payload size in bytes.
    pub size: usize,
    /// Messages published.
    pub published: u64,
    /// Deliveries expected (published × receivers per message).
    pub expected: u64,
    /// Deliveries that arrived.
    pub received: u64,
    /// `expected - received`: dropped somewhere.
    pub lost: u64,
    /// Disconnections and slow-consumer events the clients saw.
    pub disconnects: u64,
    /// From the first publish to the last delivery.
    pub elapsed_secs: f64,
    /// Deliveries per second (publishes per second for `pub`, round trips for `req_rep`).
    pub msgs_per_sec: f64,
    /// Payload megabytes per second, same basis.
    pub mb_per_sec: f64,
    /// Round-trip latency (request/reply only).
    pub latency_us: Option<Latency>,
    /// The client that drove the run.
    pub client: Client,
    /// CPU time the server spent on the run (user and system), when known.
    pub server_cpu_secs: Option<f64>,
}

impl Outcome {
    /// Server CPU nanoseconds per delivered message (per publish for `pub`).
    pub fn cpu_ns_per_msg(&self) -> Option<f64> {
        let basis = if self.scenario == Scenario::Pub {
            self.published
        } else {
            self.received
        };
        let cpu = self.server_cpu_secs?;
        (basis > 0).then(|| cpu * 1e9 / basis as f64)
    }
}

impl Outcome {
    /// Builds the outcome and its rates.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        scenario: Scenario,
        protocol: Protocol,
        size: usize,
        published: u64,
        expected: u64,
        received: u64,
        disconnects: u64,
        elapsed: Duration,
    ) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let basis = if scenario == Scenario::Pub {
            published
        } else {
            received
        };
        Self {
            scenario,
            target: String::new(),
            protocol,
            size,
            published,
            expected,
            received,
            lost: expected.saturating_sub(received),
            disconnects,
            elapsed_secs: secs,
            msgs_per_sec: basis as f64 / secs,
            mb_per_sec: (basis as f64 * size as f64) / secs / 1e6,
            latency_us: None,
            client: Client::Raw,
            server_cpu_secs: None,
        }
    }
}

/// Counts deliveries across receiver tasks and tells them when to stop.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    received: Arc<AtomicU64>,
    disconnects: Arc<AtomicU64>,
    stop: CancellationToken,
}

/// Give up waiting for the rest once nothing arrived for this long.
const QUIET: Duration = Duration::from_secs(3);

impl Tally {
    pub(crate) fn new() -> Self {
        Self {
            received: Arc::new(AtomicU64::new(0)),
            disconnects: Arc::new(AtomicU64::new(0)),
            stop: CancellationToken::new(),
        }
    }

    pub(crate) fn hit(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn hits(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn disconnected(&self) {
        self.disconnects.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub(crate) fn disconnects(&self) -> u64 {
        self.disconnects.load(Ordering::Relaxed)
    }

    /// Forgets what was counted so far (the probes before a measured run).
    pub(crate) fn reset(&self) {
        self.received.store(0, Ordering::Relaxed);
    }

    pub(crate) fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    /// Waits until `expected` deliveries arrived, or nothing arrived for a
    /// while once publishing is over; then tells the receivers to stop.
    pub(crate) async fn wait(&self, expected: u64, label: &str, progress: bool) {
        let mut last = self.received();
        let mut quiet_since = Instant::now();
        loop {
            let now = self.received();
            if progress {
                eprint!("\r  {label}: {now}/{expected} received   ");
            }
            if now >= expected {
                break;
            }
            if now != last {
                last = now;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() > QUIET {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if progress {
            eprint!("\r{:70}\r", "");
        }
        self.stop.cancel();
    }
}

/// What a throughput run has when publishing is done.
pub(crate) struct Published {
    pub(crate) scenario: Scenario,
    pub(crate) protocol: Protocol,
    /// Messages published.
    pub(crate) count: u64,
    /// Deliveries each message should make.
    pub(crate) per_message: u64,
    /// When publishing started and when the server had taken it all in.
    pub(crate) start: Instant,
    pub(crate) end: Instant,
}

/// Runs `shape.publishers` publishers at once, `publish(n, share)` each
/// sending its share of the count, then waits for `receivers` and measures
/// the run: the second half of every throughput scenario, whatever the client.
///
/// # Errors
/// The first publisher that failed.
pub(crate) async fn publish_and_finish<F, Fut>(
    (scenario, protocol, shape): (Scenario, Protocol, Shape),
    params: &Params,
    tally: &Tally,
    receivers: Vec<tokio::task::JoinHandle<Option<Instant>>>,
    publish: F,
) -> anyhow::Result<Outcome>
where
    F: Fn(usize, u64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let share = shape.per_publisher(params.count);
    let start = Instant::now();
    let published: u64 =
        futures::future::try_join_all((0..shape.publishers).map(|n| publish(n, share)))
            .await?
            .into_iter()
            .sum();
    let end = Instant::now();
    let run = Published {
        scenario,
        protocol,
        count: published,
        per_message: shape.per_message(),
        start,
        end,
    };
    Ok(finish(tally, receivers, run, params).await)
}

/// Waits for the receivers, then measures from the first publish to the
/// last delivery: the end of every throughput run, whatever the client.
pub(crate) async fn finish(
    tally: &Tally,
    receivers: Vec<tokio::task::JoinHandle<Option<Instant>>>,
    run: Published,
    params: &Params,
) -> Outcome {
    let expected = run.count * run.per_message;
    tally
        .wait(expected, &run.scenario.label(params), params.progress)
        .await;
    let mut end = run.end;
    for receiver in receivers {
        if let Ok(Some(last)) = receiver.await {
            end = end.max(last);
        }
    }
    Outcome::new(
        run.scenario,
        run.protocol,
        params.size,
        run.count,
        expected,
        tally.received(),
        tally.disconnects(),
        end - run.start,
    )
}

/// Runs `scenario` against the server at `url` over `protocol`, with the
/// client `params` chooses: [`prepare`], then [`run_prepared`].
///
/// # Errors
/// Connection or protocol failures.
pub async fn run(
    url: &str,
    protocol: Protocol,
    scenario: Scenario,
    params: &Params,
) -> anyhow::Result<Outcome> {
    prepare(url, protocol, scenario, params).await?;
    run_prepared(url, protocol, scenario, params).await
}

/// What a scenario needs in place before it is measured (a filled stream
/// for the stream consume scenarios); nothing for the others.
///
/// # Errors
/// Connection or setup failures.
pub async fn prepare(
    url: &str,
    protocol: Protocol,
    scenario: Scenario,
    params: &Params,
) -> anyhow::Result<()> {
    if protocol == Protocol::Nats && scenario.is_stream() {
        crate::jetstream::prepare(url, scenario, params).await?;
    }
    Ok(())
}

/// The measured part of a scenario (after [`prepare`]).
///
/// # Errors
/// Connection or protocol failures.
pub async fn run_prepared(
    url: &str,
    protocol: Protocol,
    scenario: Scenario,
    params: &Params,
) -> anyhow::Result<Outcome> {
    let mut outcome = run_measured(url, protocol, scenario, params).await?;
    outcome.client = match scenario {
        Scenario::ReqRep | Scenario::JsConsumeClient => Client::Crate,
        Scenario::JsPub | Scenario::JsConsume => Client::Raw,
        _ => params.client,
    };
    Ok(outcome)
}

async fn run_measured(
    url: &str,
    protocol: Protocol,
    scenario: Scenario,
    params: &Params,
) -> anyhow::Result<Outcome> {
    match protocol {
        Protocol::Redis if params.client == Client::Crate => {
            crate::redis::run(url, scenario, params).await
        }
        Protocol::Redis => crate::raw_redis::run(url, scenario, params).await,
        Protocol::Mqtt | Protocol::MqttQos1 => {
            crate::mqtt::run(url, protocol, scenario, params).await
        }
        Protocol::Nats if scenario.is_stream() => {
            crate::jetstream::run(url, scenario, params).await
        }
        // Against one node of a cluster (the others found by the server).
        Protocol::Nats if scenario == Scenario::ClusterJsPub => {
            crate::jetstream::run_replicated_publish(url, params).await
        }
        Protocol::Nats if scenario == Scenario::ReqRep || params.client == Client::Crate => {
            crate::nats::run(url, scenario, params).await
        }
        Protocol::Nats => crate::raw_nats::run(url, scenario, params).await,
    }
}

/// How many messages a publisher sends next: `batch`, fewer at the end of
/// `count`, none once `count` is sent or `duration` (when given) has passed
/// since `start`.
pub(crate) fn next_batch(
    duration: Option<Duration>,
    start: Instant,
    sent: u64,
    count: u64,
    batch: u64,
) -> Option<u64> {
    match duration {
        Some(limit) if start.elapsed() >= limit => None,
        Some(_) => Some(batch),
        None if sent >= count => None,
        None => Some(batch.min(count - sent)),
    }
}

/// Prints a line on stdout; a closed pipe (`| head`) is not an error worth a panic.
pub fn print_line(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}
