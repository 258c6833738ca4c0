//! Messages as the web APIs show them: JSON with the payload as text when it
//! is UTF-8 and as base64 otherwise, headers as name → list of values.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use herald_core::{Headers, Message};
use serde_json::{Map, Value};

/// `{"subject", "payload" | "payload_base64", "headers"?, "reply"?, "status"?}`.
pub(crate) fn message_json(msg: &Message) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("subject".into(), Value::String(msg.subject.to_string()));
    match std::str::from_utf8(&msg.payload) {
        Ok(text) => out.insert("payload".into(), Value::String(text.to_owned())),
        Err(_) => out.insert(
            "payload_base64".into(),
            Value::String(BASE64.encode(&msg.payload)),
        ),
    };
    if let Some(headers) = &msg.headers {
        let map = headers_json(headers);
        if !map.is_empty() {
            out.insert("headers".into(), Value::Object(map));
        }
        if let Some(status) = headers.status() {
            out.insert("status".into(), Value::from(status));
        }
    }
    if let Some(reply) = &msg.reply {
        out.insert("reply".into(), Value::String(reply.to_string()));
    }
    out
}

/// Header name → every value, in order.
pub(crate) fn headers_json(headers: &Headers) -> Map<String, Value> {
    let mut map = Map::new();
    for (name, value) in headers.iter() {
        let entry = map
            .entry(name.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = entry {
            values.push(Value::String(value.to_owned()));
        }
    }
    map
}
