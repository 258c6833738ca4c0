//! nats-server's monitoring endpoints, with its field names and shapes, so
//! the tools that watch NATS servers (prometheus-nats-exporter, nats-top,
//! Grafana dashboards built on them) work pointed at herald.
//!
//! | route | module |
//! | --- | --- |
//! | `/varz` | [`varz`] |
//! | `/connz` | [`connz`] |
//! | `/subsz`, `/subscriptionsz` | [`subsz`] |
//! | `/jsz` | [`jsz`] |
//! | `/routez` | here: the cluster's routes |
//! | `/healthz` | here |
//!
//! Served on the web port and, with `--monitor ADDR`, on a port of their
//! own. Formats follow nats-server: RFC 3339 times in UTC, `uptime` as
//! `1h2m3s`, bad query parameters answered 400 with a plain-text reason.

mod connz;
mod jsz;
mod subsz;
mod varz;

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

use super::Web;

/// The monitoring routes (on both ports).
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/varz", get(varz::varz))
        .route("/connz", page(connz::page))
        .route("/subsz", page(subsz::page))
        .route("/subscriptionsz", page(subsz::page))
        .route("/jsz", page(jsz::page))
        .route("/routez", page(routez))
        .route("/healthz", get(healthz))
        .layer(axum::middleware::from_fn(
            |request: Request, next: Next| async move {
                let mut response = next.run(request).await;
                // As nats-server: any page may read these.
                response.headers_mut().insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
                response
            },
        ))
}

/// The router of the monitoring port: these routes and nothing else.
pub(super) fn router(web: Web) -> Router {
    routes()
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .layer(axum::middleware::from_fn_with_state(web.clone(), count))
        .with_state(web)
}

/// Counts requests per path, for `/varz`'s `http_req_stats`.
pub(super) async fn count(State(web): State<Web>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if matches!(
        path,
        "/varz" | "/connz" | "/subsz" | "/subscriptionsz" | "/jsz" | "/routez" | "/healthz"
    ) {
        *web.shared
            .monitor_requests
            .lock()
            .entry(path.to_owned())
            .or_default() += 1;
    }
    next.run(request).await
}

/// `/routez`: this node's routes to the other nodes of its cluster, in
/// nats-server's shape (`num_routes`, `routes[]` with `remote_name`).
fn routez(web: &Web, _query: &HashMap<String, String>) -> Result<Value, BadQuery> {
    let shared = &web.shared;
    let cluster = shared.cluster.get();
    let routes: Vec<Value> = cluster
        .map(herald_cluster::Cluster::routes)
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "remote_name": r.node,
                "remote_id": r.node,
                "did_solicit": r.dialed,
                "is_configured": r.dialed,
                "ip": r.route.rsplit_once(':').map_or("", |(ip, _)| ip),
                "port": r.route.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()),
                "subscriptions": r.interests,
                "uptime": uptime(Duration::from_secs(r.uptime_secs)),
            })
        })
        .collect();
    Ok(serde_json::json!({
        "server_id": shared.server_id,
        "server_name": cluster.map_or(shared.server_id.as_str(), herald_cluster::Cluster::node),
        "now": time(now()),
        "cluster": cluster.map(herald_cluster::Cluster::name),
        "num_routes": routes.len(),
        "routes": routes,
    }))
}

