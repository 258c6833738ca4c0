//! `/connz`: the client connections, every protocol's (NATS, Redis, MQTT,
//! over TCP or WebSocket), with nats-server's paging, sorting and filters.
//! herald adds `protocol` to each entry.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{BadQuery, Web, bad_request, between, flag_param, now, paging, time, uptime};
use crate::clients::{ClientSnapshot, ClosedClient};

/// One connection as the page lists it.
struct Entry {
    record: ClientSnapshot,
    closed: Option<ClosedClient>,
    subscriptions: Vec<Arc<herald_core::Subscriber>>,
}

impl Entry {
    fn subscription_count(&self) -> usize {
        match &self.closed {
            Some(c) => c.subscriptions.len(),
            None => self.subscriptions.len(),
        }
    }

    /// When the connection's life ends for `uptime`/`idle`: now, or its close.
    fn end(&self, now: i64) -> i64 {
        self.closed.as_ref().map_or(now, |c| c.stop)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State_ {
    Open,
    Closed,
    All,
}

pub(super) fn page(web: &Web, query: &HashMap<String, String>) -> Result<Value, BadQuery> {
    let shared = &web.shared;
    let (offset, mut limit) = paging(query)?;
    let auth = flag_param(query, "auth")?;
    let subs = match query.get("subs").map(String::as_str) {
        Some(v) if v.eq_ignore_ascii_case("detail") => Subs::Detail,
        _ => {
            if flag_param(query, "subs")? {
                Subs::List
            } else {
                Subs::None
            }
        }
    };
    let state = match query.get("state").map(|s| s.to_ascii_lowercase()) {
        None => State_::Open,
        Some(s) if s.is_empty() || s == "open" => State_::Open,
        Some(s) if s == "closed" => State_::Closed,
        Some(s) if s == "any" || s == "all" => State_::All,
        Some(_) => {
            let raw = query.get("state").cloned().unwrap_or_default();
            return Err(bad_request(format!("Error decoding state for {raw}")));
        }
    };
    let sort = query.get("sort").map_or("cid", String::as_str);
    let sort = if sort.is_empty() { "cid" } else { sort };
    if !matches!(
        sort,
        "cid"
            | "start"
            | "subs"
            | "pending"
            | "msgs_to"
            | "msgs_from"
            | "bytes_to"
            | "bytes_from"
            | "last"
            | "idle"
            | "uptime"
            | "stop"
            | "reason"
            | "rtt"
    ) {
        return Err(bad_request(format!("invalid sorting option: {sort}")));
    }
    if matches!(sort, "stop" | "reason") && state != State_::Closed {
        return Err(bad_request(format!(
            "sort by {sort} only valid on closed connections"
        )));
    }
    let cid = match query.get("cid").map(String::as_str) {
        None | Some("") => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            bad_request(format!(
                "Error decoding uint64 for 'cid': strconv.ParseUint: parsing \"{text}\": invalid syntax"
            ))
        })?),
    };
    if cid.is_some() {
        limit = 1;
    }

    let mut entries = Vec::new();
    if state != State_::Closed {
        for record in shared.clients.open_clients() {
            let subscriptions = shared
                .broker
                .subscriptions_of(herald_core::ConnId(record.cid));
            entries.push(Entry {
                record: record.snapshot(),
                closed: None,
                subscriptions,
            });
        }
    }
    if state != State_::Open {
        for closed in shared.clients.closed_clients() {
            entries.push(Entry {
                record: closed.client.clone(),
                closed: Some(closed),
                subscriptions: Vec::new(),
            });
        }
    }
    let total = entries.len();
    if let Some(cid) = cid {
        entries.retain(|e| e.record.cid == cid);
    }
    let user = query.get("user").filter(|u| !u.is_empty());
    if let Some(user) = user {
        entries.retain(|e| e.record.description.user.as_ref() == Some(user));
    }
    if let Some(client) = query.get("mqtt_client").filter(|c| !c.is_empty()) {
        entries.retain(|e| e.record.description.mqtt_client.as_ref() == Some(client));
    }
    let now_ns = now();
    sort_entries(&mut entries, sort, now_ns);
    let connections: Vec<Value> = entries
        .iter()
        .skip(offset)
        .take(limit)
        .map(|e| entry_json(e, now_ns, auth, subs))
        .collect();
    Ok(json!({
        "server_id": shared.server_id,
        "now": time(now_ns),
        "num_connections": connections.len(),
        "total": total,
        "offset": offset,
        "limit": limit,
        "connections": connections,
    }))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Subs {
    None,
    List,
    Detail,
}

