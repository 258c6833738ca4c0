//! What an operator looks at: `/healthz`, `/v1/stats` (JSON), `/v1/stats/live`
//! (the same JSON as Server-Sent Events, once a second, for the dashboard),
//! and `/metrics` in Prometheus's text format.

use std::convert::Infallible;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::{Value, json};

use super::Web;

/// The numbers the dashboard and `/v1/stats` show.
pub(crate) fn snapshot(web: &Web) -> Value {
    let shared = &web.shared;
    let s = &shared.stats;
    let broker = shared.broker.stats();
    let store = &shared.store;
    let streams: Vec<Value> = store
        .stream_names(None)
        .into_iter()
        .filter_map(|name| store.stream_info(&name).ok())
        .map(|info| {
            json!({
                "name": info.config.name,
                "messages": info.state.messages,
                "bytes": info.state.bytes,
                "consumers": info.state.consumer_count,
                "last_seq": info.state.last_seq,
            })
        })
        .collect();
    json!({
        "uptime_secs": shared.started.elapsed().as_secs(),
        "uptime_ms": u64::try_from(shared.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "connections": {
            "nats": s.nats_connections.load(Ordering::Relaxed),
            "redis": s.redis_connections.load(Ordering::Relaxed),
            "mqtt": s.mqtt_connections.load(Ordering::Relaxed),
            "websocket": s.websocket_connections.load(Ordering::Relaxed),
            "sse": s.sse_connections.load(Ordering::Relaxed),
        },
        "subscriptions": broker.subscriptions,
        "messages_in": broker.msgs_in,
        "messages_out": broker.msgs_out,
        "bytes_in": broker.bytes_in,
        "bytes_out": broker.bytes_out,
        "slow_consumers": broker.slow_consumers,
        "dropped": broker.dropped,
        "stalls": broker.stalls,
        "streams": streams,
    })
}

pub(crate) async fn stats(State(web): State<Web>) -> Json<Value> {
    Json(snapshot(&web))
}

pub(crate) async fn live(
    State(web): State<Web>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let ticks = tokio_stream_interval(Duration::from_secs(1));
    let events = futures::StreamExt::map(ticks, move |()| {
        Ok(Event::default()
            .event("stats")
            .data(snapshot(&web).to_string()))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// A tick now, then every `period`.
fn tokio_stream_interval(period: Duration) -> impl Stream<Item = ()> {
    let interval = tokio::time::interval(period);
    futures::stream::unfold(interval, |mut interval| async move {
        interval.tick().await;
        Some(((), interval))
    })
}

pub(crate) async fn metrics(State(web): State<Web>) -> impl IntoResponse {
    let shared = &web.shared;
    let s = &shared.stats;
    let b = shared.broker.stats();
    let mut out = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
    };
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    metric(
        "herald_connections",
        "gauge",
        "Open client connections by protocol.",
        &[
            ("protocol=\"nats\"", load(&s.nats_connections)),
            ("protocol=\"redis\"", load(&s.redis_connections)),
            ("protocol=\"mqtt\"", load(&s.mqtt_connections)),
            ("protocol=\"websocket\"", load(&s.websocket_connections)),
            ("protocol=\"sse\"", load(&s.sse_connections)),
        ],
    );
    metric(
        "herald_connections_total",
        "counter",
        "Connections accepted since start.",
        &[("", load(&s.total_connections))],
    );
    metric(
        "herald_connections_refused_total",
        "counter",
        "Connections refused by the connection limit.",
        &[("", load(&s.refused_connections))],
    );
    metric(
        "herald_subscriptions",
        "gauge",
        "Client subscriptions.",
        &[("", b.subscriptions)],
    );
    metric(
        "herald_messages_in_total",
        "counter",
        "Messages published.",
        &[("", b.msgs_in)],
    );
    metric(
        "herald_messages_out_total",
        "counter",
        "Messages delivered to subscribers.",
        &[("", b.msgs_out)],
    );
    metric(
        "herald_bytes_in_total",
        "counter",
        "Payload bytes published.",
        &[("", b.bytes_in)],
    );
    metric(
        "herald_bytes_out_total",
        "counter",
        "Payload bytes delivered.",
        &[("", b.bytes_out)],
    );
    metric(
        "herald_slow_consumers_total",
        "counter",
        "Subscribers closed as slow consumers.",
        &[("", b.slow_consumers)],
    );
    metric(
        "herald_dropped_total",
        "counter",
        "Messages dropped under the drop-newest policy.",
        &[("", b.dropped)],
    );
    metric(
        "herald_stalls_total",
        "counter",
        "Times a publishing connection waited for congested subscribers.",
        &[("", b.stalls)],
    );
    metric(
        "herald_refusals_total",
        "counter",
        "Requests and connections refused by a limit or by security, by reason.",
        &[
            ("reason=\"max_connections\"", load(&s.refused_connections)),
            ("reason=\"max_payload\"", load(&s.payload_refusals)),
            (
                "reason=\"max_control_line\"",
                load(&s.control_line_refusals),
            ),
            (
                "reason=\"max_subscriptions\"",
                load(&s.subscription_refusals),
            ),
            ("reason=\"auth_failure\"", load(&s.auth_failures)),
            ("reason=\"auth_timeout\"", load(&s.auth_timeouts)),
            ("reason=\"permission\"", load(&s.permission_refusals)),
        ],
    );
    metric(
        "herald_http_requests_total",
        "counter",
        "HTTP requests served.",
        &[("", load(&s.http_requests))],
    );
    let store = &shared.store;
    let infos: Vec<_> = store
        .stream_names(None)
        .into_iter()
        .filter_map(|n| store.stream_info(&n).ok())
        .collect();
    let label = |name: &str| {
        format!(
            "stream=\"{}\"",
            name.replace('\\', "\\\\").replace('"', "\\\"")
        )
    };
    let rows = |f: &dyn Fn(&herald_store::StreamInfo) -> u64| -> Vec<(String, u64)> {
        infos
            .iter()
            .map(|i| (label(&i.config.name), f(i)))
            .collect()
    };
    for (name, help, values) in [
        (
            "herald_stream_messages",
            "Messages stored in the stream.",
            rows(&|i| i.state.messages),
        ),
        (
            "herald_stream_bytes",
            "Bytes stored in the stream.",
            rows(&|i| i.state.bytes),
        ),
        (
            "herald_stream_last_seq",
            "Last sequence of the stream.",
            rows(&|i| i.state.last_seq),
        ),
        (
            "herald_stream_consumers",
            "Consumers of the stream.",
            rows(&|i| i.state.consumer_count),
        ),
    ] {
        let samples: Vec<(&str, u64)> = values.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        metric(name, "gauge", help, &samples);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}