/// `/healthz`: herald's streams are recovered before any listener opens,
/// so whenever it answers, JetStream is ready (`js-enabled-only` and
/// `js-server-only` answer the same).
async fn healthz(Query(query): Query<HashMap<String, String>>) -> Response {
    for flag in ["js-enabled-only", "js-server-only", "details"] {
        if let Err(bad) = flag_param(&query, flag) {
            return bad.into_response();
        }
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// A page built from the query string: JSON, or the reason the query was refused.
type Page = fn(&Web, &HashMap<String, String>) -> Result<Value, BadQuery>;

/// The GET route serving `build`.
fn page(build: Page) -> axum::routing::MethodRouter<Web> {
    get(
        move |State(web): State<Web>, Query(query): Query<HashMap<String, String>>| async move {
            match build(&web, &query) {
                Ok(value) => json(&value),
                Err(bad) => bad.into_response(),
            }
        },
    )
}

/// JetStream's `config` as nats-server reports it (`/varz`, `/jsz`): no
/// memory or storage limits.
fn jetstream_config() -> Value {
    serde_json::json!({
        "max_memory": -1,
        "max_storage": -1,
        "store_dir": "",
        "sync_interval": 0,
    })
}

/// A JSON answer as nats-server writes it (indented two spaces).
fn json(value: &Value) -> Response {
    let body = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".to_owned());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A query nats-server would refuse: answered 400 with its plain-text reason.
#[derive(Debug)]
struct BadQuery(String);

impl IntoResponse for BadQuery {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, self.0).into_response()
    }
}

fn bad_request(text: String) -> BadQuery {
    BadQuery(text)
}

/// A boolean parameter, read as Go's `strconv.ParseBool` does; absent or
/// empty is false.
fn flag_param(query: &HashMap<String, String>, name: &str) -> Result<bool, BadQuery> {
    match query.get(name).map(String::as_str) {
        None | Some("") => Ok(false),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(other) => Err(bad_request(format!(
            "Error decoding boolean for '{name}': strconv.ParseBool: parsing \"{other}\": invalid syntax"
        ))),
    }
}

/// An integer parameter (Go's `strconv.Atoi`); absent or empty is 0.
fn int_param(query: &HashMap<String, String>, name: &str) -> Result<i64, BadQuery> {
    match query.get(name).map(String::as_str) {
        None | Some("") => Ok(0),
        Some(text) => text.parse().map_err(|_| {
            bad_request(format!(
                "Error decoding int for '{name}': strconv.Atoi: parsing \"{text}\": invalid syntax"
            ))
        }),
    }
}

/// Paging as nats-server applies it: a negative offset is 0, a limit of 0
/// or less is 1024.
fn paging(query: &HashMap<String, String>) -> Result<(usize, usize), BadQuery> {
    let offset = int_param(query, "offset")?.max(0) as usize;
    let limit = match int_param(query, "limit")? {
        n if n <= 0 => 1024,
        n => n as usize,
    };
    Ok((offset, limit))
}

/// A time (ns since the epoch) as nats-server writes it.
fn time(nanos: i64) -> String {
    herald_store::time::rfc3339(nanos)
}

/// Now, in ns since the epoch.
fn now() -> i64 {
    herald_store::time::now_nanos()
}

/// An uptime as nats-server writes it: whole seconds, `3d4h0m9s`.
fn uptime(d: Duration) -> String {
    let secs = d.as_secs();
    let (mins, hours, days) = (secs / 60, secs / 3600, secs / 86_400);
    let years = days / 365;
    if years > 0 {
        format!(
            "{years}y{}d{}h{}m{}s",
            days % 365,
            hours % 24,
            mins % 60,
            secs % 60
        )
    } else if days > 0 {
        format!("{days}d{}h{}m{}s", hours % 24, mins % 60, secs % 60)
    } else if hours > 0 {
        format!("{hours}h{}m{}s", mins % 60, secs % 60)
    } else if mins > 0 {
        format!("{mins}m{}s", secs % 60)
    } else {
        format!("{secs}s")
    }
}

/// The time between two instants given in ns, as a [`Duration`].
fn between(from: i64, to: i64) -> Duration {
    Duration::from_nanos(u64::try_from(to.saturating_sub(from)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptimes_read_as_nats_server_writes_them() {
        let u = |s| uptime(Duration::from_secs(s));
        assert_eq!(u(0), "0s");
        assert_eq!(u(49), "49s");
        assert_eq!(u(128), "2m8s");
        assert_eq!(u(3600), "1h0m0s");
        assert_eq!(u(3 * 86_400 + 4 * 3600 + 9), "3d4h0m9s");
        assert_eq!(
            u(365 * 86_400 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5),
            "1y2d3h4m5s"
        );
    }

    #[test]
    fn parameters_parse_as_go_does() {
        let q = |k: &str, v: &str| HashMap::from([(k.to_owned(), v.to_owned())]);
        assert_eq!(flag_param(&q("subs", "1"), "subs").ok(), Some(true));
        assert_eq!(flag_param(&q("subs", "False"), "subs").ok(), Some(false));
        assert!(flag_param(&q("subs", "yes"), "subs").is_err());
        assert_eq!(paging(&q("limit", "0")).ok(), Some((0, 1024)));
        assert_eq!(paging(&q("offset", "-3")).ok(), Some((0, 1024)));
        assert!(paging(&q("limit", "x")).is_err());
    }
}