fn sort_entries(entries: &mut [Entry], sort: &str, now: i64) {
    let key = |e: &Entry| -> i128 {
        let r = &e.record;
        match sort {
            "subs" => e.subscription_count() as i128,
            "pending" => r.pending_bytes as i128,
            "msgs_to" => i128::from(r.sent.0),
            "msgs_from" => i128::from(r.received.0),
            "bytes_to" => i128::from(r.sent.1),
            "bytes_from" => i128::from(r.received.1),
            "last" => i128::from(r.last_activity),
            "idle" => i128::from(e.end(now) - r.last_activity),
            "stop" => i128::from(e.closed.as_ref().map_or(0, |c| c.stop)),
            "uptime" => i128::from(e.end(now) - r.start),
            _ => 0,
        }
    };
    match sort {
        "cid" | "start" | "rtt" => entries.sort_by_key(|e| e.record.cid),
        "reason" => entries.sort_by(|a, b| {
            let reason = |e: &Entry| e.closed.as_ref().map_or("", |c| c.reason);
            reason(a).cmp(reason(b))
        }),
        // Youngest first.
        "uptime" => entries.sort_by_key(key),
        _ => entries.sort_by_key(|e| std::cmp::Reverse(key(e))),
    }
}

fn entry_json(e: &Entry, now: i64, auth: bool, subs: Subs) -> Value {
    let r = &e.record;
    let d = r.description.clone();
    let end = e.end(now);
    let (in_msgs, in_bytes) = r.received;
    let (out_msgs, out_bytes) = r.sent;
    let mut v = json!({
        "cid": r.cid,
        "kind": "Client",
        "type": r.kind.type_name(),
        "protocol": r.kind.protocol(),
        "ip": r.addr.ip().to_string(),
        "port": r.addr.port(),
        "start": time(r.start),
        "last_activity": time(r.last_activity),
        "rtt": "0s",
        "uptime": uptime(between(r.start, end)),
        "idle": uptime(between(r.last_activity, end)),
        "pending_bytes": r.pending_bytes,
        "in_msgs": in_msgs,
        "out_msgs": out_msgs,
        "in_bytes": in_bytes,
        "out_bytes": out_bytes,
        "subscriptions": e.subscription_count(),
    });
    let Some(map) = v.as_object_mut() else {
        return v;
    };
    if let Some(closed) = &e.closed {
        map.insert("stop".into(), time(closed.stop).into());
        map.insert("reason".into(), closed.reason.into());
    }
    for (key, value) in [
        ("name", d.name),
        ("lang", d.lang),
        ("version", d.version),
        ("mqtt_client", d.mqtt_client),
    ] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            map.insert(key.into(), value.into());
        }
    }
    if auth && let Some(user) = d.user {
        map.insert("authorized_user".into(), user.into());
    }
    let subjects = || -> Vec<String> {
        match &e.closed {
            Some(c) => c.subscriptions.clone(),
            None => e
                .subscriptions
                .iter()
                .map(|s| String::from_utf8_lossy(s.interest().as_bytes()).into_owned())
                .collect(),
        }
    };
    match subs {
        Subs::None => {}
        Subs::List => {
            let list = subjects();
            if !list.is_empty() {
                map.insert("subscriptions_list".into(), list.into());
            }
        }
        Subs::Detail => {
            let detail: Vec<Value> = e
                .subscriptions
                .iter()
                .map(|s| {
                    let mut d = json!({
                        "subject": String::from_utf8_lossy(s.interest().as_bytes()),
                        "sid": String::from_utf8_lossy(s.tag()),
                        "msgs": s.delivered(),
                        "cid": r.cid,
                    });
                    if let Some(q) = s.queue() {
                        d["qgroup"] =
                            Value::from(String::from_utf8_lossy(q.as_bytes()).into_owned());
                    }
                    if s.max_messages() > 0 {
                        d["max"] = Value::from(s.max_messages());
                    }
                    d
                })
                .collect();
            if !detail.is_empty() {
                map.insert("subscriptions_list_detail".into(), detail.into());
            }
        }
    }
    v
}
