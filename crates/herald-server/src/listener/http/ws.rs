//! `GET /v1/ws`: herald's JSON protocol over WebSocket (docs/websocket.md).
//!
//! One task per connection reads client frames and writes server frames;
//! each subscription is a broker [`Subscription`] drained by a task of its
//! own into a bounded channel towards the socket. A client that does not
//! read fills the channel, then its subscriptions' queues, and is closed as
//! a slow consumer (1008) like any other protocol's.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures::StreamExt;
use herald_core::{
    CloseReason, HeaderFilter, Headers, Message, Pattern, QueueName, Subject, SubscribeOptions,
    Subscription,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Web;
use super::publish::publish_message;
use super::wire::message_json;
use crate::auth::Identity;
use crate::listener::port::Gate;

/// Server frames waiting for the socket.
const OUTGOING: usize = 1024;
/// How often the server pings.
const PING_EVERY: Duration = Duration::from_secs(30);
/// Close code for a slow consumer, or a user a reload changed.
const POLICY_VIOLATION: u16 = 1008;

pub(crate) async fn upgrade(
    State(web): State<Web>,
    Extension(identity): Extension<Identity>,
    ws: WebSocketUpgrade,
) -> Response {
    let limit = web.shared.limits.max_payload + 64 * 1024;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| session(web, identity, socket))
}

#[derive(Debug, Deserialize)]
struct ClientOp {
    op: String,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    payload_base64: Option<String>,
    #[serde(default)]
    headers: Option<Map<String, Value>>,
    #[serde(default)]
    reply: Option<String>,
}

/// What subscription tasks send towards the socket.
enum Out {
    Frame(Value),
    /// A subscription was closed as a slow consumer.
    Slow,
}

struct Session {
    web: Web,
    identity: Identity,
    subs: HashMap<String, JoinHandle<()>>,
    tx: mpsc::Sender<Out>,
}

