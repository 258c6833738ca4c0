//! herald with a real MQTT client, rumqttc, in 3.1.1 and 5.0: every QoS, retained
//! messages, Wills, persistent sessions (across a restart too), shared subscriptions, MQTT
//! 5 reason codes and options, permissions, and messages crossing to and from NATS and
//! Redis.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rumqttc::{AsyncClient, MqttOptions, Packet, QoS};

use crate::common::mqtt_pump::Pump;
use crate::common::raw::PATIENCE;
use crate::common::{TestServer, sync};

/// An rumqttc 3.1.1 client whose event loop runs on its own task.
struct V3 {
    client: AsyncClient,
    pump: Pump<Packet>,
}

fn v3_options(server: &TestServer, id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(id, "127.0.0.1", server.mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    options
}

impl V3 {
    /// Connects; returns the client and its `CONNACK`, or the error that ended it.
    async fn start(options: MqttOptions) -> Result<(Self, rumqttc::ConnAck), String> {
        let (client, eventloop) = AsyncClient::new(options, 64);
        match Pump::start(eventloop).await? {
            (pump, Packet::ConnAck(connack)) => Ok((Self { client, pump }, connack)),
            (_, other) => panic!("expected CONNACK, got {other:?}"),
        }
    }

    async fn connect(server: &TestServer, id: &str) -> Self {
        Self::start(v3_options(server, id))
            .await
            .expect("connects")
            .0
    }

    /// The next incoming packet matching `wanted`; others are kept for later waits.
    async fn wait(&mut self, wanted: impl Fn(&Packet) -> bool) -> Packet {
        self.pump.wait(wanted).await
    }

    async fn message(&mut self) -> rumqttc::Publish {
        match self.wait(|p| matches!(p, Packet::Publish(_))).await {
            Packet::Publish(publish) => publish,
            _ => unreachable!("filtered"),
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) -> rumqttc::SubAck {
        self.client.subscribe(filter, qos).await.expect("queued");
        match self.wait(|p| matches!(p, Packet::SubAck(_))).await {
            Packet::SubAck(suback) => suback,
            _ => unreachable!("filtered"),
        }
    }

    /// Publishes and waits for the flow to complete (PUBACK / PUBCOMP) at QoS 1 and 2.
    async fn publish(&mut self, topic: &str, qos: QoS, retain: bool, payload: &str) {
        self.client
            .publish(topic, qos, retain, payload.as_bytes().to_vec())
            .await
            .expect("queued");
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                self.wait(|p| matches!(p, Packet::PubAck(_))).await;
            }
            QoS::ExactlyOnce => {
                self.wait(|p| matches!(p, Packet::PubComp(_))).await;
            }
        }
    }

    /// A round trip: everything sent before has been handled by the server.
    async fn ping(&mut self) {
        self.subscribe("herald-test/ping", QoS::AtMostOnce).await;
    }

    /// Sends DISCONNECT and waits for the connection to end.
    async fn disconnect(mut self) {
        self.client.disconnect().await.expect("queued");
        self.pump.drain().await;
    }

    /// Drops the connection without DISCONNECT, as a crashed client would.
    fn kill(self) {
        self.pump.kill();
    }
}

fn text(payload: &Bytes) -> &str {
    std::str::from_utf8(payload).expect("UTF-8 payload")
}

#[tokio::test]
async fn every_qos_end_to_end() {
    let server = TestServer::start().await;
    let mut sub = V3::connect(&server, "sub").await;
    let suback = sub.subscribe("sensors/+/temp", QoS::ExactlyOnce).await;
    assert_eq!(
        suback.return_codes,
        vec![rumqttc::SubscribeReasonCode::Success(QoS::ExactlyOnce)]
    );
    let mut publisher = V3::connect(&server, "pub").await;
    for (qos, payload) in [
        (QoS::AtMostOnce, "q0"),
        (QoS::AtLeastOnce, "q1"),
        (QoS::ExactlyOnce, "q2"),
    ] {
        publisher
            .publish("sensors/kitchen/temp", qos, false, payload)
            .await;
        let got = sub.message().await;
        assert_eq!(got.topic, "sensors/kitchen/temp");
        assert_eq!(text(&got.payload), payload);
        assert_eq!(got.qos, qos);
        assert!(!got.retain && !got.dup);
    }
    server.stop().await;
}

