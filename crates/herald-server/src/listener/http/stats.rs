//! What an operator looks at: `/healthz`, `/v1/stats` (JSON), `/v1/stats/live`
//! (the same JSON as Server-Sent Events, once a second, for the dashboard),
//! and `/metrics` (see [`crate::metrics`]).

use std::convert::Infallible;
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
        // Every count above is this node's (routes forward messages; they
        // do not add other nodes' subscribers here).
        "scope": "node",
        "cluster": web.shared.cluster.get().map(|c| json!({
            "name": c.name(),
            "node": c.node(),
            "routes": c.routes().into_iter().map(|r| r.node).collect::<Vec<_>>(),
        })),
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
    // Reads stream and consumer state: off the async workers.
    let shared = web.shared.clone();
    let text = tokio::task::spawn_blocking(move || crate::metrics::render(&shared))
        .await
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text)
}
