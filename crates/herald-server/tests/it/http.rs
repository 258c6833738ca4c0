//! The web listener: HTTP publish, Server-Sent Events, herald's WebSocket
//! protocol, NATS over WebSocket, streams over REST, metrics; with reqwest,
//! tokio-tungstenite and async-nats, across protocols.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::common::{TestServer, sync};

const WAIT: Duration = Duration::from_secs(10);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws(server: &TestServer) -> Ws {
    let url = format!("ws://{}/v1/ws", server.http);
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    let hello = next_json(&mut socket).await;
    assert_eq!(hello["op"], "hello");
    assert_eq!(hello["server"], "herald");
    socket
}

async fn next_json(socket: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("ok");
        if let WsMessage::Text(text) = frame {
            return serde_json::from_str(&text).expect("JSON frame");
        }
    }
}

async fn call(socket: &mut Ws, op: Value) -> Value {
    socket
        .send(WsMessage::Text(op.to_string().into()))
        .await
        .expect("send");
    next_json(socket).await
}

/// Reads an SSE response until `n` events with data arrived; returns their
/// (id, data) pairs.
async fn sse_events(response: reqwest::Response, n: usize) -> Vec<(String, Value)> {
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut events = Vec::new();
    while events.len() < n {
        let chunk = tokio::time::timeout(WAIT, body.next())
            .await
            .expect("event in time")
            .expect("open")
            .expect("ok");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let mut id = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if !data.is_empty() {
                events.push((id, serde_json::from_str(&data).expect("JSON data")));
            }
        }
    }
    events
}

#[tokio::test]
async fn http_publish_reaches_nats_with_headers() {
    let server = TestServer::start().await;
    let nats = server.client().await;
    let mut sub = nats.subscribe("web.orders").await.unwrap();
    sync(&nats).await;
    let reply: Value = reqwest::Client::new()
        .post(server.http_url("/v1/publish/web.orders"))
        .header("Herald-Header-Region", "eu")
        .header("Nats-Msg-Id", "m-1")
        .body("hello from http")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["receivers"], 1, "{reply}");
    let msg = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.payload.as_ref(), b"hello from http");
    let headers = msg.headers.expect("headers");
    assert_eq!(headers.get("region").map(|v| v.as_str()), Some("eu"));
    assert_eq!(headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some("m-1"));
}

