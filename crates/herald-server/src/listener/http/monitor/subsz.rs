//! `/subsz`: the routing table's numbers and, with `subs=1`, the
//! subscriptions themselves (NATS and MQTT patterns, Redis channels and
//! globs), optionally only those a publish to `test` would reach.

use std::collections::HashMap;

use herald_core::Subject;
use serde_json::{Value, json};

use super::{BadQuery, Web, bad_request, flag_param, now, paging, time};

pub(super) fn page(web: &Web, query: &HashMap<String, String>) -> Result<Value, BadQuery> {
    let shared = &web.shared;
    let (offset, limit) = paging(query)?;
    let subs = flag_param(query, "subs")?;
    let test = match query.get("test").filter(|t| !t.is_empty()) {
        Some(text) => match Subject::new(text) {
            Ok(subject) if !text.contains(['*', '>']) => Some(subject),
            _ => {
                return Err(bad_request(format!(
                    "invalid test subject, must be valid publish subject: {text}"
                )));
            }
        },
        None => None,
    };
    let stats = shared.broker.index().routing_stats();
    let mut value = json!({
        "server_id": shared.server_id,
        "now": time(now()),
        "num_subscriptions": shared.broker.subscription_count(),
        "num_cache": stats.cached,
        "num_inserts": stats.inserts,
        "num_removes": stats.removes,
        "num_matches": stats.lookups,
        "cache_hit_rate": if stats.lookups == 0 { 0.0 } else { stats.hits as f64 / stats.lookups as f64 },
        "max_fanout": stats.max_fanout,
        "avg_fanout": stats.avg_fanout,
        "total": 0,
        "offset": offset,
        "limit": limit,
    });
    if !subs {
        return Ok(value);
    }
    let mut list = Vec::new();
    for record in shared.clients.open_clients() {
        for sub in shared
            .broker
            .subscriptions_of(herald_core::ConnId(record.cid))
        {
            if test.as_ref().is_some_and(|t| !sub.interest().matches(t)) {
                continue;
            }
            let mut entry = json!({
                "account": "$G",
                "account_tag": "$G",
                "subject": String::from_utf8_lossy(sub.interest().as_bytes()),
                "sid": String::from_utf8_lossy(sub.tag()),
                "msgs": sub.delivered(),
                "cid": record.cid,
            });
            if let Some(q) = sub.queue() {
                entry["qgroup"] = Value::from(String::from_utf8_lossy(q.as_bytes()).into_owned());
            }
            if sub.max_messages() > 0 {
                entry["max"] = Value::from(sub.max_messages());
            }
            list.push(entry);
        }
    }
    value["total"] = Value::from(list.len());
    let page: Vec<Value> = list.into_iter().skip(offset).take(limit).collect();
    if !page.is_empty() {
        value["subscriptions_list"] = Value::from(page);
    }
    Ok(value)
}
