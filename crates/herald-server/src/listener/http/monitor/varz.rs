//! `/varz`: the server, its limits and its traffic since start, with every
//! numeric field nats-server has present from the first answer on (the
//! Prometheus exporter fixes its metric set from the first scrape).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::response::Response;
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::{Web, json, now, time, uptime};

/// The CPU time and wall time of the previous `/varz`, for `cpu` (percent
/// of one core since then, as nats-server samples it).
static CPU_SAMPLE: Mutex<Option<(std::time::Instant, f64)>> = Mutex::new(None);

pub(super) async fn varz(State(web): State<Web>) -> Response {
    let shared = &web.shared;
    let limits = &shared.limits;
    let broker = shared.broker.stats();
    let listeners = shared.listeners.get().copied().unwrap_or_default();
    let (host, port) = listeners.nats.map_or(("0.0.0.0".to_owned(), 0), |a| {
        (a.ip().to_string(), a.port())
    });
    let (http_host, http_port) = listeners
        .monitor
        .or(listeners.http)
        .map_or(("0.0.0.0".to_owned(), 0), |a| {
            (a.ip().to_string(), a.port())
        });
    let now_ns = now();
    let up = shared.started.elapsed();
    let start = now_ns - i64::try_from(up.as_nanos()).unwrap_or(0);
    let usage = shared.store.usage();
    let stats = &shared.stats;
    let slow = broker.slow_consumers;
    let requests: serde_json::Map<String, Value> = shared
        .monitor_requests
        .lock()
        .iter()
        .map(|(path, n)| (path.clone(), Value::from(*n)))
        .collect();
    let mqtt = listeners.mqtt.map_or(
        json!({}),
        |a| json!({"host": a.ip().to_string(), "port": a.port()}),
    );
    let websocket = listeners.http.map_or(
        json!({}),
        |a| json!({"host": a.ip().to_string(), "port": a.port()}),
    );
    let mut value = json!({
        "server_id": shared.server_id,
        "server_name": shared.server_id,
        "version": env!("CARGO_PKG_VERSION"),
        "proto": 1,
        "go": "herald (Rust)",
        "host": host,
        "port": port,
        "max_connections": match limits.max_connections { 0 => 65_536, n => n },
        "ping_interval": limits.ping_interval.as_nanos() as u64,
        "ping_max": limits.max_pings_out,
        "http_host": http_host,
        "http_port": http_port,
        "http_base_path": "",
        "https_port": 0,
        "auth_timeout": limits.auth_timeout.as_secs_f64(),
        "max_control_line": limits.max_control_line,
        "max_payload": limits.max_payload,
        "max_pending": limits.max_pending,
        "tls_timeout": 2,
        "write_deadline": limits.write_deadline.as_nanos() as u64,
        "cluster": cluster(shared),
        "gateway": {},
        "leaf": {},
        "mqtt": mqtt,
        "websocket": websocket,
        "jetstream": {
            "config": super::jetstream_config(),
            "stats": {
                "memory": usage.memory,
                "storage": usage.storage,
                "reserved_memory": 0,
                "reserved_storage": 0,
                "accounts": 1,
                "ha_assets": 0,
                "api": {"level": 1, "total": 0, "errors": 0},
            },
            "limits": {},
        },
        "start": time(start),
        "now": time(now_ns),
        "uptime": uptime(up),
        "mem": resident_bytes(),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "gomaxprocs": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "cpu": cpu_percent(),
        "connections": shared.clients.open_count(),
        "total_connections": stats.total_connections.load(Ordering::Relaxed),
        "routes": 0,
        "remotes": 0,
        "leafnodes": 0,
        "in_msgs": broker.msgs_in,
        "in_bytes": broker.bytes_in,
        "in_client_msgs": broker.msgs_in,
        "in_client_bytes": broker.bytes_in,
        "out_msgs": broker.msgs_out,
        "out_bytes": broker.bytes_out,
        "out_client_msgs": broker.msgs_out,
        "out_client_bytes": broker.bytes_out,
        "slow_consumers": slow,
        "stalled_clients": broker.stalls,
        "subscriptions": shared.broker.subscription_count(),
        "http_req_stats": requests,
        "config_load_time": time(start),
        "config_digest": "",
        "slow_consumer_stats": {"clients": slow, "routes": 0, "gateways": 0, "leafs": 0},
    });
    // Present only when true, as nats-server writes them.
    if shared.users_required() {
        value["auth_required"] = Value::Bool(true);
    }
    if shared.tls().is_some() {
        value["tls_required"] = Value::Bool(true);
    }
    json(&value)
}

/// Resident memory in bytes (`/proc/self/statm`; 0 where there is none).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// CPU seconds used by the process so far (`/proc/self/stat`, 100 ticks/s).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which may hold spaces: ") S ppid ...".
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Percent of one core used since the previous call (since start on the first).
fn cpu_percent() -> f64 {
    let Some(used) = cpu_seconds() else {
        return 0.0;
    };
    let now = std::time::Instant::now();
    let mut sample = CPU_SAMPLE.lock();
    let percent = match *sample {
        Some((at, before)) if now.duration_since(at).as_secs_f64() > 0.0 => {
            (used - before) / now.duration_since(at).as_secs_f64() * 100.0
        }
        _ => 0.0,
    };
    *sample = Some((now, used));
    (percent * 100.0).round() / 100.0
}

/// nats-server's `cluster` object: the cluster's name, the route listener,
/// and the route addresses of the nodes this one is connected to.
fn cluster(shared: &crate::shared::Shared) -> Value {
    let Some(cluster) = shared.cluster.get() else {
        return serde_json::json!({});
    };
    let addr = cluster.route_addr();
    serde_json::json!({
        "name": cluster.name(),
        "addr": addr.map(|a| a.ip().to_string()),
        "cluster_port": addr.map_or(0, |a| a.port()),
        "urls": cluster.routes().into_iter().map(|r| r.route).collect::<Vec<_>>(),
    })
}
