//! MQTT 5 with rumqttc: reason codes in acks and `CONNACK`, subscription options (No
//! Local, Subscription Identifiers), properties carried end to end, Will delay, session
//! expiry, and MQTT 5 request/response meeting NATS request/reply.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, Filter, LastWill, LastWillProperties, Packet, PubAckReason, PublishProperties,
    SubscribeProperties, SubscribeReasonCode, UnsubAckReason,
};
use rumqttc::v5::{AsyncClient, MqttOptions};

use crate::common::mqtt_pump::Pump;
use crate::common::raw::PATIENCE;
use crate::common::{TestServer, sync};

/// An rumqttc MQTT 5 client whose event loop runs on its own task.
struct V5 {
    client: AsyncClient,
    pump: Pump<Packet>,
}

fn options(server: &TestServer, id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(id, "127.0.0.1", server.mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    options
}

impl V5 {
    async fn start(options: MqttOptions) -> Result<(Self, ConnAck), String> {
        let (client, eventloop) = AsyncClient::new(options, 64);
        match Pump::start(eventloop).await? {
            (pump, Packet::ConnAck(connack)) => Ok((Self { client, pump }, connack)),
            (_, other) => panic!("expected CONNACK, got {other:?}"),
        }
    }

    async fn connect(server: &TestServer, id: &str) -> Self {
        Self::start(options(server, id)).await.expect("connects").0
    }

    /// The next incoming packet matching `wanted`; others are kept for later waits.
    async fn wait(&mut self, wanted: impl Fn(&Packet) -> bool) -> Packet {
        self.pump.wait(wanted).await
    }

    async fn message(&mut self) -> rumqttc::v5::mqttbytes::v5::Publish {
        match self.wait(|p| matches!(p, Packet::Publish(_))).await {
            Packet::Publish(publish) => publish,
            _ => unreachable!("filtered"),
        }
    }

    async fn suback(&mut self) -> Vec<SubscribeReasonCode> {
        match self.wait(|p| matches!(p, Packet::SubAck(_))).await {
            Packet::SubAck(suback) => suback.return_codes,
            _ => unreachable!("filtered"),
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) -> Vec<SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.expect("queued");
        self.suback().await
    }

    async fn puback(&mut self) -> PubAckReason {
        match self.wait(|p| matches!(p, Packet::PubAck(_))).await {
            Packet::PubAck(puback) => puback.reason,
            _ => unreachable!("filtered"),
        }
    }

    async fn disconnect(mut self) {
        self.client.disconnect().await.expect("queued");
        self.pump.drain().await;
    }

    fn kill(self) {
        self.pump.kill();
    }
}

fn text(payload: &Bytes) -> &str {
    std::str::from_utf8(payload).expect("UTF-8 payload")
}

#[tokio::test]
async fn reason_codes_in_acknowledgements() {
    let server = TestServer::start().await;
    let mut client = V5::connect(&server, "rc").await;
    client
        .client
        .publish("nobody/here", QoS::AtLeastOnce, false, "x")
        .await
        .expect("queued");
    assert_eq!(client.puback().await, PubAckReason::NoMatchingSubscribers);

    assert_eq!(
        client.subscribe("rc/+", QoS::AtLeastOnce).await,
        vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    client
        .client
        .publish("rc/a", QoS::AtLeastOnce, false, "x")
        .await
        .expect("queued");
    assert_eq!(client.puback().await, PubAckReason::Success);

    // A payload that says it is UTF-8 but is not.
    let props = PublishProperties {
        payload_format_indicator: Some(1),
        ..PublishProperties::default()
    };
    client
        .client
        .publish_with_properties("rc/a", QoS::AtLeastOnce, false, vec![0xff, 0xfe], props)
        .await
        .expect("queued");
    assert_eq!(client.puback().await, PubAckReason::PayloadFormatInvalid);

    client
        .client
        .unsubscribe("never/subscribed")
        .await
        .expect("queued");
    match client.wait(|p| matches!(p, Packet::UnsubAck(_))).await {
        Packet::UnsubAck(unsuback) => {
            assert_eq!(
                unsuback.reasons,
                vec![UnsubAckReason::NoSubscriptionExisted]
            );
        }
        _ => unreachable!("filtered"),
    }
    server.stop().await;
}

#[tokio::test]
async fn refusals_and_permissions_have_their_codes() {
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
    let users = Users::from_config(&[UserConfig {
        name: "probe".into(),
        password: Some(hash_password("probe-pw").expect("hash")),
        token: None,
        token_expires: None,
        publish: rules(&["probes.>"]),
        subscribe: rules(&["probes.>"]),
    }])
    .expect("users");
    let server =
        TestServer::start_with(move |ready| ready.users = std::sync::Arc::new(users)).await;
    let mut wrong = options(&server, "p");
    wrong.set_credentials("probe", "wrong");
    let error = V5::start(wrong).await.err().expect("refused");
    assert!(error.contains("BadUserNamePassword"), "{error}");
    let error = V5::start(options(&server, "p"))
        .await
        .err()
        .expect("refused");
    assert!(error.contains("NotAuthorized"), "{error}");

    let mut right = options(&server, "p");
    right.set_credentials("probe", "probe-pw");
    let (mut probe, _) = V5::start(right).await.expect("accepted");
    assert_eq!(
        probe.subscribe("other/#", QoS::AtLeastOnce).await,
        vec![SubscribeReasonCode::NotAuthorized]
    );
    probe
        .client
        .publish("other/x", QoS::AtLeastOnce, false, "no")
        .await
        .expect("queued");
    assert_eq!(probe.puback().await, PubAckReason::NotAuthorized);
    assert_eq!(
        probe.subscribe("probes/#", QoS::AtLeastOnce).await,
        vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    probe
        .client
        .publish("probes/1", QoS::AtLeastOnce, false, "yes")
        .await
        .expect("queued");
    assert_eq!(probe.puback().await, PubAckReason::Success);
    assert_eq!(text(&probe.message().await.payload), "yes");
    server.stop().await;
}

#[tokio::test]
async fn no_local_and_subscription_identifiers() {
    let server = TestServer::start().await;
    let mut client = V5::connect(&server, "self").await;
    let mut quiet = Filter::new("echo/#", QoS::AtMostOnce);
    quiet.nolocal = true;
    client
        .client
        .subscribe_many_with_properties(
            [quiet],
            SubscribeProperties {
                id: Some(7),
                user_properties: Vec::new(),
            },
        )
        .await
        .expect("queued");
    client.suback().await;
    client
        .client
        .publish("echo/mine", QoS::AtMostOnce, false, "mine")
        .await
        .expect("queued");
    let other = V5::connect(&server, "other").await;
    other
        .client
        .publish("echo/theirs", QoS::AtMostOnce, false, "theirs")
        .await
        .expect("queued");
    let got = client.message().await;
    assert_eq!(
        text(&got.payload),
        "theirs",
        "its own message was not echoed"
    );
    let props = got.properties.expect("properties");
    assert_eq!(props.subscription_identifiers, vec![7]);
    server.stop().await;
}

#[tokio::test]
async fn properties_travel_with_the_message() {
    let server = TestServer::start().await;
    let mut sub = V5::connect(&server, "sub").await;
    sub.subscribe("props/#", QoS::AtLeastOnce).await;
    let publisher = V5::connect(&server, "pub").await;
    let props = PublishProperties {
        content_type: Some("application/json".into()),
        correlation_data: Some(Bytes::from_static(b"req-1")),
        response_topic: Some("replies/pub".into()),
        message_expiry_interval: Some(3600),
        user_properties: vec![("b".into(), "2".into()), ("a".into(), "1".into())],
        ..PublishProperties::default()
    };
    publisher
        .client
        .publish_with_properties("props/x", QoS::AtLeastOnce, false, "{}", props)
        .await
        .expect("queued");
    let got = sub.message().await.properties.expect("properties");
    assert_eq!(got.content_type.as_deref(), Some("application/json"));
    assert_eq!(got.correlation_data.as_deref(), Some(&b"req-1"[..]));
    assert_eq!(got.response_topic.as_deref(), Some("replies/pub"));
    assert_eq!(
        got.user_properties,
        vec![
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned())
        ],
        "user properties keep their order"
    );
    let left = got.message_expiry_interval.expect("expiry forwarded");
    assert!(left > 3500 && left <= 3600, "{left}");
    server.stop().await;
}

#[tokio::test]
async fn will_delay_and_will_properties() {
    let server = TestServer::start().await;
    let mut watcher = V5::connect(&server, "watcher").await;
    watcher.subscribe("lwt/#", QoS::AtLeastOnce).await;
    let mut opts = options(&server, "delayed");
    opts.set_last_will(LastWill::new(
        "lwt/delayed",
        "bye",
        QoS::AtLeastOnce,
        false,
        Some(LastWillProperties {
            delay_interval: Some(1),
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: Some("text/plain".into()),
            response_topic: None,
            correlation_data: None,
            user_properties: vec![("why".into(), "crash".into())],
        }),
    ));
    // The session must outlive the connection for the delay to matter.
    opts.set_session_expiry_interval(Some(60));
    let (client, _) = V5::start(opts).await.expect("connects");
    client.kill();
    let will = watcher.message().await;
    assert_eq!(text(&will.payload), "bye");
    let props = will.properties.expect("properties");
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    assert_eq!(props.user_properties, vec![("why".into(), "crash".into())]);
    server.stop().await;
}

#[tokio::test]
async fn an_expired_session_is_gone() {
    let server = TestServer::start().await;
    let dir = server.data_dir().join("mqtt").join("sessions");
    let files = || std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    let mut opts = options(&server, "brief");
    opts.set_clean_start(false);
    opts.set_session_expiry_interval(Some(1));
    let (mut client, connack) = V5::start(opts.clone()).await.expect("connects");
    assert!(!connack.session_present);
    client.subscribe("brief/#", QoS::AtLeastOnce).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while files() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no session file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.disconnect().await;
    while files() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session did not expire"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_client, connack) = V5::start(opts).await.expect("connects");
    assert!(!connack.session_present, "a new session");
    server.stop().await;
}

#[tokio::test]
async fn mqtt5_responders_answer_nats_requests() {
    let server = TestServer::start().await;
    let mut responder = V5::connect(&server, "clock").await;
    responder.subscribe("svc/time", QoS::AtMostOnce).await;
    let nats = server.client().await;
    let request = tokio::spawn({
        let nats = nats.clone();
        async move {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Trace-Id", "abc");
            nats.request_with_headers("svc.time", headers, "now?".into())
                .await
        }
    });
    let asked = responder.message().await;
    assert_eq!(text(&asked.payload), "now?");
    let props = asked.properties.expect("properties");
    assert_eq!(
        props.user_properties,
        vec![("Trace-Id".to_owned(), "abc".to_owned())],
        "NATS headers arrive as user properties"
    );
    let reply_to = props
        .response_topic
        .expect("the reply subject as response topic");
    responder
        .client
        .publish(reply_to, QoS::AtMostOnce, false, "noon")
        .await
        .expect("queued");
    let reply = tokio::time::timeout(PATIENCE, request)
        .await
        .expect("in time")
        .expect("task")
        .expect("a reply");
    assert_eq!(reply.payload, "noon");

    // And the other way: an MQTT 5 request with a Response Topic, answered over NATS.
    let mut service = nats.subscribe("svc.echo").await.expect("sub");
    sync(&nats).await;
    let mut requester = V5::connect(&server, "asker").await;
    requester.subscribe("answers/asker", QoS::AtMostOnce).await;
    let props = PublishProperties {
        response_topic: Some("answers/asker".into()),
        ..PublishProperties::default()
    };
    requester
        .client
        .publish_with_properties("svc/echo", QoS::AtMostOnce, false, "ping", props)
        .await
        .expect("queued");
    let msg = tokio::time::timeout(PATIENCE, service.next())
        .await
        .expect("in time")
        .expect("a request");
    let reply = msg.reply.expect("reply subject from the response topic");
    assert_eq!(reply.as_str(), "answers.asker");
    nats.publish(reply, "pong".into()).await.expect("reply");
    assert_eq!(text(&requester.message().await.payload), "pong");
    server.stop().await;
}

#[tokio::test]
async fn user_properties_are_headers_to_nats_and_to_streams() {
    let server = TestServer::start().await;
    let nats = server.client().await;
    let mut sub = nats.subscribe("tagged.>").await.expect("subscribe");
    sync(&nats).await;
    let js = async_nats::jetstream::new(nats.clone());
    let stream = crate::schedules::schedule_stream(&js, "LATER").await;
    let publisher = V5::connect(&server, "pub").await;
    let tagged = PublishProperties {
        user_properties: vec![("Region".into(), "eu".into())],
        ..PublishProperties::default()
    };
    publisher
        .client
        .publish_with_properties("tagged/x", QoS::AtMostOnce, false, "hi", tagged)
        .await
        .expect("queued");
    let got = tokio::time::timeout(PATIENCE, sub.next())
        .await
        .expect("in time")
        .expect("message");
    let headers = got.headers.expect("user properties arrive as headers");
    assert_eq!(headers.get("Region").map(|v| v.as_str()), Some("eu"));

    // A delayed publish from an MQTT 5 client: the schedule headers as user properties.
    let at = format!("@at {}", crate::schedules::in_seconds(1));
    let schedule = PublishProperties {
        user_properties: vec![
            ("Nats-Schedule".into(), at),
            ("Nats-Schedule-Target".into(), "later.due".into()),
        ],
        ..PublishProperties::default()
    };
    publisher
        .client
        .publish_with_properties(
            "later/schedule",
            QoS::AtLeastOnce,
            false,
            "wake up",
            schedule,
        )
        .await
        .expect("queued");
    let fired = crate::schedules::scheduled(&stream, "later.due").await;
    assert_eq!(fired.payload, Bytes::from("wake up"));
    server.stop().await;
}
