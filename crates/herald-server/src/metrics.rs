//! `/metrics`: everything an operator graphs, in Prometheus's text format
//! (0.0.4), encoded by `prometheus-client` at each scrape from the counters
//! the server keeps anyway (no second set of counters on the hot path).
//!
//! - connections, subscriptions, messages and bytes in and out, slow
//!   consumers, drops, stalls, refusals by reason, HTTP requests;
//! - latency histograms (seconds, power-of-two buckets from 1 µs): sampled
//!   outbox queueing before a delivery is written, stream appends and
//!   fsyncs, consumer acks ([`herald_core::Timings`]);
//! - per stream (`stream` label) and per consumer (`stream`, `consumer`);
//! - the standard `process_*` metrics (Linux).
//!
//! `dist/grafana-dashboard.json` charts them.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use herald_core::HistogramSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::shared::Shared;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics of the server behind `shared`, as one scrape.
pub fn render(shared: &Arc<Shared>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ServerMetrics(shared.clone())));
    let mut out = String::with_capacity(16 * 1024);
    if let Err(error) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        // Only a formatter error, which writing to a String does not give.
        let _ = writeln!(out, "# encoding failed: {error}");
    }
    out
}

#[derive(Debug)]
struct ServerMetrics(Arc<Shared>);

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// Encodes one metric without labels, or a family of labelled samples.
struct Encoder<'a>(DescriptorEncoder<'a>);

impl Encoder<'_> {
    fn counter(
        &mut self,
        name: &str,
        help: &str,
        value: impl EncodeCounterValue,
    ) -> std::fmt::Result {
        self.0
            .encode_descriptor(name, help, None, MetricType::Counter)?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl EncodeGaugeValue) -> std::fmt::Result {
        self.0
            .encode_descriptor(name, help, None, MetricType::Gauge)?
            .encode_gauge(&value)
    }

    fn counters(&mut self, name: &str, help: &str, rows: &[(Labels<'_>, u64)]) -> std::fmt::Result {
        let mut metric = self
            .0
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, value) in rows {
            metric
                .encode_family(labels)?
                .encode_counter::<NoLabelSet, _, u64>(value, None)?;
        }
        Ok(())
    }

    fn gauges(&mut self, name: &str, help: &str, rows: &[(Labels<'_>, u64)]) -> std::fmt::Result {
        let mut metric = self
            .0
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, value) in rows {
            metric.encode_family(labels)?.encode_gauge(value)?;
        }
        Ok(())
    }

    /// A histogram in seconds (the name gets `_seconds`).
    fn seconds(&mut self, name: &str, help: &str, h: &HistogramSnapshot) -> std::fmt::Result {
        self.0
            .encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?
            .encode_histogram::<NoLabelSet>(h.sum_secs, h.count, &h.buckets, None)
    }
}

impl Collector for ServerMetrics {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let mut out = Encoder(encoder);
        let shared = &self.0;
        traffic(&mut out, shared)?;
        latencies(&mut out, shared)?;
        streams(&mut out, shared)?;
        process(&mut out)
    }
}