#[tokio::test]
async fn bad_http_requests_get_clear_errors() {
    let server = TestServer::start_with(|ready| ready.limits.max_payload = 1024).await;
    let client = reqwest::Client::new();
    let bad = client
        .post(server.http_url("/v1/publish/a..b"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["code"], "invalid_subject", "{body}");
    let big = client
        .post(server.http_url("/v1/publish/big"))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let body: Value = big.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large");
    let missing = client
        .get(server.http_url("/v1/nothing/here"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    let filter = client
        .get(server.http_url("/v1/subscribe/a.b?filter=region%20%3D%3D"))
        .send()
        .await
        .unwrap();
    assert_eq!(filter.status(), 400);
    let body: Value = filter.json().await.unwrap();
    assert_eq!(body["code"], "invalid_filter");
    assert!(
        body["error"].as_str().unwrap().contains("Syntax error"),
        "{body}"
    );
    assert_eq!(
        client
            .get(server.http_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn sse_streams_nats_publishes_with_filters() {
    let server = TestServer::start().await;
    let response = reqwest::Client::new()
        .get(server.http_url("/v1/subscribe/sensors.*?filter=priority%20%3E%3D%203"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let nats = server.client().await;
    // The subscription exists once the response headers are out.
    for (priority, body) in [("1", "low"), ("5", "high")] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("priority", priority);
        nats.publish_with_headers("sensors.kitchen", headers, body.into())
            .await
            .unwrap();
    }
    nats.publish("sensors.garage", "no headers".into())
        .await
        .unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("priority", "9");
    nats.publish_with_headers("sensors.garage", headers, vec![0xff, 0x00].into())
        .await
        .unwrap();
    let events = sse_events(response, 2).await;
    assert_eq!(events[0].1["subject"], "sensors.kitchen");
    assert_eq!(events[0].1["payload"], "high");
    assert_eq!(events[0].1["headers"]["priority"], json!(["5"]));
    assert_eq!(events[1].1["payload_base64"], "/wA=");
}

#[tokio::test]
async fn sse_resumes_a_stream_from_last_event_id() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    js.create_stream(stream::Config {
        name: "FEED".into(),
        subjects: vec!["feed.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    for i in 1..=5 {
        let ack: Value = client
            .post(server.http_url("/v1/publish/feed.news"))
            .body(format!("item {i}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ack["stream"], "FEED", "{ack}");
        assert_eq!(ack["seq"], i, "{ack}");
    }
    let response = client
        .get(server.http_url("/v1/subscribe/feed.>"))
        .header("Last-Event-ID", "3")
        .send()
        .await
        .unwrap();
    let replayed = sse_events(response, 2).await;
    assert_eq!(replayed[0].0, "4");
    assert_eq!(replayed[0].1["payload"], "item 4");
    assert_eq!(replayed[1].0, "5");
    // Live after the replay, ids are still stream sequences.
    let response = client
        .get(server.http_url("/v1/subscribe/feed.>?last_event_id=5"))
        .send()
        .await
        .unwrap();
    js.publish("feed.news", "item 6".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let live = sse_events(response, 1).await;
    assert_eq!(live[0].0, "6");
    assert_eq!(live[0].1["seq"], 6);
}

#[tokio::test]
async fn websocket_protocol_crosses_to_nats_both_ways() {
    let server = TestServer::start().await;
    let mut socket = ws(&server).await;
    let ok = call(
        &mut socket,
        json!({"op":"subscribe","id":1,"sid":"s1","subject":"chat.>"}),
    )
    .await;
    assert_eq!(ok, json!({"op":"ok","id":1}));
    let nats = server.client().await;
    let mut from_ws = nats.subscribe("chat.lobby").await.unwrap();
    sync(&nats).await;
    nats.publish("chat.lobby", r#"{"username":"nats","message":"hi"}"#.into())
        .await
        .unwrap();
    let msg = next_json(&mut socket).await;
    assert_eq!(msg["op"], "message");
    assert_eq!(msg["sid"], "s1");
    assert_eq!(msg["subject"], "chat.lobby");
    assert_eq!(msg["payload"], r#"{"username":"nats","message":"hi"}"#);
    let published = call(
        &mut socket,
        json!({"op":"publish","id":2,"subject":"chat.lobby","payload":"from ws","headers":{"Trace":"t1"}}),
    )
    .await;
    assert_eq!(published["op"], "ok", "{published}");
    assert_eq!(published["id"], 2);
    assert_eq!(
        published["receivers"], 2,
        "the NATS subscriber and the socket's own"
    );
    // The NATS subscriber saw the NATS publish first (echo), then this one.
    let first = tokio::time::timeout(WAIT, from_ws.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.payload.as_ref(),
        br#"{"username":"nats","message":"hi"}"#
    );
    let got = tokio::time::timeout(WAIT, from_ws.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.payload.as_ref(), b"from ws");
    assert_eq!(
        got.headers.unwrap().get("Trace").map(|v| v.as_str()),
        Some("t1")
    );
    let echo = next_json(&mut socket).await;
    assert_eq!(echo["payload"], "from ws");
    assert_eq!(echo["headers"]["Trace"], json!(["t1"]));
    let unsubscribed = call(&mut socket, json!({"op":"unsubscribe","id":3,"sid":"s1"})).await;
    assert_eq!(unsubscribed["op"], "ok");
    let pong = call(&mut socket, json!({"op":"ping","id":"p"})).await;
    assert_eq!(pong, json!({"op":"pong","id":"p"}));
}

#[tokio::test]
async fn websocket_errors_are_frames_and_the_connection_stays() {
    let server = TestServer::start().await;
    let mut socket = ws(&server).await;
    let cases = [
        ("not json", "bad_json"),
        (r#"{"op":"dance"}"#, "unknown_op"),
        (
            r#"{"op":"subscribe","sid":"a","subject":"a..b"}"#,
            "invalid_subject",
        ),
        (
            r#"{"op":"subscribe","sid":"a","subject":"a","filter":"x =="}"#,
            "invalid_filter",
        ),
        (
            r#"{"op":"publish","subject":"a.*","payload":"x"}"#,
            "invalid_subject",
        ),
        (
            r#"{"op":"publish","subject":"a","payload_base64":"!!"}"#,
            "bad_payload",
        ),
    ];
    for (frame, code) in cases {
        socket.send(WsMessage::Text(frame.into())).await.unwrap();
        let answer = next_json(&mut socket).await;
        assert_eq!(answer["op"], "error", "{frame}: {answer}");
        assert_eq!(answer["code"], code, "{frame}: {answer}");
    }
    let ok = call(
        &mut socket,
        json!({"op":"subscribe","id":9,"sid":"a","subject":"a"}),
    )
    .await;
    assert_eq!(ok["op"], "ok");
    let dup = call(
        &mut socket,
        json!({"op":"subscribe","id":10,"sid":"a","subject":"b"}),
    )
    .await;
    assert_eq!(dup["code"], "duplicate_sid");
    // A header filter on a WebSocket subscription.
    let ok = call(
        &mut socket,
        json!({"op":"subscribe","id":11,"sid":"f","subject":"f.>","filter":"region == \"eu\""}),
    )
    .await;
    assert_eq!(ok["op"], "ok");
    call(
        &mut socket,
        json!({"op":"publish","subject":"f.x","payload":"us","headers":{"region":"us"}}),
    )
    .await;
    call(
        &mut socket,
        json!({"op":"publish","subject":"f.x","payload":"eu","headers":{"region":"eu"}}),
    )
    .await;
    let msg = next_json(&mut socket).await;
    assert_eq!(msg["payload"], "eu", "{msg}");
}

#[tokio::test]
async fn nats_clients_connect_over_websocket() {
    let server = TestServer::start().await;
    let over_ws = async_nats::connect(format!("ws://{}/nats", server.http))
        .await
        .expect("connects over ws");
    let tcp = server.client().await;
    let mut sub = over_ws.subscribe("bridge.>").await.unwrap();
    over_ws.flush().await.unwrap();
    sync(&over_ws).await;
    tcp.publish("bridge.test", "over the bridge".into())
        .await
        .unwrap();
    let msg = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.payload.as_ref(), b"over the bridge");
    let reply = tokio::spawn({
        let tcp = tcp.clone();
        async move {
            let mut requests = tcp.subscribe("svc.echo").await.unwrap();
            let req = requests.next().await.unwrap();
            tcp.publish(req.reply.unwrap(), req.payload).await.unwrap();
        }
    });
    sync(&tcp).await;
    let answer = over_ws.request("svc.echo", "ping".into()).await.unwrap();
    assert_eq!(answer.payload.as_ref(), b"ping");
    reply.await.unwrap();
}

#[tokio::test]
async fn streams_over_rest() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let created = client
        .post(server.http_url("/v1/streams"))
        .json(&json!({"name":"AUDIT","subjects":["audit.>"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let info: Value = created.json().await.unwrap();
    assert_eq!(info["config"]["name"], "AUDIT");
    let nats = server.client().await;
    for i in 1..=5 {
        nats.publish(
            format!("audit.{}", if i % 2 == 0 { "even" } else { "odd" }),
            format!("{i}").into(),
        )
        .await
        .unwrap();
    }
    sync(&nats).await;
    let wait_for = |n: u64| {
        let client = client.clone();
        let url = server.http_url("/v1/streams/AUDIT");
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let info: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
                if info["state"]["messages"] == n {
                    return info;
                }
                assert!(tokio::time::Instant::now() < deadline, "{info}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(5).await;
    let page: Value = client
        .get(server.http_url("/v1/streams/AUDIT/messages?from_seq=2&limit=2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seqs: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![2, 3]);
    assert_eq!(page["next_seq"], 4);
    let odd: Value = client
        .get(server.http_url("/v1/streams/AUDIT/messages?subject=audit.odd"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let payloads: Vec<&str> = odd["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["payload"].as_str().unwrap())
        .collect();
    assert_eq!(payloads, vec!["1", "3", "5"]);
    let recent: Value = client
        .get(server.http_url("/v1/streams/AUDIT/messages?since=1h"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(recent["messages"].as_array().unwrap().len(), 5);
    let one: Value = client
        .get(server.http_url("/v1/streams/AUDIT/messages/4"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (one["subject"].as_str(), one["payload"].as_str()),
        (Some("audit.even"), Some("4"))
    );
    assert!(one["time"].as_str().unwrap().ends_with('Z'));
    let deleted = client
        .delete(server.http_url("/v1/streams/AUDIT/messages/4"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let gone = client
        .get(server.http_url("/v1/streams/AUDIT/messages/4"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let purged: Value = client
        .post(server.http_url("/v1/streams/AUDIT/purge"))
        .json(&json!({"filter":"audit.odd"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(purged["purged"], 3);
    wait_for(1).await;
    let listed: Value = client
        .get(server.http_url("/v1/streams"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["streams"][0]["config"]["name"], "AUDIT");
    assert_eq!(
        client
            .delete(server.http_url("/v1/streams/AUDIT"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let missing = client
        .get(server.http_url("/v1/streams/AUDIT"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["err_code"], 10059);
}

#[tokio::test]
async fn metrics_and_stats_report_what_happens() {
    let server = TestServer::start().await;
    let nats = server.client().await;
    let _sub = nats.subscribe("m.>").await.unwrap();
    nats.publish("m.a", "x".into()).await.unwrap();
    sync(&nats).await;
    let client = reqwest::Client::new();
    let metrics = client
        .get(server.http_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    assert!(text.contains("# TYPE herald_connections gauge"), "{text}");
    assert!(
        text.contains("herald_connections{protocol=\"nats\"} 1"),
        "{text}"
    );
    let stats: Value = client
        .get(server.http_url("/v1/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["connections"]["nats"], 1);
    // `m.>` and the client's request inbox.
    assert_eq!(stats["subscriptions"], 2, "{stats}");
    assert!(text.contains("herald_subscriptions 2"), "{text}");
    assert!(stats["messages_in"].as_u64().unwrap() >= 1);
    let live = client
        .get(server.http_url("/v1/stats/live"))
        .send()
        .await
        .unwrap();
    let mut body = live.bytes_stream();
    let first = tokio::time::timeout(WAIT, body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first = String::from_utf8_lossy(&first);
    assert!(first.contains("event: stats"), "{first}");
}

/// Reads until the server closes the connection (or `limit` passes).
async fn closed_within(socket: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_finish_their_headers_are_closed_and_harm_no_one() {
    use tokio::io::AsyncWriteExt;
    const SLOW: usize = 1000;
    let _ = rlimit::increase_nofile_limit(4 * SLOW as u64);
    let server = TestServer::start().await;
    let mut slow = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let mut socket = tokio::net::TcpStream::connect(server.http)
            .await
            .expect("connect");
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n")
            .await
            .expect("half a request");
        slow.push(socket);
    }
    // A normal request is served while they hang.
    let status = reqwest::get(server.http_url("/healthz"))
        .await
        .expect("served beside the slow clients")
        .status();
    assert_eq!(status, 200);
    // And each of them is closed (the header-read timeout is 10 s).
    for (i, socket) in slow.iter_mut().enumerate() {
        assert!(
            closed_within(socket, Duration::from_secs(60)).await,
            "slow client {i} still open"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_kept_alive_connection_idle_between_requests_is_closed() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    let mut socket = tokio::net::TcpStream::connect(server.http)
        .await
        .expect("connect");
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n")
        .await
        .expect("request");
    // The response arrives, then the connection idles and is closed.
    assert!(closed_within(&mut socket, Duration::from_secs(60)).await);
    server.stop().await;
}

/// A NATS client over WebSocket is one connection from its own address: with
/// one connection allowed per address, the WebSocket (which holds that place)
/// still serves NATS, since nothing opens a second connection behind it.
#[tokio::test]
async fn nats_over_websocket_is_one_connection_from_the_browsers_address() {
    let server = TestServer::start_with(|ready| ready.limits.max_connections_per_ip = 1).await;
    let over_ws = async_nats::connect(format!("ws://{}/nats", server.http))
        .await
        .expect("connects over ws");
    let mut sub = over_ws.subscribe("one.>").await.expect("subscribe");
    sync(&over_ws).await;
    over_ws
        .publish("one.x", "to myself".into())
        .await
        .expect("publish");
    let msg = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("in time")
        .expect("a message");
    assert_eq!(msg.payload.as_ref(), b"to myself");
    server.stop().await;
}
