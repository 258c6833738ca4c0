//! The comparison's passes beyond the main matrix, herald against
//! nats-server: the NATS core scenarios through async-nats (the client
//! applications use), stream consumption by stream size through
//! async-nats's JetStream API, and subscribers that stop reading.

use std::time::Duration;

use serde::Serialize;

use crate::compare::{CompareOptions, measure, median};
use crate::scenario::{Client, Outcome, Params, Protocol, Scenario};
use crate::servers::Server;

/// The NATS core throughput scenarios, again with async-nats as the client.
pub(crate) async fn with_async_nats(servers: &[Server], options: &CompareOptions) -> Vec<Outcome> {
    let scenarios: Vec<Scenario> = [
        Scenario::PubSub,
        Scenario::Fanout,
        Scenario::Fanin,
        Scenario::Queue,
    ]
    .into_iter()
    .filter(|s| options.scenarios.contains(s))
    .collect();
    let mut runs = Vec::new();
    for round in 0..options.rounds {
        for &size in &options.sizes {
            for &scenario in &scenarios {
                let params = Params {
                    size,
                    client: Client::Crate,
                    ..options.params.clone()
                };
                for server in rotated(servers, round) {
                    runs.extend(measure(server, Protocol::Nats, scenario, &params).await);
                }
            }
        }
    }
    runs
}

/// Consume with acks through async-nats's JetStream API from streams of
/// each of `options.stream_sizes` messages (16 B each).
pub(crate) async fn stream_sizes(servers: &[Server], options: &CompareOptions) -> Vec<Outcome> {
    let mut runs = Vec::new();
    for round in 0..options.rounds {
        for &messages in &options.stream_sizes {
            let params = Params {
                size: 16,
                js_count: messages,
                ..options.params.clone()
            };
            for server in rotated(servers, round) {
                runs.extend(
                    measure(server, Protocol::Nats, Scenario::JsConsumeClient, &params).await,
                );
            }
        }
    }
    runs
}

/// The cluster rows: a three-node herald cluster and a three-node
/// nats-server cluster, the cross-node fan-out against each, interleaved;
/// server CPU is the three processes' sum.
pub(crate) async fn cluster(options: &CompareOptions) -> Vec<Outcome> {
    let clusters = match (
        Server::herald_cluster(&options.herald),
        Server::nats_cluster(),
    ) {
        (Ok(herald), Ok(nats)) => vec![herald, nats],
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("cluster rows skipped: {error:#}");
            return Vec::new();
        }
    };
    let mut runs = Vec::new();
    for round in 0..options.rounds {
        for &size in &options.sizes {
            let params = Params {
                size,
                ..options.params.clone()
            };
            for scenario in [Scenario::ClusterFanout, Scenario::ClusterJsPub] {
                for i in 0..clusters.len() {
                    let nodes = &clusters[(i + round) % clusters.len()];
                    eprintln!(
                        "round {}/{} · {} {size}B · {} (3 nodes)",
                        round + 1,
                        options.rounds,
                        scenario.label(&params),
                        nodes[0].name
                    );
                    if let Some(outcome) = cluster_run(nodes, scenario, &params).await {
                        runs.push(outcome);
                    }
                }
            }
        }
    }
    runs
}

/// One cluster scenario against `nodes`; server CPU is their sum, counted
/// from when the measured traffic starts.
async fn cluster_run(nodes: &[Server], scenario: Scenario, params: &Params) -> Option<Outcome> {
    let urls: Vec<String> = nodes.iter().filter_map(|n| n.url(Protocol::Nats)).collect();
    let cpu = || -> Option<Duration> { nodes.iter().map(Server::cpu_time).sum() };
    let mut before = None;
    let result = match scenario {
        // From when interest has crossed: probing is not measured.
        Scenario::ClusterFanout => {
            crate::raw_nats::run_across(&urls[0], &urls[1..], params, || {
                before = cpu();
            })
            .await
        }
        _ => {
            before = cpu();
            crate::jetstream::run_replicated_publish(&urls[0], params).await
        }
    };
    let after = cpu();
    tokio::time::sleep(Duration::from_millis(200)).await;
    match result {
        Ok(mut outcome) => {
            outcome.target = nodes[0].name.clone();
            if let (Some(before), Some(after)) = (before, after) {
                outcome.server_cpu_secs = Some((after - before).as_secs_f64());
            }
            Some(outcome)
        }
        Err(error) => {
            eprintln!("  failed: {error:#}");
            None
        }
    }
}

/// `servers`, starting one further along each round.
fn rotated(servers: &[Server], round: usize) -> impl Iterator<Item = &Server> {
    let n = servers.len().max(1);
    (0..servers.len()).map(move |i| &servers[(i + round) % n])
}

/// Medians of the stuck-subscriber runs of one server and stuck count.
#[derive(Debug, Clone, Serialize)]
pub struct StuckRow {
    /// Server name.
    pub server: String,
    /// Subscribers that stopped reading.
    pub stuck: usize,
    /// The healthy subscriber's MiB/s.
    pub healthy_mib_per_sec: f64,
    /// Messages published per second.
    pub published_per_sec: f64,
    /// Stuck subscribers the server closed (median).
    pub stuck_closed: usize,
    /// Peak resident memory during a run, bytes (median of runs).
    pub peak_rss: Option<u64>,
    /// Resident memory after the stuck connections went, bytes (median).
    pub rss_after: Option<u64>,
}

/// Subscribers that stop reading next to a healthy one, none and then
/// `options.stuck` of them, each run on a freshly started server (so its
/// memory is the run's alone).
pub(crate) async fn stuck(options: &CompareOptions) -> Vec<StuckRow> {
    if options.stuck == 0 {
        return Vec::new();
    }
    let mut rows = Vec::new();
    for name in ["herald", "nats-server"] {
        for stuck in [0, options.stuck] {
            let mut reports = Vec::new();
            for round in 0..options.rounds {
                let server = match name {
                    "herald" => Server::herald(&options.herald),
                    _ => Server::nats_server(),
                };
                let server = match server {
                    Ok(server) => server,
                    Err(error) => {
                        eprintln!("  cannot start {name}: {error:#}");
                        continue;
                    }
                };
                let Some(url) = server.url(Protocol::Nats) else {
                    continue;
                };
                eprintln!(
                    "round {}/{} · {stuck} stuck subscribers · {name}",
                    round + 1,
                    options.rounds
                );
                let run = crate::stuck::run(
                    &url,
                    stuck,
                    1024,
                    options.stuck_duration,
                    Some(server.pid()),
                )
                .await;
                match run {
                    Ok(report) => reports.push(report),
                    Err(error) => eprintln!("  failed: {error:#}"),
                }
                drop(server);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if reports.is_empty() {
                continue;
            }
            let med = |f: &dyn Fn(&crate::stuck::StuckReport) -> f64| {
                median(&mut reports.iter().map(f).collect::<Vec<_>>())
            };
            let memory = |f: &dyn Fn(&crate::stuck::StuckReport) -> Option<u64>| {
                let mut values: Vec<f64> = reports.iter().filter_map(f).map(|b| b as f64).collect();
                (!values.is_empty()).then(|| median(&mut values) as u64)
            };
            rows.push(StuckRow {
                server: name.to_owned(),
                stuck,
                healthy_mib_per_sec: med(&|r| r.healthy_mib_per_sec),
                published_per_sec: med(&|r| r.published as f64 / r.seconds),
                stuck_closed: med(&|r| r.stuck_closed as f64) as usize,
                peak_rss: memory(&|r| r.peak_rss),
                rss_after: memory(&|r| r.rss_after),
            });
        }
    }
    rows
}
