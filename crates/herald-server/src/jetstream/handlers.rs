//! One function per JetStream API call: parse the request, call the store,
//! shape the response as nats-server does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use herald_core::{Headers, Message, Pattern, Requester, Subject};
use herald_store::{
    ApiError, ConsumerConfig, CreateAction, PurgeRequest, Store, StoredMessage, StreamConfig,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// What a handler answers with.
pub(super) enum Reply {
    /// A JSON body.
    Json(Vec<u8>),
    /// A message (direct get); its subject is replaced by the reply subject.
    Message(Message),
}

pub(super) const NAMES_LIMIT: usize = 1024;
pub(super) const LIST_LIMIT: usize = 256;

/// Answers one request on `subject` (a `$JS.API.` subject) from `requester`.
pub(super) fn handle(store: &Store, subject: &str, payload: &[u8], requester: &Requester) -> Reply {
    let Some(api) = subject.strip_prefix("$JS.API.") else {
        return json_reply("error", Err(ApiError::bad_request("not an API subject")));
    };
    let tokens: Vec<&str> = api.split('.').collect();
    if tokens.first() == Some(&"DIRECT") {
        return direct_get(store, &tokens, payload, requester);
    }
    if let Some(form) = consumer_create_form(&tokens) {
        let result = consumer_create(store, requester, &form, payload);
        return json_reply("consumer_create_response", result);
    }
    let (kind, result) = match tokens.as_slice() {
        ["INFO"] => ("account_info_response", account_info(store)),
        ["STREAM", "CREATE", name] => (
            "stream_create_response",
            stream_create(store, name, payload),
        ),
        ["STREAM", "UPDATE", name] => (
            "stream_update_response",
            stream_update(store, name, payload),
        ),
        ["STREAM", "INFO", name] => ("stream_info_response", stream_info(store, name, payload)),
        ["STREAM", "DELETE", name] => (
            "stream_delete_response",
            store.delete_stream(name).map(|()| json!({"success": true})),
        ),
        ["STREAM", "PURGE", name] => ("stream_purge_response", stream_purge(store, name, payload)),
        ["STREAM", "NAMES"] => ("stream_names_response", stream_names(store, payload)),
        ["STREAM", "LIST"] => ("stream_list_response", stream_list(store, payload)),
        ["STREAM", "MSG", "GET", name] => (
            "stream_msg_get_response",
            msg_get(store, name, payload, requester),
        ),
        ["STREAM", "MSG", "DELETE", name] => (
            "stream_msg_delete_response",
            msg_delete(store, name, payload),
        ),
        ["CONSUMER", "INFO", stream, name] => (
            "consumer_info_response",
            store
                .consumer(stream, name)
                .and_then(|c| to_value(&c.info())),
        ),
        ["CONSUMER", "DELETE", stream, name] => (
            "consumer_delete_response",
            store
                .delete_consumer(stream, name)
                .map(|()| json!({"success": true})),
        ),
        ["CONSUMER", "NAMES", stream] => (
            "consumer_names_response",
            consumer_names(store, stream, payload),
        ),
        ["CONSUMER", "LIST", stream] => (
            "consumer_list_response",
            consumer_list(store, stream, payload),
        ),
        _ => (
            "error_response",
            Err(ApiError::bad_request(format!("unknown API call {api:?}"))),
        ),
    };
    json_reply(kind, result)
}

pub(super) fn json_reply(kind: &str, result: Result<Value, ApiError>) -> Reply {
    let type_name = format!("io.nats.jetstream.api.v1.{kind}");
    let mut body = match result {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(other) => json!({ "value": other }),
        Err(error) => json!({ "error": error }),
    };
    if let Value::Object(map) = &mut body {
        map.insert("type".to_owned(), Value::String(type_name));
    }
    Reply::Json(serde_json::to_vec(&body).unwrap_or_default())
}

fn to_value<T: serde::Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::new(500, 10003, e.to_string()))
}

