//! One rule for every read of a stored message: a user reads it only if
//! they may subscribe to its subject. Checked on each path to a stream's
//! messages — the JetStream API (message get, direct get), consumers
//! (creation, pulls, `+NXT`), REST, SSE resume and herald's WebSocket —
//! for a user allowed every `$JS.API` call but denied `data.secret.>`.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::{SinkExt, StreamExt};
use herald_core::{Pattern, Rules};
use herald_server::auth::{UserConfig, Users};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::common::TestServer;

const WAIT: Duration = Duration::from_secs(10);
const ADMIN: &str = "admin-token-0123456789abcdef";
const READER: &str = "reader-token-0123456789abcdef";
/// The reader's stored-message denial, as the JetStream API words it.
const NOT_PERMITTED: u64 = 19001;

fn rules(allow: &[&str], deny: &[&str]) -> Option<Rules> {
    let patterns = |list: &[&str]| {
        list.iter()
            .map(|p| Pattern::new(p).expect("pattern"))
            .collect()
    };
    Some(Rules {
        allow: patterns(allow),
        deny: patterns(deny),
    })
}

/// admin: everything. reader: publishes anything (every `$JS.API` call
/// included), subscribes to everything but `data.secret.>`. Stream `DATA`
/// (`data.>`, direct gets allowed) holds `data.open.1` (1), `data.secret.a`
/// (2), `data.open.2` (3).
async fn setup() -> (TestServer, async_nats::Client, async_nats::Client) {
    let users = Users::from_config(&[
        token_user("admin", ADMIN, None, None),
        token_user(
            "reader",
            READER,
            rules(&[">"], &[]),
            rules(&[">"], &["data.secret.>"]),
        ),
    ])
    .expect("valid users");
    let server = TestServer::start_with(move |ready| {
        ready.users = std::sync::Arc::new(users);
    })
    .await;
    let connect = |token: &str| {
        async_nats::ConnectOptions::with_token(token.into()).connect(server.nats_url())
    };
    let admin = connect(ADMIN).await.expect("admin connects");
    let reader = connect(READER).await.expect("reader connects");
    let js = jetstream::new(admin.clone());
    js.create_stream(stream::Config {
        name: "DATA".into(),
        subjects: vec!["data.>".into()],
        allow_direct: true,
        ..Default::default()
    })
    .await
    .expect("stream created");
    for (subject, payload) in [
        ("data.open.1", "one"),
        ("data.secret.a", "hidden"),
        ("data.open.2", "two"),
    ] {
        js.publish(subject, payload.into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
    (server, admin, reader)
}

/// Fetches up to `max` messages there now, acking each (and waiting for
/// the server to confirm the ack).
async fn fetch_acked(
    consumer: &consumer::Consumer<consumer::pull::Config>,
    max: usize,
) -> Vec<jetstream::Message> {
    let got = crate::jetstream::fetch(consumer, max).await;
    for msg in &got {
        msg.double_ack().await.expect("acked");
    }
    got
}

/// A user who logs in with `token`.
fn token_user(
    name: &str,
    token: &str,
    publish: Option<herald_core::Rules>,
    subscribe: Option<herald_core::Rules>,
) -> UserConfig {
    UserConfig {
        name: name.into(),
        password: None,
        token: Some(token.into()),
        token_expires: None,
        publish,
        subscribe,
    }
}

async fn api(client: &async_nats::Client, call: &str, body: Value) -> Value {
    let reply = client
        .request(format!("$JS.API.{call}"), body.to_string().into())
        .await
        .expect("an answer");
    serde_json::from_slice(&reply.payload).expect("JSON answer")
}

#[tokio::test]
async fn message_gets_follow_the_subscribe_permissions() {
    let (server, admin, reader) = setup().await;
    let get = |seq: u64| json!({ "seq": seq });

    let open = api(&reader, "STREAM.MSG.GET.DATA", get(1)).await;
    assert_eq!(open["message"]["subject"], "data.open.1", "{open}");
    let secret = api(&reader, "STREAM.MSG.GET.DATA", get(2)).await;
    assert_eq!(secret["error"]["code"], 403, "{secret}");
    assert_eq!(secret["error"]["err_code"], NOT_PERMITTED, "{secret}");
    let by_subject = api(
        &reader,
        "STREAM.MSG.GET.DATA",
        json!({"last_by_subj": "data.secret.a"}),
    )
    .await;
    assert_eq!(by_subject["error"]["code"], 403, "{by_subject}");
    let unrestricted = api(&admin, "STREAM.MSG.GET.DATA", get(2)).await;
    assert_eq!(unrestricted["message"]["subject"], "data.secret.a");

    // Direct gets answer with a status instead.
    let direct = |seq: u64| {
        let reader = reader.clone();
        async move {
            reader
                .request("$JS.API.DIRECT.GET.DATA", get(seq).to_string().into())
                .await
                .expect("an answer")
        }
    };
    let open = direct(3).await;
    assert_eq!(open.payload.as_ref(), b"two");
    let secret = direct(2).await;
    assert_eq!(
        secret.status.map(|s| s.as_u16()),
        Some(403),
        "{:?}",
        secret.headers
    );
    assert!(secret.payload.is_empty());
    let by_subject = reader
        .request("$JS.API.DIRECT.GET.DATA.data.secret.a", "".into())
        .await
        .expect("an answer");
    assert_eq!(by_subject.status.map(|s| s.as_u16()), Some(403));

    // What users run: async-nats's stream API gets the same answers.
    let stream = jetstream::new(reader.clone())
        .get_stream("DATA")
        .await
        .expect("stream info");
    assert_eq!(
        stream
            .get_raw_message(3)
            .await
            .expect("readable")
            .subject
            .as_str(),
        "data.open.2"
    );
    assert!(stream.get_raw_message(2).await.is_err());
    assert!(
        stream
            .get_last_raw_message_by_subject("data.secret.a")
            .await
            .is_err()
    );
    assert!(stream.direct_get(2).await.is_err());
    assert_eq!(stream.direct_get(1).await.expect("readable").payload, "one");
    server.stop().await;
}

#[tokio::test]
async fn consumers_deliver_only_to_users_who_may_read_all_they_hold() {
    let (server, admin, reader) = setup().await;
    let js = jetstream::new(reader.clone());
    let stream = js.get_stream("DATA").await.expect("stream info");

    // The reader may not create a consumer reaching data.secret.>, pull or
    // push, with no filter or a wide one.
    for filter in ["", "data.>", "data.secret.>"] {
        let refused = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some("wide".into()),
                filter_subject: filter.into(),
                ..Default::default()
            })
            .await;
        let error = refused.expect_err("refused").to_string();
        assert!(
            error.contains("not permitted"),
            "filter {filter:?}: {error}"
        );
    }
    let push = stream
        .create_consumer(consumer::push::Config {
            deliver_subject: "deliver.reader".into(),
            ..Default::default()
        })
        .await;
    assert!(push.is_err(), "push consumer over everything refused");

    // A consumer within what it may read works as always.
    let open = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("open".into()),
            filter_subject: "data.open.>".into(),
            ..Default::default()
        })
        .await
        .expect("a readable filter is fine");
    let got: Vec<String> = fetch_acked(&open, 10)
        .await
        .iter()
        .map(|m| m.subject.to_string())
        .collect();
    assert_eq!(got, ["data.open.1", "data.open.2"]);

    // A consumer the admin made over everything: the reader's pull is
    // refused with a status; the admin's is served.
    let admins = jetstream::new(admin.clone())
        .get_stream("DATA")
        .await
        .expect("stream info");
    let all = admins
        .create_consumer(consumer::pull::Config {
            durable_name: Some("all".into()),
            ..Default::default()
        })
        .await
        .expect("the admin may");
    let next = "$JS.API.CONSUMER.MSG.NEXT.DATA.all";
    let refused = reader
        .request(
            next,
            json!({"batch": 1, "no_wait": true}).to_string().into(),
        )
        .await
        .expect("a status");
    assert_eq!(refused.status.map(|s| s.as_u16()), Some(403));
    // (A pulled message keeps its own subject, so it cannot come back as
    // the answer to a `request`, with nats-server either: an inbox of its own.)
    let inbox = admin.new_inbox();
    let mut delivered = admin.subscribe(inbox.clone()).await.expect("subscribe");
    admin
        .publish_with_reply(next, inbox, json!({"batch": 1}).to_string().into())
        .await
        .expect("pull");
    let pulled = tokio::time::timeout(WAIT, delivered.next())
        .await
        .expect("in time")
        .expect("a message");
    assert_eq!(pulled.payload.as_ref(), b"one");
    // `+NXT` on the admin's delivery asks for more: refused as a pull is.
    let ack = pulled.reply.expect("an ack subject");
    let more = reader
        .request(ack.clone(), "+NXT".into())
        .await
        .expect("a status");
    assert_eq!(more.status.map(|s| s.as_u16()), Some(403));
    let mut all = all;
    let info = all.info().await.expect("info");
    assert_eq!(info.num_ack_pending, 0, "the ack part of +NXT still counts");
    server.stop().await;
}