fn traffic(out: &mut Encoder<'_>, shared: &Shared) -> std::fmt::Result {
    let s = &shared.stats;
    let b = shared.broker.stats();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let by_protocol = [
        ("nats", &s.nats_connections),
        ("redis", &s.redis_connections),
        ("mqtt", &s.mqtt_connections),
        ("websocket", &s.websocket_connections),
        ("sse", &s.sse_connections),
    ]
    .map(|(protocol, gauge)| (vec![("protocol", protocol)], load(gauge)));
    out.gauges(
        "herald_connections",
        "Open client connections by protocol.",
        &by_protocol,
    )?;
    out.counter(
        "herald_connections",
        "Connections accepted since start.",
        load(&s.total_connections),
    )?;
    out.counter(
        "herald_connections_refused",
        "Connections refused by the connection limit.",
        load(&s.refused_connections),
    )?;
    out.gauge(
        "herald_subscriptions",
        "Client subscriptions.",
        b.subscriptions,
    )?;
    for (name, help, value) in [
        ("herald_messages_in", "Messages published.", b.msgs_in),
        (
            "herald_messages_out",
            "Messages delivered to subscribers.",
            b.msgs_out,
        ),
        ("herald_bytes_in", "Payload bytes published.", b.bytes_in),
        ("herald_bytes_out", "Payload bytes delivered.", b.bytes_out),
        (
            "herald_slow_consumers",
            "Subscribers closed as slow consumers.",
            b.slow_consumers,
        ),
        (
            "herald_dropped",
            "Messages dropped under the drop-newest policy.",
            b.dropped,
        ),
        (
            "herald_stalls",
            "Times a publishing connection waited for congested subscribers.",
            b.stalls,
        ),
        (
            "herald_http_requests",
            "HTTP requests served.",
            load(&s.http_requests),
        ),
    ] {
        out.counter(name, help, value)?;
    }
    if let Some(cluster) = shared.cluster.get() {
        let routes = cluster.routes();
        out.gauge(
            "herald_cluster_routes",
            "Routes to other nodes of the cluster that are up.",
            routes.len() as u64,
        )?;
        let interests: Vec<(Labels<'_>, u64)> = routes
            .iter()
            .map(|r| (vec![("node", r.node.as_str())], r.interests as u64))
            .collect();
        out.gauges(
            "herald_route_interests",
            "Interests another node announced to this one, by node.",
            &interests,
        )?;
    }
    let refusals = [
        ("max_connections", &s.refused_connections),
        ("max_payload", &s.payload_refusals),
        ("max_control_line", &s.control_line_refusals),
        ("max_subscriptions", &s.subscription_refusals),
        ("auth_failure", &s.auth_failures),
        ("auth_timeout", &s.auth_timeouts),
        ("permission", &s.permission_refusals),
    ]
    .map(|(reason, counter)| (vec![("reason", reason)], load(counter)));
    out.counters(
        "herald_refusals",
        "Requests and connections refused by a limit or by security, by reason.",
        &refusals,
    )
}

fn latencies(out: &mut Encoder<'_>, shared: &Shared) -> std::fmt::Result {
    let t = shared.broker.timings();
    out.seconds(
        "herald_delivery_queue",
        "Time a delivery waited in its client's output queue before the write \
         (sampled: one batch in 64 per connection). Routing happens inside \
         the publish, so this is the part of publish-to-delivery latency that varies.",
        &t.delivery.snapshot(),
    )?;
    out.seconds(
        "herald_stream_append",
        "Time to append one batch of records to a stream's log (before fsync).",
        &t.stream_append.snapshot(),
    )?;
    out.seconds(
        "herald_stream_fsync",
        "Time of one fsync of a stream's active segment.",
        &t.stream_fsync.snapshot(),
    )?;
    out.seconds(
        "herald_consumer_ack",
        "Time from a message's delivery to a consumer to its ack.",
        &t.consumer_ack.snapshot(),
    )
}

/// Stream and consumer gauges, by name.
fn streams(out: &mut Encoder<'_>, shared: &Shared) -> std::fmt::Result {
    let store = &shared.store;
    let infos: Vec<_> = store
        .stream_names(None)
        .into_iter()
        .filter_map(|name| store.stream_info(&name).ok())
        .collect();
    let per_stream = |value: fn(&herald_store::StreamState) -> u64| -> Vec<(Labels<'_>, u64)> {
        infos
            .iter()
            .map(|i| (vec![("stream", i.config.name.as_str())], value(&i.state)))
            .collect()
    };
    for (name, help, value) in [
        (
            "herald_stream_messages",
            "Messages stored in the stream.",
            (|s| s.messages) as fn(&herald_store::StreamState) -> u64,
        ),
        ("herald_stream_bytes", "Bytes stored in the stream.", |s| {
            s.bytes
        }),
        (
            "herald_stream_first_seq",
            "First sequence in the stream.",
            |s| s.first_seq,
        ),
        (
            "herald_stream_last_seq",
            "Last sequence of the stream.",
            |s| s.last_seq,
        ),
        ("herald_stream_subjects", "Distinct subjects stored.", |s| {
            s.num_subjects
        }),
        ("herald_stream_consumers", "Consumers of the stream.", |s| {
            s.consumer_count
        }),
    ] {
        out.gauges(name, help, &per_stream(value))?;
    }
    let consumers: Vec<_> = infos
        .iter()
        .flat_map(|i| {
            let stream = &i.config.name;
            store
                .consumer_names(stream)
                .unwrap_or_default()
                .into_iter()
                .filter_map(move |name| store.consumer(stream, &name).ok())
                .map(|c| c.info())
        })
        .collect();
    let per_consumer = |value: fn(&herald_store::ConsumerInfo) -> u64| -> Vec<(Labels<'_>, u64)> {
        consumers
            .iter()
            .map(|c| {
                (
                    vec![
                        ("stream", c.stream_name.as_str()),
                        ("consumer", c.name.as_str()),
                    ],
                    value(c),
                )
            })
            .collect()
    };
    for (name, help, value) in [
        (
            "herald_consumer_pending",
            "Matching messages not yet delivered.",
            (|c| c.num_pending) as fn(&herald_store::ConsumerInfo) -> u64,
        ),
        (
            "herald_consumer_ack_pending",
            "Delivered messages waiting for an ack.",
            |c| c.num_ack_pending,
        ),
        (
            "herald_consumer_redelivered",
            "Pending messages delivered more than once.",
            |c| c.num_redelivered,
        ),
        ("herald_consumer_waiting", "Queued pull requests.", |c| {
            c.num_waiting
        }),
        (
            "herald_consumer_delivered_seq",
            "Stream sequence last delivered.",
            |c| c.delivered.stream_seq,
        ),
        (
            "herald_consumer_ack_floor_seq",
            "Stream sequence at or below which everything is acked.",
            |c| c.ack_floor.stream_seq,
        ),
    ] {
        out.gauges(name, help, &per_consumer(value))?;
    }
    Ok(())
}

/// The standard `process_*` metrics (what every Prometheus client library
/// exports), read from `/proc/self`.
#[cfg(target_os = "linux")]
fn process(out: &mut Encoder<'_>) -> std::fmt::Result {
    use procfs::WithCurrentSystemInfo;
    use procfs::process::{LimitValue, Process};
    let Ok(me) = Process::myself() else {
        return Ok(());
    };
    if let Ok(stat) = me.stat() {
        let ticks = procfs::ticks_per_second() as f64;
        out.counter(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            (stat.utime + stat.stime) as f64 / ticks,
        )?;
        out.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            stat.rss_bytes().get(),
        )?;
        out.gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            stat.vsize,
        )?;
        out.gauge(
            "process_threads",
            "Number of OS threads in the process.",
            stat.num_threads,
        )?;
        if let Ok(boot) = procfs::boot_time_secs() {
            out.gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                boot as f64 + stat.starttime as f64 / ticks,
            )?;
        }
    }
    if let Ok(fds) = me.fd_count() {
        out.gauge("process_open_fds", "Number of open file descriptors.", fds)?;
    }
    if let Ok(limits) = me.limits()
        && let LimitValue::Value(max) = limits.max_open_files.soft_limit
    {
        out.gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            max,
        )?;
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn process(_out: &mut Encoder<'_>) -> std::fmt::Result {
    Ok(())
}