#[tokio::test]
async fn delivered_qos_is_the_lower_of_publish_and_subscription() {
    let server = TestServer::start().await;
    let mut low = V3::connect(&server, "low").await;
    low.subscribe("q/#", QoS::AtLeastOnce).await;
    let mut zero = V3::connect(&server, "zero").await;
    zero.subscribe("q/#", QoS::AtMostOnce).await;
    let mut publisher = V3::connect(&server, "pub").await;
    publisher
        .publish("q/x", QoS::ExactlyOnce, false, "two")
        .await;
    assert_eq!(low.message().await.qos, QoS::AtLeastOnce);
    assert_eq!(zero.message().await.qos, QoS::AtMostOnce);
    publisher
        .publish("q/y", QoS::AtMostOnce, false, "zero")
        .await;
    assert_eq!(low.message().await.qos, QoS::AtMostOnce);
    server.stop().await;
}

#[tokio::test]
async fn retained_messages_are_kept_replaced_and_cleared() {
    let server = TestServer::start().await;
    let mut publisher = V3::connect(&server, "pub").await;
    publisher
        .publish("home/door", QoS::AtLeastOnce, true, "closed")
        .await;
    publisher
        .publish("home/door", QoS::AtLeastOnce, true, "open")
        .await;
    publisher
        .publish("home/light", QoS::AtMostOnce, true, "on")
        .await;
    publisher.ping().await;

    let mut sub = V3::connect(&server, "sub").await;
    sub.client
        .subscribe("home/#", QoS::AtLeastOnce)
        .await
        .expect("queued");
    let mut retained = BTreeSet::new();
    for _ in 0..2 {
        let got = sub.message().await;
        assert!(got.retain, "sent on subscribe with RETAIN set");
        retained.insert((
            got.topic.clone(),
            text(&got.payload).to_owned(),
            got.qos as u8,
        ));
    }
    assert_eq!(
        retained,
        BTreeSet::from([
            ("home/door".into(), "open".into(), 1),
            ("home/light".into(), "on".into(), 0),
        ])
    );
    // Live messages to an existing subscription have RETAIN cleared.
    publisher
        .publish("home/door", QoS::AtLeastOnce, true, "closed")
        .await;
    let live = sub.message().await;
    assert!(!live.retain);

    // An empty retained message clears the topic (and is delivered as it is).
    publisher
        .publish("home/door", QoS::AtLeastOnce, true, "")
        .await;
    assert!(sub.message().await.payload.is_empty());
    let mut late = V3::connect(&server, "late").await;
    late.subscribe("home/#", QoS::AtLeastOnce).await;
    let got = late.message().await;
    assert_eq!(
        (got.topic.as_str(), text(&got.payload)),
        ("home/light", "on")
    );
    publisher
        .publish("home/marker", QoS::AtMostOnce, false, "end")
        .await;
    assert_eq!(
        text(&late.message().await.payload),
        "end",
        "home/door is gone"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_will_goes_out_on_abrupt_disconnect_only() {
    let server = TestServer::start().await;
    let mut watcher = V3::connect(&server, "watcher").await;
    watcher
        .subscribe("devices/+/status", QoS::AtLeastOnce)
        .await;

    let with_will = |id: &str| {
        let mut options = v3_options(&server, id);
        options.set_last_will(rumqttc::LastWill::new(
            format!("devices/{id}/status"),
            "offline",
            QoS::AtLeastOnce,
            false,
        ));
        options
    };
    let (polite, _) = V3::start(with_will("polite")).await.expect("connects");
    polite.disconnect().await;
    let (crashing, _) = V3::start(with_will("crashing")).await.expect("connects");
    crashing.kill();
    let will = watcher.message().await;
    assert_eq!(will.topic, "devices/crashing/status");
    assert_eq!(text(&will.payload), "offline");
    assert_eq!(will.qos, QoS::AtLeastOnce);
    server.stop().await;
}

#[tokio::test]
async fn a_persistent_session_gets_the_qos1_messages_it_missed() {
    let server = TestServer::start().await;
    let durable = |server: &TestServer| {
        let mut options = v3_options(server, "durable");
        options.set_clean_session(false);
        options
    };
    let (mut sub, connack) = V3::start(durable(&server)).await.expect("connects");
    assert!(!connack.session_present);
    sub.subscribe("orders/#", QoS::AtLeastOnce).await;
    sub.disconnect().await;

    let mut publisher = V3::connect(&server, "pub").await;
    for i in 0..5 {
        publisher
            .publish(
                &format!("orders/{i}"),
                QoS::AtLeastOnce,
                false,
                &i.to_string(),
            )
            .await;
    }
    publisher
        .publish("orders/x", QoS::AtMostOnce, false, "qos0")
        .await;

    let (mut sub, connack) = V3::start(durable(&server)).await.expect("reconnects");
    assert!(connack.session_present);
    for i in 0..5 {
        let got = sub.message().await;
        assert_eq!(got.topic, format!("orders/{i}"), "in order");
        assert_eq!(got.qos, QoS::AtLeastOnce);
    }
    // QoS 0 messages are not kept for an absent client; the subscription still works.
    publisher
        .publish("orders/live", QoS::AtMostOnce, false, "live")
        .await;
    assert_eq!(sub.message().await.topic, "orders/live");

    // A clean session discards it.
    sub.disconnect().await;
    let mut clean = v3_options(&server, "durable");
    clean.set_clean_session(true);
    let (_sub, connack) = V3::start(clean).await.expect("connects");
    assert!(!connack.session_present);
    server.stop().await;
}

#[tokio::test]
async fn sessions_and_retained_messages_survive_a_restart() {
    let server = TestServer::start().await;
    let durable = |server: &TestServer| {
        let mut options = v3_options(server, "keeper");
        options.set_clean_session(false);
        options
    };
    let (mut sub, _) = V3::start(durable(&server)).await.expect("connects");
    sub.subscribe("plant/#", QoS::ExactlyOnce).await;
    sub.disconnect().await;
    let mut publisher = V3::connect(&server, "pub").await;
    publisher
        .publish("plant/before", QoS::AtLeastOnce, false, "before")
        .await;
    publisher
        .publish("plant/config", QoS::AtLeastOnce, true, "v1")
        .await;
    drop(publisher);

    let server = server.restart().await;
    // The restored subscription collects messages before its client is back.
    let mut publisher = V3::connect(&server, "pub").await;
    publisher
        .publish("plant/after", QoS::ExactlyOnce, false, "after")
        .await;
    let nats = server.client().await;
    nats.publish("plant.from-nats", "nats".into())
        .await
        .expect("publish");
    sync(&nats).await;

    let (mut sub, connack) = V3::start(durable(&server)).await.expect("reconnects");
    assert!(connack.session_present, "the session came back from disk");
    assert_eq!(sub.message().await.topic, "plant/before");
    assert_eq!(sub.message().await.topic, "plant/config");
    let after = sub.message().await;
    assert_eq!(
        (after.topic.as_str(), after.qos),
        ("plant/after", QoS::ExactlyOnce)
    );
    // The NATS message was QoS 0: not kept for the absent client.
    let mut fresh = V3::connect(&server, "fresh").await;
    fresh.subscribe("plant/config", QoS::AtLeastOnce).await;
    let retained = fresh.message().await;
    assert!(retained.retain);
    assert_eq!(text(&retained.payload), "v1");
    server.stop().await;
}

#[tokio::test]
async fn shared_subscriptions_spread_messages_over_their_members() {
    let server = TestServer::start().await;
    let mut members = Vec::new();
    for id in ["worker-1", "worker-2", "worker-3"] {
        let mut member = V3::connect(&server, id).await;
        member
            .subscribe("$share/workers/jobs/#", QoS::AtLeastOnce)
            .await;
        members.push(member);
    }
    let mut plain = V3::connect(&server, "auditor").await;
    plain.subscribe("jobs/#", QoS::AtMostOnce).await;
    let mut publisher = V3::connect(&server, "pub").await;
    const JOBS: usize = 30;
    for i in 0..JOBS {
        publisher
            .publish(&format!("jobs/{i}"), QoS::AtLeastOnce, false, "job")
            .await;
    }
    // Every job to exactly one worker, and to the plain subscriber as well.
    let mut seen = BTreeSet::new();
    let mut per_member = vec![0; members.len()];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while seen.len() < JOBS {
        assert!(tokio::time::Instant::now() < deadline, "only {seen:?}");
        for (i, member) in members.iter_mut().enumerate() {
            while let Ok(event) = member.pump.events.try_recv() {
                if let Ok(Packet::Publish(p)) = event {
                    assert!(seen.insert(p.topic.clone()), "{} twice", p.topic);
                    per_member[i] += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.len(), JOBS, "{per_member:?}");
    assert!(
        per_member.iter().filter(|&&n| n > 0).count() >= 2,
        "spread over several members: {per_member:?}"
    );
    for _ in 0..JOBS {
        plain.message().await;
    }
    server.stop().await;
}

#[tokio::test]
async fn mqtt_to_nats_and_back() {
    let server = TestServer::start().await;
    let nats = server.client().await;
    let mut from_mqtt = nats.subscribe("sensors.kitchen.>").await.expect("sub");
    sync(&nats).await;
    let mut mqtt = V3::connect(&server, "bridge").await;
    mqtt.subscribe("alerts/#", QoS::AtLeastOnce).await;

    mqtt.publish("sensors/kitchen/temp", QoS::AtLeastOnce, false, "21.5")
        .await;
    let msg = tokio::time::timeout(PATIENCE, from_mqtt.next())
        .await
        .expect("in time")
        .expect("a message");
    assert_eq!(msg.subject.as_str(), "sensors.kitchen.temp");
    assert_eq!(msg.payload, "21.5");
    assert!(msg.headers.is_none(), "no MQTT plumbing in NATS headers");

    // A `.` inside a level travels escaped and comes back as it was.
    mqtt.publish("sensors/kitchen/v1.2", QoS::AtMostOnce, false, "dot")
        .await;
    let msg = tokio::time::timeout(PATIENCE, from_mqtt.next())
        .await
        .expect("in time")
        .expect("a message");
    assert_eq!(msg.subject.as_str(), "sensors.kitchen.v1//2");

    nats.publish("alerts.fire.floor2", "evacuate".into())
        .await
        .expect("publish");
    let got = mqtt.message().await;
    assert_eq!(got.topic, "alerts/fire/floor2");
    assert_eq!(text(&got.payload), "evacuate");
    assert_eq!(got.qos, QoS::AtMostOnce, "NATS messages are QoS 0");
    server.stop().await;
}

#[tokio::test]
async fn redis_publishes_reach_mqtt_subscribers() {
    let server = TestServer::start().await;
    let mut mqtt = V3::connect(&server, "redis-fan").await;
    mqtt.subscribe("chat/+", QoS::AtLeastOnce).await;
    let redis = redis::Client::open(server.redis_url()).expect("url");
    let mut con = redis
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg("chat.lobby")
        .arg("hello from redis")
        .query_async(&mut con)
        .await
        .expect("publish");
    assert_eq!(receivers, 1, "the MQTT subscriber counts");
    let got = mqtt.message().await;
    assert_eq!(got.topic, "chat/lobby");
    assert_eq!(text(&got.payload), "hello from redis");
    server.stop().await;
}

#[tokio::test]
async fn credentials_and_permissions() {
    use herald_core::Pattern;
    use herald_server::auth::{UserConfig, Users, hash_password};
    let rules = |allow: &[&str]| {
        Some(herald_core::Rules {
            allow: allow
                .iter()
                .map(|p| Pattern::new(p).expect("pattern"))
                .collect(),
            deny: Vec::new(),
        })
    };
    let users = Users::from_config(&[
        UserConfig {
            name: "meter".into(),
            password: Some(hash_password("meter-pw").expect("hash")),
            token: None,
            token_expires: None,
            publish: rules(&["meters.>"]),
            subscribe: rules(&["commands.>"]),
        },
        UserConfig {
            name: "spy".into(),
            password: None,
            token: Some("spy-token-0123456789".into()),
            token_expires: None,
            publish: None,
            subscribe: None,
        },
    ])
    .expect("users");
    let server =
        TestServer::start_with(move |ready| ready.users = std::sync::Arc::new(users)).await;

    let mut wrong = v3_options(&server, "m1");
    wrong.set_credentials("meter", "nope");
    let error = V3::start(wrong).await.err().expect("refused");
    assert!(error.contains("BadUserNamePassword"), "{error}");
    let error = V3::start(v3_options(&server, "m1"))
        .await
        .err()
        .expect("refused");
    assert!(error.contains("NotAuthorized"), "{error}");

    let mut right = v3_options(&server, "m1");
    right.set_credentials("meter", "meter-pw");
    let (mut meter, _) = V3::start(right).await.expect("accepted");
    let suback = meter.subscribe("secrets/#", QoS::AtLeastOnce).await;
    assert_eq!(
        suback.return_codes,
        vec![rumqttc::SubscribeReasonCode::Failure]
    );
    let suback = meter.subscribe("commands/m1", QoS::AtLeastOnce).await;
    assert_eq!(
        suback.return_codes,
        vec![rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    // 3.1.1 has no negative PUBACK: a forbidden publish is acknowledged and dropped.
    let nats = async_nats::ConnectOptions::with_token("spy-token-0123456789".into())
        .connect(server.nats_url())
        .await
        .expect("spy connects");
    let secrets = nats.subscribe("secrets.>").await.expect("sub");
    let meters = nats.subscribe("meters.>").await.expect("sub");
    let mut spy = futures::stream::select(secrets, meters);
    sync(&nats).await;
    meter
        .publish("secrets/x", QoS::AtLeastOnce, false, "no")
        .await;
    meter
        .publish("meters/m1", QoS::AtLeastOnce, false, "42")
        .await;
    let msg = tokio::time::timeout(PATIENCE, async {
        loop {
            let msg = spy.next().await.expect("a message");
            if msg.subject.starts_with("meters") || msg.subject.starts_with("secrets") {
                return msg;
            }
        }
    })
    .await
    .expect("in time");
    assert_eq!(
        msg.subject.as_str(),
        "meters.m1",
        "the forbidden one never went out"
    );
    server.stop().await;
}

#[tokio::test]
async fn session_files_follow_their_sessions() {
    let server = TestServer::start().await;
    let dir = server.data_dir().join("mqtt").join("sessions");
    let files = || std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    let mut options = v3_options(&server, "filed");
    options.set_clean_session(false);
    let (mut sub, _) = V3::start(options).await.expect("connects");
    sub.subscribe("f/#", QoS::AtLeastOnce).await;
    wait_until("a session file is written", || files() == 1).await;
    sub.disconnect().await;
    let mut clean = v3_options(&server, "filed");
    clean.set_clean_session(true);
    let (sub, _) = V3::start(clean).await.expect("connects");
    wait_until("the file goes with the session", || files() == 0).await;
    sub.disconnect().await;
    server.stop().await;
}

/// Polls `done` until it holds, failing after [`PATIENCE`].
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_offline_queue_drains_through_the_window_and_is_bounded() {
    let server = TestServer::start_with(|ready| {
        ready.mqtt_config.max_inflight = 4;
        ready.mqtt_config.max_queued = 50;
    })
    .await;
    let durable = |server: &TestServer| {
        let mut options = v3_options(server, "backlog");
        options.set_clean_session(false);
        options
    };
    let (mut sub, _) = V3::start(durable(&server)).await.expect("connects");
    sub.subscribe("backlog/#", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publisher = V3::connect(&server, "pub").await;
    // More than the queue holds: the newest beyond it are dropped.
    for i in 0..60 {
        publisher
            .publish(&format!("backlog/{i}"), QoS::AtLeastOnce, false, "m")
            .await;
    }
    let (mut sub, connack) = V3::start(durable(&server)).await.expect("reconnects");
    assert!(connack.session_present);
    // Four in flight at a time, refilled as the client acks, in order.
    for i in 0..50 {
        assert_eq!(sub.message().await.topic, format!("backlog/{i}"));
    }
    publisher
        .publish("backlog/after", QoS::AtLeastOnce, false, "m")
        .await;
    assert_eq!(
        sub.message().await.topic,
        "backlog/after",
        "the ten beyond the queue were dropped"
    );
    server.stop().await;
}

fn websocket_options(server: &TestServer, id: &str) -> MqttOptions {
    // rumqttc takes the URL as the host when the transport is a WebSocket.
    let mut options = MqttOptions::new(id, format!("ws://{}/mqtt", server.http), 0);
    options.set_transport(rumqttc::Transport::Ws);
    options.set_keep_alive(Duration::from_secs(30));
    options
}

/// MQTT over WebSocket at `/mqtt` (subprotocol `mqtt`, binary frames) is
/// MQTT: every QoS both ways, a persistent session resumed over a new
/// socket, messages crossing to NATS.
#[tokio::test]
async fn mqtt_over_websocket_is_the_mqtt_listener() {
    let server = TestServer::start().await;
    let nats = async_nats::connect(server.nats.to_string())
        .await
        .expect("nats");
    let mut from_ws = nats.subscribe("ws.up.>").await.expect("subscribe");
    sync(&nats).await;

    let mut options = websocket_options(&server, "over-ws");
    options.set_clean_session(false);
    let (mut ws, connack) = V3::start(options).await.expect("connects over ws");
    assert!(!connack.session_present);
    ws.subscribe("ws/down/#", QoS::ExactlyOnce).await;
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        ws.publish(&format!("ws/up/{i}"), qos, false, &format!("up {i}"))
            .await;
        let msg = tokio::time::timeout(PATIENCE, from_ws.next())
            .await
            .expect("in time")
            .expect("a message");
        assert_eq!(msg.subject.as_str(), format!("ws.up.{i}"));
        assert_eq!(msg.payload.as_ref(), format!("up {i}").as_bytes());
    }
    nats.publish("ws.down.1", "down".into()).await.expect("pub");
    let got = ws.message().await;
    assert_eq!(got.topic, "ws/down/1");
    assert_eq!(got.payload.as_ref(), b"down");
    ws.disconnect().await;

    // The session outlives the socket: a QoS 1 message published while it
    // was away arrives over the next one.
    let mut qos1 = rumqttc::MqttOptions::new("publisher", "127.0.0.1", server.mqtt.port());
    qos1.set_keep_alive(Duration::from_secs(30));
    let mut publisher = V3::start(qos1).await.expect("tcp publisher").0;
    publisher
        .publish("ws/down/2", QoS::AtLeastOnce, false, "while away")
        .await;
    let mut options = websocket_options(&server, "over-ws");
    options.set_clean_session(false);
    let (mut ws, connack) = V3::start(options).await.expect("reconnects over ws");
    assert!(connack.session_present);
    let got = ws.message().await;
    assert_eq!(got.payload.as_ref(), b"while away");
    ws.disconnect().await;
    publisher.disconnect().await;
    server.stop().await;
}

/// An MQTT-over-WebSocket client is one connection from its own address:
/// with one connection allowed per address, the web connection it upgraded
/// is that one (no second, loopback connection behind it).
#[tokio::test]
async fn mqtt_over_websocket_is_one_connection_from_the_clients_address() {
    let server = TestServer::start_with(|ready| ready.limits.max_connections_per_ip = 1).await;
    let mut ws = V3::start(websocket_options(&server, "only-one"))
        .await
        .expect("connects over ws")
        .0;
    ws.subscribe("self/#", QoS::AtLeastOnce).await;
    ws.publish("self/1", QoS::AtLeastOnce, false, "to myself")
        .await;
    assert_eq!(ws.message().await.payload.as_ref(), b"to myself");
    ws.disconnect().await;
    server.stop().await;
}
