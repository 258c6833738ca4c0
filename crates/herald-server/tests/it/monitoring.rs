//! nats-server's monitoring endpoints (`/varz`, `/connz`, `/subsz`, `/jsz`,
//! `/healthz`) on herald: the fields the tools read, with nats-server's
//! types (checked against the newest nats-server's own answers), and what
//! herald adds: every protocol's connections in `/connz`.

use std::net::SocketAddr;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use redis::AsyncCommands;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::Value;

use crate::common::reference::{free_port, nats_server};
use crate::common::{TestServer, sync};

async fn get(url: String) -> (u16, Value) {
    let response = reqwest::get(&url).await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

async fn monitor(server: &TestServer, path: &str) -> Value {
    let (status, body) = get(server.http_url(path)).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Waits until `/connz` lists `n` connections (clients connect asynchronously).
async fn connz_with(server: &TestServer, query: &str, n: usize) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = monitor(server, &format!("/connz?{query}")).await;
        if body["num_connections"] == n || tokio::time::Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn mqtt_client(addr: SocketAddr, id: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    AsyncClient::new(options, 10)
}

#[tokio::test]
async fn connz_lists_every_protocol_with_its_counters() {
    let server = TestServer::start().await;
    let nats = async_nats::ConnectOptions::new()
        .name("orders-service")
        .connect(server.nats_url())
        .await
        .expect("nats");
    let _sub = nats.subscribe("orders.*").await.expect("subscribe");
    for _ in 0..5 {
        nats.publish("orders.new", Bytes::from("12345"))
            .await
            .expect("publish");
    }
    sync(&nats).await;
    let redis = redis::Client::open(server.redis_url()).expect("redis");
    let mut redis = redis
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("cache")
        .query_async(&mut redis)
        .await
        .expect("setname");
    let _: i64 = redis.publish("orders.new", "x").await.expect("publish");
    let (mqtt, mut events) = mqtt_client(server.mqtt, "sensor-7");
    mqtt.subscribe("orders/#", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    let pump = tokio::spawn(async move { while events.poll().await.is_ok() {} });

    let body = connz_with(&server, "subs=1", 3).await;
    assert_eq!(body["num_connections"], 3, "{body}");
    assert_eq!(body["total"], 3);
    assert_eq!(body["limit"], 1024);
    let conns = body["connections"].as_array().expect("connections");
    let by_protocol = |p: &str| {
        conns
            .iter()
            .find(|c| c["protocol"] == p)
            .unwrap_or_else(|| panic!("no {p} connection in {body}"))
    };
    let n = by_protocol("nats");
    assert_eq!(n["name"], "orders-service");
    assert_eq!(n["lang"], "rust");
    assert_eq!(n["type"], "nats");
    assert_eq!(n["kind"], "Client");
    // Its 5 publishes and `sync`'s empty request, as nats-server counts them.
    assert_eq!(n["in_msgs"], 6);
    assert_eq!(n["in_bytes"], 25);
    assert!(
        n["out_msgs"].as_u64().unwrap() >= 6,
        "its own 5 and Redis's: {n}"
    );
    assert_eq!(
        n["subscriptions"],
        n["subscriptions_list"].as_array().map_or(0, Vec::len)
    );
    assert!(
        n["subscriptions_list"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "orders.*"),
        "{n}"
    );
    let r = by_protocol("redis");
    assert_eq!(r["name"], "cache");
    assert_eq!(r["in_msgs"], 1);
    let m = by_protocol("mqtt");
    assert_eq!(m["mqtt_client"], "sensor-7");
    assert_eq!(m["type"], "mqtt");
    for c in conns {
        for key in ["start", "last_activity", "uptime", "idle", "rtt", "ip"] {
            assert!(c[key].is_string(), "{key} in {c}");
        }
        assert!(c["port"].is_u64() && c["pending_bytes"].is_u64());
    }

    // Sorting, paging, one connection by cid.
    let sorted = monitor(&server, "/connz?sort=msgs_from&limit=1").await;
    assert_eq!(sorted["connections"][0]["protocol"], "nats");
    assert_eq!(sorted["num_connections"], 1);
    assert_eq!(sorted["total"], 3);
    let cid = n["cid"].as_u64().unwrap();
    let one = monitor(&server, &format!("/connz?cid={cid}")).await;
    assert_eq!(one["connections"][0]["cid"], cid);
    let (status, text) = get(server.http_url("/connz?sort=bogus")).await;
    assert_eq!(
        (status, text),
        (400, Value::from("invalid sorting option: bogus"))
    );
    let (status, _) = get(server.http_url("/connz?sort=stop")).await;
    assert_eq!(status, 400, "stop sorts closed connections only");

    // A closed connection moves to state=closed with its reason.
    drop(redis);
    let closed = connz_with(&server, "state=closed", 1).await;
    assert_eq!(closed["connections"][0]["protocol"], "redis", "{closed}");
    assert_eq!(closed["connections"][0]["reason"], "Client Closed");
    assert!(closed["connections"][0]["stop"].is_string());
    pump.abort();
}

#[tokio::test]
async fn varz_subsz_jsz_and_healthz_answer_with_the_numbers() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    for i in 0..3 {
        js.publish("orders.new", Bytes::from(format!("{i}")))
            .await
            .expect("sent")
            .await
            .expect("acked");
    }
    let _sub = client
        .queue_subscribe("work.*", "workers".into())
        .await
        .expect("sub");
    sync(&client).await;

    let varz = monitor(&server, "/varz").await;
    assert_eq!(varz["connections"], 1, "{varz}");
    assert_eq!(varz["port"], server.nats.port());
    assert!(varz["in_msgs"].as_u64().unwrap() >= 3);
    assert!(varz["subscriptions"].as_u64().unwrap() >= 1);
    assert!(varz["mem"].as_u64().unwrap() > 0, "resident memory is read");
    assert_eq!(varz["http_req_stats"]["/varz"], 1);

    let subsz = monitor(&server, "/subsz?subs=1&test=work.a").await;
    assert_eq!(subsz["total"], 1, "{subsz}");
    assert_eq!(subsz["subscriptions_list"][0]["subject"], "work.*");
    assert_eq!(subsz["subscriptions_list"][0]["qgroup"], "workers");
    let (status, text) = get(server.http_url("/subsz?subs=1&test=work.*")).await;
    assert_eq!(status, 400, "{text}");

    let jsz = monitor(&server, "/jsz?consumers=1&config=1").await;
    assert_eq!(jsz["streams"], 1, "{jsz}");
    assert_eq!(jsz["messages"], 3);
    let detail = &jsz["account_details"][0]["stream_detail"][0];
    assert_eq!(detail["name"], "ORDERS");
    assert_eq!(detail["state"]["messages"], 3);
    assert_eq!(detail["config"]["subjects"][0], "orders.>");

    let (status, body) = get(server.http_url("/healthz?js-enabled-only=true")).await;
    assert_eq!((status, body["status"].clone()), (200, Value::from("ok")));
    let (status, _) = get(server.http_url("/varz/")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_monitor_port_serves_the_same_without_the_rest() {
    let server = TestServer::start_with(|ready| {
        ready.monitor = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let addr = server
        .server()
        .shared()
        .listeners
        .get()
        .and_then(|l| l.monitor)
        .expect("monitor listener on");
    let (status, varz) = get(format!("http://{addr}/varz")).await;
    assert_eq!(status, 200);
    assert_eq!(varz["http_port"], addr.port());
    let (status, _) = get(format!("http://{addr}/v1/stats")).await;
    assert_eq!(status, 404, "only the monitoring endpoints");
}

/// Every field the tools read that nats-server 2.15 answers with is in
/// herald's answer too, with the same JSON type.
#[tokio::test]
async fn fields_have_nats_servers_types() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("dir");
    let dir_text = dir.path().display().to_string();
    let reference = nats_server(&["-js", "-sd", &dir_text, "-m", &port.to_string()]);
    let theirs = async_nats::connect(format!("nats://{}", reference.addr))
        .await
        .expect("nats-server");
    let server = TestServer::start().await;
    let ours = server.client().await;
    for client in [&theirs, &ours] {
        let _ = client.subscribe("probe.>").await.expect("sub");
        client
            .publish("probe.a", Bytes::from("x"))
            .await
            .expect("pub");
        sync(client).await;
    }
    let checks: &[(&str, &[&str])] = &[
        (
            "/varz",
            &[
                "server_id",
                "server_name",
                "version",
                "proto",
                "go",
                "host",
                "port",
                "max_connections",
                "ping_interval",
                "ping_max",
                "http_host",
                "http_port",
                "http_base_path",
                "https_port",
                "auth_timeout",
                "max_control_line",
                "max_payload",
                "max_pending",
                "tls_timeout",
                "write_deadline",
                "cluster",
                "gateway",
                "leaf",
                "mqtt",
                "websocket",
                "jetstream",
                "start",
                "now",
                "uptime",
                "mem",
                "cores",
                "gomaxprocs",
                "cpu",
                "connections",
                "total_connections",
                "routes",
                "remotes",
                "leafnodes",
                "in_msgs",
                "in_bytes",
                "out_msgs",
                "out_bytes",
                "slow_consumers",
                "subscriptions",
                "http_req_stats",
                "config_load_time",
                "slow_consumer_stats",
            ],
        ),
        (
            "/connz",
            &[
                "server_id",
                "now",
                "num_connections",
                "total",
                "offset",
                "limit",
                "connections",
            ],
        ),
        (
            "/subsz",
            &[
                "num_subscriptions",
                "num_cache",
                "num_inserts",
                "num_removes",
                "num_matches",
                "cache_hit_rate",
                "max_fanout",
                "avg_fanout",
            ],
        ),
        (
            "/jsz",
            &[
                "memory",
                "storage",
                "reserved_memory",
                "reserved_storage",
                "accounts",
                "ha_assets",
                "api",
                "streams",
                "consumers",
                "messages",
                "bytes",
                "config",
            ],
        ),
    ];
    let kind = |v: &Value| match v {
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    };
    for (path, fields) in checks {
        let (_, expected) = get(format!("http://127.0.0.1:{port}{path}")).await;
        let actual = monitor(&server, path).await;
        for field in *fields {
            assert_eq!(
                kind(&actual[*field]),
                kind(&expected[*field]),
                "{path} {field}: herald {} / nats-server {}",
                actual[*field],
                expected[*field]
            );
        }
    }
    let (_, expected) = get(format!("http://127.0.0.1:{port}/connz")).await;
    let actual = monitor(&server, "/connz").await;
    let (theirs_conn, ours_conn) = (&expected["connections"][0], &actual["connections"][0]);
    for field in theirs_conn.as_object().expect("a connection").keys() {
        assert_eq!(
            kind(&ours_conn[field]),
            kind(&theirs_conn[field]),
            "/connz connection {field}: herald {ours_conn} / nats-server {theirs_conn}"
        );
    }
    let (_, expected) = get(format!("http://127.0.0.1:{port}/healthz")).await;
    let (_, actual) = get(server.http_url("/healthz")).await;
    assert_eq!(actual, expected);
}