/// Parses an optional JSON body: empty, `null` and `{}` are the default.
pub(super) fn parse_optional<T: Default + serde::de::DeserializeOwned>(
    payload: &[u8],
) -> Result<T, ApiError> {
    let text = std::str::from_utf8(payload)
        .map_err(ApiError::invalid_json)?
        .trim();
    if text.is_empty() || text == "null" {
        return Ok(T::default());
    }
    serde_json::from_str(text).map_err(ApiError::invalid_json)
}

fn account_info(store: &Store) -> Result<Value, ApiError> {
    let usage = store.usage();
    Ok(json!({
        "memory": usage.memory,
        "storage": usage.storage,
        "reserved_memory": 0,
        "reserved_storage": 0,
        "streams": usage.streams,
        "consumers": usage.consumers,
        "limits": {
            "max_memory": -1,
            "max_storage": -1,
            "max_streams": -1,
            "max_consumers": -1,
            "max_ack_pending": -1,
            "memory_max_stream_bytes": -1,
            "storage_max_stream_bytes": -1,
            "max_bytes_required": false,
        },
        // API level 1 is nats-server 2.11's: per-message TTL and subject
        // delete markers (clients check it before using them). Level 2
        // (2.12: schedules, counters, atomic batches) is not claimed.
        "api": { "level": 1, "total": 0, "errors": 0 },
    }))
}

pub(super) fn parse_stream_config(name: &str, payload: &[u8]) -> Result<StreamConfig, ApiError> {
    let config: StreamConfig = serde_json::from_slice(payload).map_err(ApiError::invalid_json)?;
    if config.name.is_empty() || config.name != name {
        return Err(ApiError::new(
            400,
            10056,
            "stream name in subject does not match request",
        ));
    }
    Ok(config)
}

fn stream_create(store: &Store, name: &str, payload: &[u8]) -> Result<Value, ApiError> {
    let config = parse_stream_config(name, payload)?;
    let (info, created) = store.create_stream(config)?;
    let mut value = to_value(&info)?;
    if created {
        value["did_create"] = Value::Bool(true);
    }
    Ok(value)
}

fn stream_update(store: &Store, name: &str, payload: &[u8]) -> Result<Value, ApiError> {
    let config = parse_stream_config(name, payload)?;
    to_value(&store.update_stream(config)?)
}

#[derive(Default, Deserialize)]
struct InfoRequest {
    #[serde(default)]
    subjects_filter: Option<String>,
    #[serde(default)]
    offset: Option<usize>,
}

fn stream_info(store: &Store, name: &str, payload: &[u8]) -> Result<Value, ApiError> {
    // nats-server ignores a body that is not an object here.
    let request: InfoRequest = parse_optional(payload).unwrap_or_default();
    let info = store.stream_info(name)?;
    let mut value = to_value(&info)?;
    if let Some(filter) = request.subjects_filter.filter(|f| !f.is_empty()) {
        let filter = Pattern::new(&filter).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let counts = store.stream(name)?.subject_counts(&filter);
        let offset = request.offset.unwrap_or(0);
        let total = counts.len();
        let page: serde_json::Map<String, Value> = counts
            .into_iter()
            .skip(offset)
            .take(100_000)
            .map(|(s, n)| (s, Value::from(n)))
            .collect();
        value["state"]["subjects"] = Value::Object(page);
        value["total"] = Value::from(total);
        value["offset"] = Value::from(offset);
        value["limit"] = Value::from(100_000);
    }
    Ok(value)
}

fn stream_purge(store: &Store, name: &str, payload: &[u8]) -> Result<Value, ApiError> {
    let request: PurgeRequest = parse_optional(payload)?;
    let purged = store.stream(name)?.purge(&request)?;
    Ok(json!({"success": true, "purged": purged}))
}

#[derive(Default, Deserialize)]
struct ListRequest {
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    subject: Option<String>,
}

fn stream_names(store: &Store, payload: &[u8]) -> Result<Value, ApiError> {
    let request: ListRequest = parse_optional(payload)?;
    let names = store.stream_names(request.subject.as_deref());
    let offset = request.offset.unwrap_or(0);
    let page: Vec<String> = names
        .iter()
        .skip(offset)
        .take(NAMES_LIMIT)
        .cloned()
        .collect();
    Ok(json!({"total": names.len(), "offset": offset, "limit": NAMES_LIMIT, "streams": page}))
}

