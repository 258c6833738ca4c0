//! `POST /v1/publish/{subject}`: the body is the payload (any content type).
//!
//! Message headers come from request headers, by this convention: a header
//! `Herald-Header-<name>: value` becomes message header `<name>: value`, and
//! headers starting with `Nats-` (such as `Nats-Msg-Id` for de-duplication
//! or `Nats-Expected-Last-Sequence`) pass as they are. HTTP does not keep the
//! case of header names: `Herald-Header-` names arrive in lower case (so
//! `Herald-Header-Region: eu` is `region: eu`, as filters expect), and
//! `Nats-` names are written in NATS's Title-Case (`nats-msg-id` →
//! `Nats-Msg-Id`). The answer says how many subscribers took the message;
//! for a subject a stream captures, it also carries the stream's publish ack.

use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use herald_core::{Headers, Message, Subject};
use serde_json::{Map, Value};

use super::auth::forbidden;
use super::{HttpError, Web};
use crate::auth::Identity;
use crate::listener::port::Gate;

/// How long a publish to a stream waits for the stream's ack.
const ACK_WAIT: Duration = Duration::from_secs(5);

/// Prefix of request headers that become message headers.
const HEADER_PREFIX: &str = "herald-header-";

pub(crate) async fn publish(
    State(web): State<Web>,
    Extension(identity): Extension<Identity>,
    Path(subject): Path<String>,
    request_headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, HttpError> {
    let subject = Subject::new(&subject)
        .map_err(|e| HttpError::bad_request("invalid_subject", e.to_string()))?;
    let gate = Gate::new(&identity, &web.shared.stats);
    if gate.publish(&subject).is_err() {
        return Err(forbidden(format!(
            "{} may not publish to {subject}",
            identity.name
        )));
    }
    let limit = web.shared.limits.max_payload;
    let payload = axum::body::to_bytes(body, limit).await.map_err(|_| {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("payload larger than the server's limit of {limit} bytes"),
        )
    })?;
    let headers = message_headers(&request_headers)?;
    let mut msg = Message::new(subject, payload);
    if let Some(h) = headers {
        msg = msg.with_headers(h);
    }
    let msg = gate.stamp(msg);
    Ok(Json(Value::Object(publish_message(&web, msg).await?)))
}

/// Publishes `msg`; when a stream captures its subject, waits for the
/// stream's ack. Returns `{"subject", "receivers"}` plus `stream`, `seq`,
/// `duplicate` for a stored message.
pub(crate) async fn publish_message(
    web: &Web,
    msg: Message,
) -> Result<Map<String, Value>, HttpError> {
    let subject = msg.subject.clone();
    let broker = &web.shared.broker;
    let mut out = Map::new();
    out.insert("subject".into(), Value::String(subject.to_string()));
    if web.shared.store.stream_for_subject(&subject).is_none() {
        let receivers = broker.publish_message(&msg);
        out.insert("receivers".into(), Value::from(receivers));
        return Ok(out);
    }
    // A stream captures it: ask for the publish ack, as NATS clients do.
    let inbox = broker.new_inbox();
    let mut acks = broker.subscribe(inbox.clone()).map_err(|e| {
        HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    })?;
    let receivers = broker.publish_message(&msg.with_reply(inbox));
    let ack = tokio::time::timeout(ACK_WAIT, acks.next())
        .await
        .ok()
        .flatten()
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "stream_timeout",
                "the stream did not acknowledge in time",
            )
        })?;
    let ack: Value = serde_json::from_slice(&ack.payload).map_err(|e| {
        HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    })?;
    if let Some(error) = ack.get("error") {
        let api: herald_store::ApiError =
            serde_json::from_value(error.clone()).unwrap_or_else(|_| {
                herald_store::ApiError::new(500, 0, "the stream refused the message")
            });
        return Err(api.into());
    }
    // The stream's capture is one of the receivers; clients count subscribers.
    out.insert("receivers".into(), Value::from(receivers.saturating_sub(1)));
    out.insert(
        "stream".into(),
        ack.get("stream").cloned().unwrap_or(Value::Null),
    );
    out.insert("seq".into(), ack.get("seq").cloned().unwrap_or(Value::Null));
    let duplicate = ack
        .get("duplicate")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    out.insert("duplicate".into(), Value::Bool(duplicate));
    Ok(out)
}

/// The message headers a request carries, by the convention above.
pub(crate) fn message_headers(request: &HeaderMap) -> Result<Option<Headers>, HttpError> {
    let mut builder = Headers::builder();
    let mut any = false;
    for (name, value) in request {
        let name = name.as_str();
        let target = if let Some(rest) = name.strip_prefix(HEADER_PREFIX) {
            rest.to_owned()
        } else if name.starts_with("nats-") {
            title_case(name)
        } else {
            continue;
        };
        let value = value.to_str().map_err(|_| {
            HttpError::bad_request("bad_header", format!("header {name} is not text"))
        })?;
        builder = builder
            .insert(&target, value)
            .map_err(|e| HttpError::bad_request("bad_header", format!("header {name}: {e}")))?;
        any = true;
    }
    Ok(any.then(|| builder.build()))
}

/// `nats-msg-id` → `Nats-Msg-Id`.
pub(crate) fn title_case(name: &str) -> String {
    name.split('-')
        .map(|word| {
            // Nats-TTL, Nats-Schedule-TTL: spelled as nats-server reads them.
            if word.eq_ignore_ascii_case("ttl") {
                return "TTL".to_owned();
            }
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_title_cased() {
        assert_eq!(title_case("nats-msg-id"), "Nats-Msg-Id");
        assert_eq!(title_case("region"), "Region");
        assert_eq!(title_case("nats-schedule-ttl"), "Nats-Schedule-TTL");
        assert_eq!(title_case("x--y"), "X--Y");
    }
}