async fn session(web: Web, identity: Identity, mut socket: WebSocket) {
    let stats = &web.shared.stats;
    stats.websocket_connections.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Out>(OUTGOING);
    let mut session = Session {
        web: web.clone(),
        identity,
        subs: HashMap::new(),
        tx,
    };
    let hello = json!({
        "op": "hello",
        "server": "herald",
        "version": env!("CARGO_PKG_VERSION"),
        "max_payload": web.shared.limits.max_payload,
    });
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut close: Option<(u16, &'static str)> = None;
    let identity = session.identity.clone();
    let identity_changed = web.shared.identity_changed(&identity);
    tokio::pin!(identity_changed);
    if send(&mut socket, &hello).await {
        loop {
            tokio::select! {
                () = web.shared.shutdown.cancelled() => {
                    close = Some((1001, "server shutting down"));
                    break;
                }
                () = &mut identity_changed => {
                    // A reload removed the user or changed what it may do:
                    // the client connects again under the new rules.
                    close = Some((POLICY_VIOLATION, "permissions changed"));
                    break;
                }
                incoming = socket.recv() => match incoming {
                    Some(Ok(WsMessage::Text(text))) => {
                        let answer = session.handle(text.as_str()).await;
                        if !send(&mut socket, &answer).await {
                            break;
                        }
                    }
                    Some(Ok(WsMessage::Binary(_))) => {
                        let answer = error(None, "bad_json", "frames must be JSON text");
                        if !send(&mut socket, &answer).await {
                            break;
                        }
                    }
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                out = rx.recv() => match out {
                    Some(Out::Frame(frame)) => {
                        if !send(&mut socket, &frame).await {
                            break;
                        }
                    }
                    Some(Out::Slow) => {
                        web.shared.broker.record_slow_consumer();
                        close = Some((POLICY_VIOLATION, "slow consumer"));
                        break;
                    }
                    None => break,
                },
                _ = ping.tick() => {
                    if socket.send(WsMessage::Ping(Bytes::new())).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    for (_, task) in session.subs.drain() {
        task.abort();
    }
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = socket.send(WsMessage::Close(Some(frame))).await;
    }
    stats.websocket_connections.fetch_sub(1, Ordering::Relaxed);
}

async fn send(socket: &mut WebSocket, frame: &Value) -> bool {
    socket
        .send(WsMessage::Text(frame.to_string().into()))
        .await
        .is_ok()
}

fn error(id: Option<Value>, code: &str, text: impl Into<String>) -> Value {
    let mut frame = json!({"op": "error", "code": code, "error": text.into()});
    if let Some(id) = id {
        frame["id"] = id;
    }
    frame
}

fn ok(id: Option<Value>) -> Map<String, Value> {
    let mut frame = Map::new();
    frame.insert("op".into(), Value::from("ok"));
    if let Some(id) = id {
        frame.insert("id".into(), id);
    }
    frame
}

impl Session {
    async fn handle(&mut self, text: &str) -> Value {
        let op: ClientOp = match serde_json::from_str(text) {
            Ok(op) => op,
            Err(e) => return error(None, "bad_json", e.to_string()),
        };
        let id = op.id.clone();
        let result = match op.op.as_str() {
            "subscribe" => self.subscribe(op),
            "unsubscribe" => {
                if let Some(task) = op.sid.as_ref().and_then(|sid| self.subs.remove(sid)) {
                    task.abort();
                }
                Ok(ok(id.clone()))
            }
            "publish" => self.publish(op).await,
            "ping" => {
                let mut frame = Map::new();
                frame.insert("op".into(), Value::from("pong"));
                if let Some(id) = id.clone() {
                    frame.insert("id".into(), id);
                }
                Ok(frame)
            }
            other => Err(("unknown_op", format!("unknown op {other:?}"))),
        };
        match result {
            Ok(frame) => Value::Object(frame),
            Err((code, text)) => error(id, code, text),
        }
    }

    fn subscribe(&mut self, op: ClientOp) -> Result<Map<String, Value>, (&'static str, String)> {
        let sid = op
            .sid
            .filter(|s| !s.is_empty())
            .ok_or(("bad_json", "subscribe needs a sid".to_owned()))?;
        if self.subs.get(&sid).is_some_and(|t| !t.is_finished()) {
            return Err((
                "duplicate_sid",
                format!("sid {sid:?} is already subscribed"),
            ));
        }
        let subject = op
            .subject
            .ok_or(("bad_json", "subscribe needs a subject".to_owned()))?;
        let pattern = Pattern::new(&subject).map_err(|e| ("invalid_subject", e.to_string()))?;
        let gate = Gate::new(&self.identity, &self.web.shared.stats);
        let Ok(read_check) = gate.subscribe(&pattern, None) else {
            return Err((
                "permission_denied",
                format!("{} may not subscribe to {pattern}", self.identity.name),
            ));
        };
        let mut options = SubscribeOptions::new(pattern);
        if let Some(p) = read_check {
            options = options.read_check(p);
        }
        if let Some(q) = op.queue.filter(|q| !q.is_empty()) {
            options =
                options.queue(QueueName::new(&q).map_err(|e| ("invalid_subject", e.to_string()))?);
        }
        if let Some(f) = op.filter.filter(|f| !f.trim().is_empty()) {
            options = options
                .filter(HeaderFilter::new(&f).map_err(|e| ("invalid_filter", e.to_string()))?);
        }
        let sub = self
            .web
            .shared
            .broker
            .subscribe_with(options)
            .map_err(|e| ("invalid_subject", e.to_string()))?;
        let task = tokio::spawn(forward(sid.clone(), sub, self.tx.clone()));
        self.subs.insert(sid, task);
        Ok(ok(op.id))
    }

    async fn publish(
        &mut self,
        op: ClientOp,
    ) -> Result<Map<String, Value>, (&'static str, String)> {
        let subject = op
            .subject
            .ok_or(("bad_json", "publish needs a subject".to_owned()))?;
        let subject = Subject::new(&subject).map_err(|e| ("invalid_subject", e.to_string()))?;
        let gate = Gate::new(&self.identity, &self.web.shared.stats);
        if gate.publish(&subject).is_err() {
            return Err((
                "permission_denied",
                format!("{} may not publish to {subject}", self.identity.name),
            ));
        }
        let payload = match (op.payload, op.payload_base64) {
            (Some(text), None) => Bytes::from(text),
            (None, Some(b64)) => Bytes::from(
                BASE64
                    .decode(b64)
                    .map_err(|e| ("bad_payload", e.to_string()))?,
            ),
            (None, None) => Bytes::new(),
            (Some(_), Some(_)) => {
                return Err((
                    "bad_payload",
                    "give payload or payload_base64, not both".to_owned(),
                ));
            }
        };
        let limit = self.web.shared.limits.max_payload;
        if payload.len() > limit {
            return Err((
                "payload_too_large",
                format!("payload larger than the server's limit of {limit} bytes"),
            ));
        }
        let mut msg = Message::new(subject, payload);
        if let Some(headers) = op.headers {
            msg = msg.with_headers(build_headers(&headers)?);
        }
        if let Some(reply) = op.reply {
            msg = msg
                .with_reply(Subject::new(&reply).map_err(|e| ("invalid_subject", e.to_string()))?);
        }
        let msg = gate.stamp(msg);
        let published = publish_message(&self.web, msg)
            .await
            .map_err(|e| ("stream_error", format!("{e:?}")))?;
        let mut frame = ok(op.id);
        for (k, v) in published {
            if k != "subject" {
                frame.insert(k, v);
            }
        }
        Ok(frame)
    }
}

fn build_headers(map: &Map<String, Value>) -> Result<Headers, (&'static str, String)> {
    let mut builder = Headers::builder();
    for (name, value) in map {
        let values: Vec<&str> = match value {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => {
                return Err((
                    "bad_json",
                    format!("header {name:?} must be a string or a list of strings"),
                ));
            }
        };
        for v in values {
            builder = builder
                .insert(name, v)
                .map_err(|e| ("bad_json", format!("header {name:?}: {e}")))?;
        }
    }
    Ok(builder.build())
}

/// Drains one subscription into the socket's channel.
async fn forward(sid: String, mut sub: Subscription, tx: mpsc::Sender<Out>) {
    while let Some(msg) = sub.next().await {
        let mut frame = message_json(&msg);
        frame.insert("op".into(), Value::from("message"));
        frame.insert("sid".into(), Value::from(sid.clone()));
        if tx.send(Out::Frame(Value::Object(frame))).await.is_err() {
            return;
        }
    }
    if sub.close_reason() == Some(CloseReason::SlowConsumer) {
        let _ = tx.send(Out::Slow).await;
    }
}