fn stream_list(store: &Store, payload: &[u8]) -> Result<Value, ApiError> {
    let request: ListRequest = parse_optional(payload)?;
    let names = store.stream_names(request.subject.as_deref());
    let offset = request.offset.unwrap_or(0);
    let mut infos = Vec::new();
    for name in names.iter().skip(offset).take(LIST_LIMIT) {
        if let Ok(info) = store.stream_info(name) {
            infos.push(to_value(&info)?);
        }
    }
    Ok(json!({"total": names.len(), "offset": offset, "limit": LIST_LIMIT, "streams": infos}))
}

#[derive(Default, Deserialize)]
struct GetRequest {
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    last_by_subj: Option<String>,
    #[serde(default)]
    next_by_subj: Option<String>,
}

/// The message a get asks for, if `requester` may read it (see
/// [`Requester`]: a wildcard `next_by_subj` whose next match is not
/// readable is refused, not skipped past).
fn find_message(
    store: &Store,
    name: &str,
    request: &GetRequest,
    requester: &Requester,
) -> Result<StoredMessage, ApiError> {
    let found = find_any_message(store, name, request)?;
    if requester.may_read(&found.subject) {
        Ok(found)
    } else {
        // Without the subject: repeated wildcard gets would list them.
        Err(ApiError::not_permitted(
            "not permitted to read this message",
        ))
    }
}

fn find_any_message(
    store: &Store,
    name: &str,
    request: &GetRequest,
) -> Result<StoredMessage, ApiError> {
    let stream = store.stream(name)?;
    let pattern = |s: &str| Pattern::new(s).map_err(|e| ApiError::bad_request(e.to_string()));
    match (request.seq, &request.last_by_subj, &request.next_by_subj) {
        (_, Some(subject), _) => stream.last_by_subject(&pattern(subject)?),
        (seq, None, Some(subject)) => {
            stream.next_message(seq.unwrap_or(0), Some(&pattern(subject)?))
        }
        (Some(seq), None, None) => stream.get(seq),
        (None, None, None) => Err(ApiError::bad_request(
            "request must name a sequence or a subject",
        )),
    }
}

fn msg_get(
    store: &Store,
    name: &str,
    payload: &[u8],
    requester: &Requester,
) -> Result<Value, ApiError> {
    let request: GetRequest = serde_json::from_slice(payload).map_err(ApiError::invalid_json)?;
    let msg = find_message(store, name, &request, requester)?;
    let mut message = json!({
        "subject": msg.subject.to_string(),
        "seq": msg.seq,
        "time": herald_store::time::rfc3339(msg.time),
    });
    if let Some(h) = &msg.headers {
        message["hdrs"] = Value::String(BASE64.encode(h.raw()));
    }
    if !msg.payload.is_empty() {
        message["data"] = Value::String(BASE64.encode(&msg.payload));
    }
    Ok(json!({ "message": message }))
}

#[derive(Deserialize)]
pub(super) struct DeleteRequest {
    pub(super) seq: u64,
}

fn msg_delete(store: &Store, name: &str, payload: &[u8]) -> Result<Value, ApiError> {
    let request: DeleteRequest = serde_json::from_slice(payload).map_err(ApiError::invalid_json)?;
    store.stream(name)?.delete_message(request.seq)?;
    Ok(json!({"success": true}))
}

#[derive(Deserialize)]
struct CreateConsumerRequest {
    #[serde(default)]
    stream_name: String,
    #[serde(default)]
    config: Option<ConsumerConfig>,
    #[serde(default)]
    action: Option<String>,
}

fn consumer_create(
    store: &Store,
    requester: &Requester,
    form: &ConsumerCreateForm<'_>,
    payload: &[u8],
) -> Result<Value, ApiError> {
    let (config, action) = consumer_create_request(store, requester, form, payload)?;
    to_value(&store.create_consumer(form.stream, form.name, config, action)?)
}