#[tokio::test]
async fn web_reads_of_stored_messages_follow_the_same_rule() {
    let (server, admin, _reader) = setup().await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(server.http_url(path)).bearer_auth(READER).send();

    // REST: a listing leaves the secret out, a single get is refused.
    let listing: Value = get("/v1/streams/DATA/messages")
        .await
        .expect("listing")
        .json()
        .await
        .expect("JSON");
    let subjects: Vec<&str> = listing["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["subject"].as_str())
        .collect();
    assert_eq!(subjects, ["data.open.1", "data.open.2"]);
    assert_eq!(
        get("/v1/streams/DATA/messages/1").await.unwrap().status(),
        200
    );
    let secret = get("/v1/streams/DATA/messages/2").await.unwrap();
    assert_eq!(secret.status(), 403);

    // SSE resuming from the stream: events 1 and 3, then new ones, never 2.
    let sse = get("/v1/subscribe/data.>?last_event_id=0")
        .await
        .expect("SSE");
    assert_eq!(sse.status(), 200);
    let mut body = sse.bytes_stream();
    let js = jetstream::new(admin.clone());
    for subject in ["data.secret.b", "data.open.3"] {
        js.publish(subject, "later".into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
    let mut text = String::new();
    let mut ids = Vec::new();
    while ids.len() < 3 {
        let chunk = tokio::time::timeout(WAIT, body.next())
            .await
            .expect("events in time")
            .expect("open")
            .expect("ok");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            ids.extend(
                block
                    .lines()
                    .filter_map(|l| l.strip_prefix("id:"))
                    .map(|id| id.trim().to_owned()),
            );
        }
    }
    assert_eq!(ids, ["1", "3", "5"]);

    // herald's WebSocket: a JetStream API request published from it is the
    // reader's request.
    let url = format!("ws://{}/v1/ws?access_token={READER}", server.http);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    let mut send = async |op: Value| {
        ws.send(WsMessage::Text(op.to_string().into()))
            .await
            .expect("send");
    };
    send(json!({"op": "subscribe", "sid": "r", "subject": "_INBOX.ws.>"})).await;
    send(
        json!({"op": "publish", "subject": "$JS.API.STREAM.MSG.GET.DATA",
                "reply": "_INBOX.ws.1", "payload": json!({"seq": 2}).to_string()}),
    )
    .await;
    let answer = loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("ok");
        let WsMessage::Text(text) = frame else {
            continue;
        };
        let op: Value = serde_json::from_str(&text).expect("JSON");
        if op["op"] == "message" {
            break op;
        }
    };
    let reply: Value =
        serde_json::from_str(answer["payload"].as_str().expect("text payload")).expect("JSON");
    assert_eq!(reply["error"]["err_code"], NOT_PERMITTED, "{reply}");
    server.stop().await;
}

/// The recipes of SECURITY.md, as written there: a reader of one stream
/// granted only the calls it needs, with an inbox prefix of its own, works
/// end to end with async-nats (consumer, fetch, ack, gets); another user's
/// `>` sees none of its replies, and he may not subscribe to its inboxes,
/// nor to everyone's.
#[tokio::test]
async fn the_documented_reader_grant_and_private_inboxes_work() {
    let users = Users::from_config(&[
        token_user("admin", ADMIN, None, None),
        token_user(
            "reader",
            READER,
            rules(
                &[
                    "$JS.API.STREAM.INFO.ORDERS",
                    "$JS.API.CONSUMER.*.ORDERS.>",
                    "$JS.API.CONSUMER.MSG.NEXT.ORDERS.>",
                    "$JS.API.STREAM.MSG.GET.ORDERS",
                    "$JS.API.DIRECT.GET.ORDERS",
                    "$JS.API.DIRECT.GET.ORDERS.>",
                    "$JS.ACK.ORDERS.>",
                ],
                &[],
            ),
            rules(&["orders.>", "_INBOX_reader.>"], &[]),
        ),
        UserConfig {
            name: "bob".into(),
            password: None,
            token: Some("bob-token-0123456789abcdef".into()),
            token_expires: None,
            publish: rules(&["orders.>"], &[]),
            subscribe: rules(&["orders.>", "_INBOX_bob.>"], &[]),
        },
    ])
    .expect("valid users");
    let server = TestServer::start_with(move |ready| {
        ready.users = std::sync::Arc::new(users);
    })
    .await;
    let admin = async_nats::ConnectOptions::with_token(ADMIN.into())
        .connect(server.nats_url())
        .await
        .expect("admin");
    let js = jetstream::new(admin.clone());
    js.create_stream(stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        allow_direct: true,
        ..Default::default()
    })
    .await
    .expect("stream");
    for i in 1..=3 {
        js.publish(format!("orders.{i}"), format!("order {i}").into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }

    // Bob listens to everything he may (`>` is allowed; each delivery is
    // checked) while the reader works.
    let bob = async_nats::ConnectOptions::with_token("bob-token-0123456789abcdef".into())
        .custom_inbox_prefix("_INBOX_bob")
        .connect(server.nats_url())
        .await
        .expect("bob");
    let mut everything = bob.subscribe(">").await.expect("subscribe >");
    bob.flush().await.expect("flush");

    let reader = async_nats::ConnectOptions::with_token(READER.into())
        .custom_inbox_prefix("_INBOX_reader")
        .connect(server.nats_url())
        .await
        .expect("reader");
    let stream = jetstream::new(reader.clone())
        .get_stream("ORDERS")
        .await
        .expect("stream info with the narrow grant");
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("reader".into()),
            ..Default::default()
        })
        .await
        .expect("a consumer over what it may read");
    let got: Vec<String> = fetch_acked(&consumer, 3)
        .await
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert_eq!(got, ["order 1", "order 2", "order 3"]);
    assert_eq!(
        stream
            .get_raw_message(2)
            .await
            .expect("get")
            .subject
            .as_str(),
        "orders.2"
    );
    assert_eq!(
        stream.direct_get(3).await.expect("direct").payload,
        "order 3"
    );

    // Bob's `>` saw none of it: only the orders he may read.
    bob.publish("orders.marker", "".into())
        .await
        .expect("marker");
    let mut seen = Vec::new();
    loop {
        let msg = tokio::time::timeout(WAIT, everything.next())
            .await
            .expect("in time")
            .expect("a message");
        if msg.subject.as_str() == "orders.marker" {
            break;
        }
        seen.push(msg.subject.to_string());
    }
    assert!(seen.iter().all(|s| s.starts_with("orders.")), "{seen:?}");
    // And he may not listen on the reader's inboxes, nor on everyone's.
    let mut raw = bob_errors(&server).await;
    for pattern in ["_INBOX_reader.>", "_INBOX.>"] {
        raw.subscribe(pattern).await;
    }
    server.stop().await;
}

