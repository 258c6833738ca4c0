//! `GET /v1/subscribe/{pattern}`: Server-Sent Events, one `message` event
//! per message: `data:` is the message as JSON (see [`super::wire`]).
//!
//! Query parameters: `filter` (a header filter expression), `queue` (join a
//! queue group). When a stream captures the whole pattern, events come from
//! the stream instead, with the stream sequence as the event `id`: a
//! reconnecting browser sends `Last-Event-ID` and continues exactly after
//! the last event it saw (`?last_event_id=N` does the same for a first
//! connection, since `EventSource` cannot set headers).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use herald_core::{HeaderFilter, Message, Pattern, Permissions, Requester, SubscribeOptions};
use serde::Deserialize;
use serde_json::Value;

use super::auth::forbidden;
use super::wire::message_json;
use super::{HttpError, Web};
use crate::auth::Identity;
use crate::listener::port::Gate;
use crate::shared::ServerStats;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SubscribeQuery {
    filter: Option<String>,
    queue: Option<String>,
    last_event_id: Option<u64>,
}

/// Keeps the open-streams gauge right however the stream ends.
pub(crate) struct Gauge(Arc<crate::shared::Shared>);

impl Gauge {
    pub(crate) fn open(shared: Arc<crate::shared::Shared>) -> Self {
        shared.stats.sse_connections.fetch_add(1, Ordering::Relaxed);
        Self(shared)
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        let stats: &ServerStats = &self.0.stats;
        stats.sse_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

type EventStream = std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>;

pub(crate) async fn subscribe(
    State(web): State<Web>,
    Extension(identity): Extension<Identity>,
    Path(pattern): Path<String>,
    Query(query): Query<SubscribeQuery>,
    headers: HeaderMap,
) -> Result<Sse<axum::response::sse::KeepAliveStream<EventStream>>, HttpError> {
    let pattern = Pattern::new(&pattern)
        .map_err(|e| HttpError::bad_request("invalid_subject", e.to_string()))?;
    let Ok(read_check) = Gate::new(&identity, &web.shared.stats).subscribe(&pattern, None) else {
        return Err(forbidden(format!(
            "{} may not subscribe to {pattern}",
            identity.name
        )));
    };
    let filter = match query.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(
            HeaderFilter::new(f)
                .map_err(|e| HttpError::bad_request("invalid_filter", e.to_string()))?,
        ),
        None => None,
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(query.last_event_id);
    let gauge = Gauge::open(web.shared.clone());
    let shutdown = web.shared.shutdown.clone();
    let stream = match (query.queue.is_none())
        .then(|| stream_for(&web, &pattern))
        .flatten()
    {
        Some(stream) => from_stream(stream, pattern, filter, read_check, resume, gauge),
        None => live(&web, pattern, filter, read_check, query.queue, gauge)?,
    };
    // Ends with the server, so shutdown does not wait on open streams; and
    // when a reload removes the user or changes what it may do (the
    // browser's EventSource connects again, under the new rules).
    let shared = web.shared.clone();
    let ended = async move {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = shared.identity_changed(&identity) => {}
        }
    };
    let stream: EventStream = Box::pin(stream.take_until(ended));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The stream that captures everything `pattern` matches, if there is one.
fn stream_for(web: &Web, pattern: &Pattern) -> Option<herald_store::Stream> {
    let store = &web.shared.store;
    store
        .stream_names(Some(pattern.as_str()?))
        .into_iter()
        .find_map(|name| {
            let stream = store.stream(&name).ok()?;
            let config = stream.config();
            config
                .patterns()
                .iter()
                .any(|p| p.contains(pattern))
                .then_some(stream)
        })
}

fn event(msg: &Message, id: u64, seq: Option<u64>) -> Event {
    let mut body = message_json(msg);
    if let Some(seq) = seq {
        body.insert("seq".into(), Value::from(seq));
    }
    Event::default()
        .event("message")
        .id(id.to_string())
        .data(Value::Object(body).to_string())
}

/// Live messages through a subscription; ids count events of this stream.
fn live(
    web: &Web,
    pattern: Pattern,
    filter: Option<HeaderFilter>,
    read_check: Option<Arc<Permissions>>,
    queue: Option<String>,
    gauge: Gauge,
) -> Result<EventStream, HttpError> {
    let mut options = SubscribeOptions::new(pattern);
    if let Some(q) = queue {
        let q = herald_core::QueueName::new(&q)
            .map_err(|e| HttpError::bad_request("invalid_queue", e.to_string()))?;
        options = options.queue(q);
    }
    if let Some(f) = filter {
        options = options.filter(f);
    }
    if let Some(p) = read_check {
        options = options.read_check(p);
    }
    let sub = web
        .shared
        .broker
        .subscribe_with(options)
        .map_err(|e| HttpError::bad_request("invalid_subject", e.to_string()))?;
    let events = sub.enumerate().map(move |(n, msg)| {
        let _keep = &gauge;
        Ok(event(&msg, n as u64 + 1, None))
    });
    Ok(Box::pin(events))
}

/// Messages read from a stream in order, from after `resume` (or from now),
/// then following new ones.
fn from_stream(
    stream: herald_store::Stream,
    pattern: Pattern,
    filter: Option<HeaderFilter>,
    read_check: Option<Arc<Permissions>>,
    resume: Option<u64>,
    gauge: Gauge,
) -> EventStream {
    let next = match resume {
        Some(seq) => seq + 1,
        None => stream.state().last_seq + 1,
    };
    let watch = stream.watch();
    // The rule for stored messages (`Requester`); `read_check` is set only
    // when the pattern reaches beyond what the user may read.
    let filter = (filter, Requester::new(read_check));
    let state = (stream, pattern, filter, next, watch, gauge);
    let events = futures::stream::unfold(
        state,
        |(stream, pattern, filter, mut next, mut watch, gauge)| async move {
            let mut skipped = 0u32;
            loop {
                match stream.next_message(next, Some(&pattern)) {
                    Ok(stored) => {
                        next = stored.seq + 1;
                        let seq = stored.seq;
                        let mut msg = Message::new(stored.subject, stored.payload);
                        msg.headers = stored.headers;
                        let (headers, requester) = &filter;
                        if headers.as_ref().is_some_and(|f| !f.matches(&msg))
                            || !requester.may_read(&msg.subject)
                        {
                            // A long run of messages this client does not
                            // get must not hold a worker thread.
                            skipped += 1;
                            if skipped.is_multiple_of(1024) {
                                tokio::task::yield_now().await;
                            }
                            continue;
                        }
                        let ev = event(&msg, seq, Some(seq));
                        return Some((Ok(ev), (stream, pattern, filter, next, watch, gauge)));
                    }
                    Err(_) => {
                        // Nothing more stored yet: wait for the next publish.
                        if watch.changed().await.is_err() {
                            return None;
                        }
                    }
                }
            }
        },
    );
    Box::pin(events)
}