/// The form of a consumer create subject, if it is one.
pub(super) fn consumer_create_form<'a>(tokens: &[&'a str]) -> Option<ConsumerCreateForm<'a>> {
    let form = |stream, name, filter: Option<String>, durable_form| ConsumerCreateForm {
        stream,
        name,
        filter,
        durable_form,
    };
    match tokens {
        ["CONSUMER", "CREATE", stream] => Some(form(stream, None, None, false)),
        ["CONSUMER", "CREATE", stream, name] => Some(form(stream, Some(name), None, false)),
        ["CONSUMER", "CREATE", stream, name, filter @ ..] => {
            Some(form(stream, Some(name), Some(filter.join(".")), false))
        }
        ["CONSUMER", "DURABLE", "CREATE", stream, name] => {
            Some(form(stream, Some(name), None, true))
        }
        _ => None,
    }
}

/// What a consumer create's subject said.
pub(super) struct ConsumerCreateForm<'a> {
    pub(super) stream: &'a str,
    /// The consumer's name, if the subject carries it.
    pub(super) name: Option<&'a str>,
    /// The filter subject, if the subject carries it.
    pub(super) filter: Option<String>,
    /// `CONSUMER.DURABLE.CREATE`.
    pub(super) durable_form: bool,
}

/// A consumer create request checked against its subject and its
/// requester's permissions: the config to create and how.
pub(super) fn consumer_create_request(
    store: &Store,
    requester: &Requester,
    form: &ConsumerCreateForm<'_>,
    payload: &[u8],
) -> Result<(ConsumerConfig, CreateAction), ApiError> {
    let ConsumerCreateForm {
        stream,
        name,
        ref filter,
        durable_form,
    } = *form;
    let filter = filter.clone();
    let request: CreateConsumerRequest =
        serde_json::from_slice(payload).map_err(ApiError::invalid_json)?;
    if request.stream_name != stream {
        return Err(ApiError::new(
            400,
            10056,
            "stream name in subject does not match request",
        ));
    }
    let mut config = request.config.unwrap_or_default();
    let action = match request.action.as_deref().unwrap_or("") {
        "" => CreateAction::CreateOrUpdate,
        "create" => CreateAction::Create,
        "update" => CreateAction::Update,
        other => {
            return Err(ApiError::invalid_json(format!(
                "unknown consumer action {other:?}"
            )));
        }
    };
    if durable_form {
        match &config.durable_name {
            None => {
                return Err(ApiError::new(
                    400,
                    10018,
                    "consumer expected to be durable but a durable name was not set",
                ));
            }
            Some(d) if Some(d.as_str()) != name => {
                return Err(ApiError::new(
                    400,
                    10017,
                    "consumer name in subject does not match durable name in request",
                ));
            }
            Some(_) => {}
        }
    } else if name.is_none() && config.durable_name.is_some() {
        return Err(ApiError::new(
            400,
            10020,
            "consumer expected to be ephemeral but a durable name was set in request",
        ));
    }
    if let (Some(name), Some(durable)) = (name, &config.durable_name)
        && name != durable
    {
        return Err(ApiError::new(
            400,
            10017,
            "consumer name in subject does not match durable name in request",
        ));
    }
    if let Some(filter) = filter {
        if !config.filter_subjects.is_empty() {
            return Err(ApiError::new(
                400,
                10137,
                "consumer with multiple subject filters cannot use subject based API",
            ));
        }
        match &config.filter_subject {
            Some(f) if *f == filter => {}
            None if filter.is_empty() => {}
            _ => {
                return Err(ApiError::new(
                    400,
                    10131,
                    "Consumer create request did not match filtered subject from create subject",
                ));
            }
        }
        config.filter_subject = Some(filter);
    }
    if requester.is_restricted() {
        let subjects = store.stream(stream)?.config().subjects;
        let reach = config.reach(&subjects);
        if let Some(unreadable) = reach.iter().find(|r| !requester.may_read_all(r)) {
            return Err(ApiError::not_permitted(format!(
                "not permitted to read every message on {unreadable}: a consumer may \
                 only deliver what its creator may read (narrow its filter)"
            )));
        }
        // Without a filter the consumer would follow the stream's subjects,
        // which an update may widen later: it keeps the ones its creator
        // was checked against.
        if config.filters().is_empty() {
            pin_filters(&mut config, reach);
        }
    }
    Ok((config, action))
}

