//! Streams over REST: the same operations as the JetStream API, as JSON.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /v1/streams` | every stream's info |
//! | `POST /v1/streams` | create (body: a stream config, JetStream's shape) |
//! | `GET`/`PUT`/`DELETE /v1/streams/{name}` | info, update, delete |
//! | `GET /v1/streams/{name}/messages` | read in order: `from_seq`, `since` (RFC 3339 or an age like `10m`), `subject` (pattern), `limit` (default 100, at most 10,000) |
//! | `GET`/`DELETE /v1/streams/{name}/messages/{seq}` | one message |
//! | `POST /v1/streams/{name}/purge` | purge (body optional: `filter`, `seq`, `keep`) |
//!
//! Reads return only messages the user may read (`herald_core::Requester`:
//! those on subjects it may subscribe to), as every path to stored messages
//! does: a listing leaves the others out, a single get is refused.

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use herald_core::{Message, Pattern};
use herald_store::{PurgeRequest, StoredMessage, StreamConfig};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::forbidden;
use super::wire::message_json;
use super::{HttpError, Web};
use crate::auth::Identity;
use crate::listener::port::Gate;

/// Stream operations are checked as the JetStream API call they match
/// would be: publishing to `$JS.API.<call>` must be permitted.
fn check(web: &Web, identity: &Identity, call: &str) -> Result<(), HttpError> {
    let subject = herald_core::Subject::new(&format!("$JS.API.{call}"))
        .map_err(|e| HttpError::bad_request("bad_request", e.to_string()))?;
    if Gate::new(identity, &web.shared.stats)
        .publish(&subject)
        .is_ok()
    {
        Ok(())
    } else {
        Err(forbidden(format!(
            "{} may not call {subject}",
            identity.name
        )))
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Json<Value>, HttpError> {
    serde_json::to_value(value)
        .map(Json)
        .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

pub(crate) async fn list(
    State(web): State<Web>,
    Extension(identity): Extension<Identity>,
) -> Result<Json<Value>, HttpError> {
    check(&web, &identity, "STREAM.LIST")?;
    let store = &web.shared.store;
    let mut infos = Vec::new();
    for name in store.stream_names(None) {
        if let Ok(info) = store.stream_info(&name) {
            infos.push(serde_json::to_value(info).unwrap_or(Value::Null));
        }
    }
    Ok(Json(json!({ "streams": infos })))
}

fn parse_config(body: &[u8]) -> Result<StreamConfig, HttpError> {
    serde_json::from_slice(body).map_err(|e| HttpError::bad_request("bad_json", e.to_string()))
}

pub(crate) async fn create(
    State(web): State<Web>,
    Extension(identity): Extension<Identity>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    let config = parse_config(&body)?;
    check(&web, &identity, &format!("STREAM.CREATE.{}", config.name))?;
    let (info, created) = web.shared.store.create_stream(config)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, to_json(&info)?))
}

pub(crate) async fn info(
    State(web): State<Web>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
) -> Result<Json<Value>, HttpError> {
    check(&web, &identity, &format!("STREAM.INFO.{name}"))?;
    to_json(&web.shared.store.stream_info(&name)?)
}

pub(crate) async fn update(
    State(web): State<Web>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, HttpError> {
    check(&web, &identity, &format!("STREAM.UPDATE.{name}"))?;
    let mut config = parse_config(&body)?;
    if config.name.is_empty() {
        config.name.clone_from(&name);
    }
    if config.name != name {
        return Err(HttpError::bad_request(
            "bad_request",
            "the config names another stream",
        ));
    }
    to_json(&web.shared.store.update_stream(config)?)
}

pub(crate) async fn delete(
    State(web): State<Web>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
) -> Result<Json<Value>, HttpError> {
    check(&web, &identity, &format!("STREAM.DELETE.{name}"))?;
    web.shared.store.delete_stream(&name)?;
    Ok(Json(json!({ "deleted": name })))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct MessagesQuery {
    from_seq: Option<u64>,
    since: Option<String>,
    subject: Option<String>,
    limit: Option<usize>,
}

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;
/// Messages one page of a listing looks at, readable or not.
const MAX_SCANNED: usize = 100_000;

fn stored_json(stored: StoredMessage) -> Value {
    let (seq, time) = (stored.seq, stored.time);
    let mut msg = Message::new(stored.subject, stored.payload);
    msg.headers = stored.headers;
    let mut body = message_json(&msg);
    body.insert("seq".into(), Value::from(seq));
    body.insert(
        "time".into(),
        Value::from(herald_store::time::rfc3339(time)),
    );
    Value::Object(body)
}

fn parse_since(text: &str) -> Result<i64, HttpError> {
    if let Some(t) = herald_store::time::parse_rfc3339(text) {
        return Ok(t);
    }
    let age = humantime::parse_duration(text).map_err(|_| {
        HttpError::bad_request(
            "bad_request",
            format!("since {text:?} is neither an RFC 3339 time nor an age like 10m"),
        )
    })?;
    let age = i64::try_from(age.as_nanos()).unwrap_or(i64::MAX);
    Ok(herald_store::time::now_nanos().saturating_sub(age))
}

pub(crate) async fn messages(
    State(web): State<Web>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
    Query(query): Query<MessagesQuery>,
) -> Result<Json<Value>, HttpError> {
    check(&web, &identity, &format!("STREAM.MSG.GET.{name}"))?;
    let stream = web.shared.store.stream(&name)?;
    let filter = match query.subject.as_deref() {
        Some(s) => Some(
            Pattern::new(s)
                .map_err(|e| HttpError::bad_request("invalid_subject", e.to_string()))?,
        ),
        None => None,
    };
    let mut next = match (query.from_seq, query.since.as_deref()) {
        (Some(seq), _) => seq,
        (None, Some(since)) => match stream.message_at_time(parse_since(since)?) {
            Ok(m) => m.seq,
            Err(_) => stream.state().last_seq + 1,
        },
        (None, None) => stream.state().first_seq,
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let requester = Gate::new(&identity, &web.shared.stats).requester();
    let mut out = Vec::new();
    // Messages the user may not read are skipped, but counted: a page
    // looks at most `MAX_SCANNED` messages, so a stream full of them costs
    // a bounded read per request (`next_seq` says where to go on).
    let mut scanned = 0;
    while out.len() < limit && scanned < MAX_SCANNED {
        match stream.next_message(next, filter.as_ref()) {
            Ok(stored) => {
                next = stored.seq + 1;
                scanned += 1;
                if requester.may_read(&stored.subject) {
                    out.push(stored_json(stored));
                }
            }
            Err(_) => break,
        }
    }
    Ok(Json(
        json!({ "stream": name, "messages": out, "next_seq": next }),
    ))
}

pub(crate) async fn message(
    State(web): State<Web>,
    Extension(identity): Extension<Identity>,
    Path((name, seq)): Path<(String, u64)>,
) -> Result<Json<Value>, HttpError> {
    check(&web, &identity, &format!("STREAM.MSG.GET.{name}"))?;
    let stored = web.shared.store.stream(&name)?.get(seq)?;
    if !Gate::new(&identity, &web.shared.stats)
        .requester()
        .may_read(&stored.subject)
    {
        return Err(forbidden(format!(
            "{} may not read messages on {}",
            identity.name, stored.subject
        )));
    }
    Ok(Json(stored_json(stored)))
}

pub(crate) async fn delete_message(
    State(web): State<Web>,
    Extension(identity): Extension<Identity>,
    Path((name, seq)): Path<(String, u64)>,
) -> Result<Json<Value>, HttpError> {
    check(&web, &identity, &format!("STREAM.MSG.DELETE.{name}"))?;
    web.shared.store.stream(&name)?.delete_message(seq)?;
    Ok(Json(json!({ "deleted": seq })))
}

pub(crate) async fn purge(
    State(web): State<Web>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, HttpError> {
    check(&web, &identity, &format!("STREAM.PURGE.{name}"))?;
    let request: PurgeRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PurgeRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| HttpError::bad_request("bad_json", e.to_string()))?
    };
    let purged = web.shared.store.stream(&name)?.purge(&request)?;
    Ok(Json(json!({ "purged": purged })))
}