/// A raw NATS connection as bob, to see the exact refusals.
async fn bob_errors(server: &TestServer) -> RawBob {
    let mut raw = crate::common::raw::RawClient::connect(server.nats).await;
    raw.send(
        "CONNECT {\"auth_token\":\"bob-token-0123456789abcdef\",\"verbose\":false}\r\nPING\r\n",
    )
    .await;
    let mut bob = RawBob(raw);
    bob.line_containing("PONG").await;
    bob
}

struct RawBob(crate::common::raw::RawClient);

impl RawBob {
    async fn line_containing(&mut self, needle: &str) -> String {
        loop {
            let line = self.0.line().await;
            if line.contains(needle) {
                return line;
            }
        }
    }

    async fn subscribe(&mut self, pattern: &str) {
        self.0.send(format!("SUB {pattern} 1\r\nPING\r\n")).await;
        let line = self.line_containing("ERR").await;
        assert!(
            line.contains("Permissions Violation for Subscription"),
            "{pattern}: {line}"
        );
        self.line_containing("PONG").await;
    }
}

/// The server's own publishes speak for no one: an MQTT Will that is a
/// JetStream request is its user's request, a retained MQTT message is
/// read as its own subject, and a consumer may not deliver into the
/// JetStream API (where its deliveries would be requests from nobody).
#[tokio::test]
async fn wills_retained_messages_and_deliveries_speak_for_their_user() {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{LastWill, LastWillProperties, Packet};
    use rumqttc::v5::{AsyncClient, MqttOptions};

    use crate::common::mqtt_pump::Pump;

    let (server, admin, reader) = setup().await;
    let mqtt_options = |id: &str, token: &str| {
        let mut options = MqttOptions::new(id, "127.0.0.1", server.mqtt.port());
        options.set_keep_alive(Duration::from_secs(30));
        options.set_credentials(id, token);
        options
    };

    // A Will asking for the secret message, answered on a subject the
    // reader may read: the answer is the refusal.
    let mut answers = reader.subscribe("replies.will").await.expect("subscribe");
    reader.flush().await.expect("flush");
    let mut options = mqtt_options("reader", READER);
    options.set_last_will(LastWill::new(
        "$JS/API/STREAM/MSG/GET/DATA",
        json!({"seq": 2}).to_string(),
        QoS::AtMostOnce,
        false,
        Some(LastWillProperties {
            delay_interval: None,
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: None,
            response_topic: Some("replies/will".into()),
            correlation_data: None,
            user_properties: Vec::new(),
        }),
    ));
    let (_client, eventloop) = AsyncClient::new(options, 16);
    let (pump, connack) = Pump::start(eventloop).await.expect("connects");
    assert!(matches!(connack, Packet::ConnAck(_)), "{connack:?}");
    pump.kill();
    let answer = tokio::time::timeout(WAIT, answers.next())
        .await
        .expect("the Will's answer in time")
        .expect("an answer");
    let answer: Value = serde_json::from_slice(&answer.payload).expect("JSON");
    assert_eq!(answer["error"]["err_code"], NOT_PERMITTED, "{answer}");

    // A retained secret, stored as $MQTT.retained.data.secret.r: read as
    // data.secret.r.
    let (client, eventloop) = AsyncClient::new(mqtt_options("admin", ADMIN), 16);
    let (mut pump, _) = Pump::start(eventloop).await.expect("admin connects");
    client
        .publish("data/secret/r", QoS::AtLeastOnce, true, "retained secret")
        .await
        .expect("queued");
    pump.wait(|p| matches!(p, Packet::PubAck(_))).await;
    client
        .publish("data/open/r", QoS::AtLeastOnce, true, "retained open")
        .await
        .expect("queued");
    pump.wait(|p| matches!(p, Packet::PubAck(_))).await;
    let get = |subject: &str| json!({ "last_by_subj": subject });
    let open = api(
        &reader,
        "STREAM.MSG.GET.MQTT_RETAINED",
        get("$MQTT.retained.data.open.r"),
    )
    .await;
    assert_eq!(open["message"]["subject"], "$MQTT.retained.data.open.r");
    let secret = api(
        &reader,
        "STREAM.MSG.GET.MQTT_RETAINED",
        get("$MQTT.retained.data.secret.r"),
    )
    .await;
    assert_eq!(secret["error"]["err_code"], NOT_PERMITTED, "{secret}");
    let wide = api(
        &reader,
        "CONSUMER.CREATE.MQTT_RETAINED",
        json!({"stream_name": "MQTT_RETAINED", "config": {"ack_policy": "explicit"}}),
    )
    .await;
    assert_eq!(wide["error"]["err_code"], NOT_PERMITTED, "{wide}");

    // Deliveries into the JetStream API are refused at creation.
    let into_api = api(
        &admin,
        "CONSUMER.CREATE.DATA",
        json!({"stream_name": "DATA", "config": {
            "deliver_subject": "$JS.API.CONSUMER.MSG.NEXT.DATA.other"}}),
    )
    .await;
    assert_eq!(into_api["error"]["code"], 400, "{into_api}");

    // A consumer its creator made without a filter keeps the subjects it
    // was checked against, whatever the stream captures later.
    let js = jetstream::new(admin.clone());
    js.create_stream(stream::Config {
        name: "OPEN".into(),
        subjects: vec!["open.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    let created = api(
        &reader,
        "CONSUMER.CREATE.OPEN",
        json!({"stream_name": "OPEN", "config": {"deliver_subject": "deliver.open"}}),
    )
    .await;
    assert_eq!(created["config"]["filter_subject"], "open.>", "{created}");
    client.disconnect().await.expect("queued");
    server.stop().await;
}