fn consumer_names(store: &Store, stream: &str, payload: &[u8]) -> Result<Value, ApiError> {
    let request: ListRequest = parse_optional(payload)?;
    let names = store.consumer_names(stream)?;
    let offset = request.offset.unwrap_or(0);
    let page: Vec<String> = names
        .iter()
        .skip(offset)
        .take(NAMES_LIMIT)
        .cloned()
        .collect();
    Ok(json!({"total": names.len(), "offset": offset, "limit": NAMES_LIMIT, "consumers": page}))
}

fn consumer_list(store: &Store, stream: &str, payload: &[u8]) -> Result<Value, ApiError> {
    let request: ListRequest = parse_optional(payload)?;
    let names = store.consumer_names(stream)?;
    let offset = request.offset.unwrap_or(0);
    let mut infos = Vec::new();
    for name in names.iter().skip(offset).take(LIST_LIMIT) {
        if let Ok(c) = store.consumer(stream, name) {
            infos.push(to_value(&c.info())?);
        }
    }
    Ok(json!({"total": names.len(), "offset": offset, "limit": LIST_LIMIT, "consumers": infos}))
}

/// Sets `reach` as the consumer's explicit filters.
fn pin_filters(config: &mut ConsumerConfig, reach: Vec<Pattern>) {
    let mut filters: Vec<String> = reach.iter().map(ToString::to_string).collect();
    if filters.len() == 1 {
        config.filter_subject = filters.pop();
    } else {
        config.filter_subjects = filters;
    }
}

/// `DIRECT.GET.<stream>` with a JSON body, or `DIRECT.GET.<stream>.<subject…>`
/// with an empty one (last message on that subject). Answers with the
/// message itself and `Nats-Stream`/`Nats-Subject`/`Nats-Sequence`/
/// `Nats-Time-Stamp` headers, or a status.
fn direct_get(store: &Store, tokens: &[&str], payload: &[u8], requester: &Requester) -> Reply {
    let status = |code: u16, text: &str| {
        let headers = Headers::builder_with_status(code, text).build();
        Reply::Message(
            Message::new(Subject::from_wire_unchecked(Bytes::new()), Bytes::new())
                .with_headers(headers),
        )
    };
    let Some(name) = tokens.get(2) else {
        return status(408, "Bad Request");
    };
    let allowed = store.stream(name).map(|s| s.config().allow_direct);
    if !matches!(allowed, Ok(true)) {
        return status(404, "Message Not Found");
    }
    let request = if tokens.len() > 3 {
        GetRequest {
            last_by_subj: Some(tokens[3..].join(".")),
            ..GetRequest::default()
        }
    } else {
        if payload.iter().all(u8::is_ascii_whitespace) {
            return status(408, "Empty Request");
        }
        match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(_) => return status(408, "Bad Request"),
        }
    };
    let msg = match find_message(store, name, &request, requester) {
        Ok(m) => m,
        Err(e) if e.code == 403 => return status(403, "Permissions Violation"),
        Err(_) => return status(404, "Message Not Found"),
    };
    let base = msg
        .headers
        .clone()
        .unwrap_or_else(|| Headers::builder().build());
    let headers = base
        .appended("Nats-Stream", name)
        .and_then(|h| h.appended("Nats-Subject", &msg.subject.to_string()))
        .and_then(|h| h.appended("Nats-Sequence", &msg.seq.to_string()))
        .and_then(|h| h.appended("Nats-Time-Stamp", &herald_store::time::rfc3339(msg.time)));
    match headers {
        Ok(headers) => {
            Reply::Message(Message::new(msg.subject.clone(), msg.payload).with_headers(headers))
        }
        Err(_) => status(404, "Message Not Found"),
    }
}
