//! MQTT packet by packet, with herald's own codec on the client side: the flows real
//! clients hide (packet ids, DUP on resend, keep-alive expiry, take-over, QoS 2
//! duplicates, refusals), checked on the wire. `RawMqtt` is also the differential tests'
//! client.

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use herald_protocol::mqtt::{
    Ack, ConnAck, Connect, Disconnect, Packet, Publish, QoS, QosPid, ReasonCode, RetainHandling,
    Subscribe, SubscribeProperties, Subscription, SubscriptionOptions, TopicFilter, TopicName,
    Version, Will, WillProperties, encode,
};

use crate::common::TestServer;
use crate::common::garbage::{self, Xorshift};
use crate::common::mqtt_raw::{
    RawMqtt, connect_packet, pid, publish_packet, subscribe_packet, topic,
};

/// A subscriber that has subscribed to `filter` (QoS 2) and seen the `SUBACK`.
async fn subscriber(addr: SocketAddr, version: Version, id: &str, filter: &str) -> RawMqtt {
    let mut client = RawMqtt::connected(addr, version, id).await;
    client
        .send(&subscribe_packet(1, filter, QoS::ExactlyOnce))
        .await;
    match client.recv().await {
        Some(Packet::SubAck(suback)) => assert!(!suback.reason_codes[0].is_error()),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    client
}

#[tokio::test]
async fn unacknowledged_messages_are_resent_with_dup_and_their_ids() {
    let server = TestServer::start().await;
    let mut connect = connect_packet(Version::V311, "resender");
    connect.clean_start = false;
    let (mut sub, _) = RawMqtt::connect(server.mqtt, connect.clone()).await;
    sub.send(&subscribe_packet(1, "jobs/+", QoS::ExactlyOnce))
        .await;
    assert!(matches!(sub.recv().await, Some(Packet::SubAck(_))));
    let mut publisher = RawMqtt::connected(server.mqtt, Version::V311, "pub").await;
    publisher
        .send(&publish_packet("jobs/a", "one", QoS::AtLeastOnce, 1))
        .await;
    publisher
        .send(&publish_packet("jobs/b", "two", QoS::ExactlyOnce, 2))
        .await;
    let first = sub.publish().await;
    let second = sub.publish().await;
    assert!(!first.dup && !second.dup);
    // Receive the QoS 2 one and answer PUBREC: the server must then only resend PUBREL.
    let second_id = second.qos.packet_id().expect("QoS 2 has an id");
    sub.send(&Packet::PubRec(Ack::new(second_id))).await;
    assert_eq!(sub.recv().await, Some(Packet::PubRel(Ack::new(second_id))));
    drop(sub);

    let (mut again, connack) = RawMqtt::connect(server.mqtt, connect).await;
    assert!(connack.session_present);
    let resent = again.publish().await;
    assert!(resent.dup, "a resent PUBLISH has DUP set");
    assert_eq!(resent.qos, first.qos, "same QoS and packet id");
    assert_eq!(resent.payload, first.payload);
    assert_eq!(
        again.recv().await,
        Some(Packet::PubRel(Ack::new(second_id))),
        "the released QoS 2 flow resumes at PUBREL"
    );
    let first_id = first.qos.packet_id().expect("QoS 1 has an id");
    again.send(&Packet::PubAck(Ack::new(first_id))).await;
    again.send(&Packet::PubComp(Ack::new(second_id))).await;
    assert!(again.until_ping().await.is_empty());
    again.send(&Packet::Disconnect(Disconnect::default())).await;
    let (mut third, connack) = RawMqtt::connect(
        server.mqtt,
        Connect {
            clean_start: false,
            ..connect_packet(Version::V311, "resender")
        },
    )
    .await;
    assert!(connack.session_present);
    assert!(
        third.until_ping().await.is_empty(),
        "nothing left to resend"
    );
}

#[tokio::test]
async fn a_repeated_qos2_publish_is_forwarded_once() {
    let server = TestServer::start().await;
    let mut sub = subscriber(server.mqtt, Version::V311, "s", "once/#").await;
    let mut publisher = RawMqtt::connected(server.mqtt, Version::V311, "p").await;
    let packet = publish_packet("once/x", "exactly", QoS::ExactlyOnce, 7);
    publisher.send(&packet).await;
    publisher.send(&packet).await;
    assert_eq!(
        publisher.until_ping().await,
        vec![
            Packet::PubRec(Ack::new(pid(7))),
            Packet::PubRec(Ack::new(pid(7)))
        ]
    );
    publisher.send(&Packet::PubRel(Ack::new(pid(7)))).await;
    publisher.send(&Packet::PubRel(Ack::new(pid(7)))).await;
    // Every PUBREL is answered, the unknown one too.
    assert_eq!(
        publisher.until_ping().await,
        vec![
            Packet::PubComp(Ack::new(pid(7))),
            Packet::PubComp(Ack::new(pid(7)))
        ]
    );
    publisher
        .send(&publish_packet("once/marker", "end", QoS::AtMostOnce, 0))
        .await;
    let first = sub.publish().await;
    assert_eq!(first.payload, "exactly");
    let next = sub.publish().await;
    assert_eq!(next.payload, "end", "the duplicate was not forwarded");
}

#[tokio::test]
async fn keep_alive_expiry_closes_and_publishes_the_will() {
    let server = TestServer::start().await;
    let mut watcher = subscriber(server.mqtt, Version::V311, "watcher", "status/#").await;
    let mut connect = connect_packet(Version::V5, "sleepy");
    connect.keep_alive = 1;
    connect.will = Some(Will {
        topic: topic("status/sleepy"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties::default(),
    });
    let (mut sleepy, connack) = RawMqtt::connect(server.mqtt, connect).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    // Say nothing: after 1.5 s the server gives up on the client.
    let last = sleepy.until_closed().await;
    assert_eq!(
        last,
        vec![Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::KeepAliveTimeout,
            ..Disconnect::default()
        })]
    );
    let will = watcher.publish().await;
    assert_eq!(will.topic.as_str(), "status/sleepy");
    assert_eq!(will.payload, "gone");
}

#[tokio::test]
async fn pings_keep_a_connection_alive() {
    let server = TestServer::start().await;
    let mut connect = connect_packet(Version::V311, "pinger");
    connect.keep_alive = 1;
    let (mut client, _) = RawMqtt::connect(server.mqtt, connect).await;
    // Six pings half a second apart span three keep-alive periods.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(client.until_ping().await.is_empty());
    }
}

#[tokio::test]
async fn a_second_connection_takes_the_session_over() {
    let server = TestServer::start().await;
    let mut watcher = subscriber(server.mqtt, Version::V311, "watcher", "lwt/#").await;
    let mut connect = connect_packet(Version::V5, "twin");
    connect.will = Some(Will {
        topic: topic("lwt/twin"),
        payload: Bytes::from_static(b"first went away"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: WillProperties::default(),
    });
    let (mut first, _) = RawMqtt::connect(server.mqtt, connect).await;
    let (_second, connack) =
        RawMqtt::connect(server.mqtt, connect_packet(Version::V5, "twin")).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    assert_eq!(
        first.until_closed().await,
        vec![Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::SessionTakenOver,
            ..Disconnect::default()
        })]
    );
    // The first connection ended without DISCONNECT: its Will goes out.
    assert_eq!(watcher.publish().await.payload, "first went away");
}

#[tokio::test]
async fn topics_starting_with_dollar_escape_leading_wildcards() {
    let server = TestServer::start().await;
    let mut all = subscriber(server.mqtt, Version::V311, "all", "#").await;
    let mut plus = subscriber(server.mqtt, Version::V311, "plus", "+/stats").await;
    let mut dollar = subscriber(server.mqtt, Version::V311, "dollar", "$app/#").await;
    let mut publisher = RawMqtt::connected(server.mqtt, Version::V311, "p").await;
    publisher
        .send(&publish_packet("$app/stats", "hidden", QoS::AtMostOnce, 0))
        .await;
    publisher
        .send(&publish_packet("app/stats", "visible", QoS::AtMostOnce, 0))
        .await;
    assert_eq!(dollar.publish().await.payload, "hidden");
    assert_eq!(all.publish().await.payload, "visible");
    assert_eq!(plus.publish().await.payload, "visible");
}

#[tokio::test]
async fn refusals_in_connack() {
    let server = TestServer::start().await;
    // An unknown protocol level: the 3.1.1 return code 1, as mosquitto answers.
    let mut client = RawMqtt::open(server.mqtt, Version::V311).await;
    client
        .send_bytes(&[
            0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x06, 0x02, 0x00, 0x3c, 0x00, 0x00,
        ])
        .await;
    assert_eq!(
        client.until_closed().await,
        vec![Packet::ConnAck(Box::new(ConnAck {
            reason_code: ReasonCode::UnsupportedProtocolVersion,
            ..ConnAck::default()
        }))]
    );
    // 3.1.1 with an empty client id and a persistent session: identifier rejected.
    let mut connect = connect_packet(Version::V311, "");
    connect.clean_start = false;
    let (mut client, connack) = RawMqtt::connect(server.mqtt, connect).await;
    assert_eq!(connack.reason_code, ReasonCode::ClientIdentifierNotValid);
    assert!(client.until_closed().await.is_empty());
    // MQTT 5 with an empty client id: the server assigns one.
    let (_client, connack) = RawMqtt::connect(server.mqtt, connect_packet(Version::V5, "")).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    let assigned = connack
        .properties
        .assigned_client_identifier
        .expect("assigned id");
    assert!(!assigned.is_empty());
    // Enhanced authentication is not offered.
    let mut connect = connect_packet(Version::V5, "auth");
    connect.properties.authentication_method = Some("SCRAM-SHA-1".into());
    let (_client, connack) = RawMqtt::connect(server.mqtt, connect).await;
    assert_eq!(connack.reason_code, ReasonCode::BadAuthenticationMethod);
}

#[tokio::test]
async fn protocol_violations_close_with_a_reason() {
    let server = TestServer::start().await;
    // A second CONNECT.
    let mut client = RawMqtt::connected(server.mqtt, Version::V5, "twice").await;
    client
        .send(&Packet::Connect(Box::new(connect_packet(
            Version::V5,
            "twice",
        ))))
        .await;
    assert_eq!(
        client.until_closed().await,
        vec![Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::ProtocolError,
            ..Disconnect::default()
        })]
    );
    // An unknown Topic Alias.
    let mut client = RawMqtt::connected(server.mqtt, Version::V5, "alias").await;
    let mut publish = Publish::new(TopicName::default(), Bytes::from_static(b"x"));
    publish.properties.topic_alias = NonZeroU16::new(3);
    client.send(&Packet::Publish(publish)).await;
    assert_eq!(
        client.until_closed().await,
        vec![Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::ProtocolError,
            ..Disconnect::default()
        })]
    );
    // 3.1.1: a malformed packet closes without a word (SUBSCRIBE with flags 0).
    let mut client = RawMqtt::connected(server.mqtt, Version::V311, "bad").await;
    client
        .send_bytes(&[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00])
        .await;
    assert!(client.until_closed().await.is_empty());
    // The first packet must be CONNECT.
    let mut client = RawMqtt::open(server.mqtt, Version::V311).await;
    client.send(&Packet::PingReq).await;
    assert!(client.until_closed().await.is_empty());
}

#[tokio::test]
async fn topic_aliases_name_topics_after_their_first_use() {
    let server = TestServer::start().await;
    let mut sub = subscriber(server.mqtt, Version::V5, "s", "alias/#").await;
    let mut client = RawMqtt::connected(server.mqtt, Version::V5, "aliaser").await;
    let mut first = Publish::new(topic("alias/long/name"), Bytes::from_static(b"1"));
    first.properties.topic_alias = NonZeroU16::new(1);
    client.send(&Packet::Publish(first)).await;
    let mut second = Publish::new(TopicName::default(), Bytes::from_static(b"2"));
    second.properties.topic_alias = NonZeroU16::new(1);
    client.send(&Packet::Publish(second)).await;
    for payload in ["1", "2"] {
        let got = sub.publish().await;
        assert_eq!(got.topic.as_str(), "alias/long/name");
        assert_eq!(got.payload, payload);
        assert_eq!(got.properties.topic_alias, None, "aliases are per hop");
    }
}

#[tokio::test]
async fn pipelined_packets_after_connect_are_processed_in_order() {
    let server = TestServer::start().await;
    let mut client = RawMqtt::open(server.mqtt, Version::V311).await;
    let mut bytes = BytesMut::new();
    for packet in [
        Packet::Connect(Box::new(connect_packet(Version::V311, "eager"))),
        subscribe_packet(1, "eager/t", QoS::AtLeastOnce),
        publish_packet("eager/t", "to myself", QoS::AtLeastOnce, 2),
        Packet::PingReq,
    ] {
        encode(&mut bytes, Version::V311, &packet).expect("encodes");
    }
    client.send_bytes(&bytes).await;
    let mut got = Vec::new();
    while got.len() < 5 {
        got.push(client.recv().await.expect("a packet"));
    }
    assert!(matches!(got[0], Packet::ConnAck(_)), "{got:?}");
    assert!(matches!(got[1], Packet::SubAck(_)), "{got:?}");
    // The PUBACK and the delivery of the client's own message may come in either order;
    // the PINGRESP after the PUBACK.
    let position = |f: &dyn Fn(&Packet) -> bool| got.iter().position(f).expect("present");
    let puback = position(&|p| matches!(p, Packet::PubAck(a) if a.packet_id == pid(2)));
    let ping = position(&|p| *p == Packet::PingResp);
    assert!(puback < ping, "{got:?}");
    assert!(
        got.iter()
            .any(|p| matches!(p, Packet::Publish(x) if x.payload == "to myself"))
    );
}

#[tokio::test]
async fn retain_handling_and_retain_as_published() {
    let server = TestServer::start().await;
    let mut publisher = RawMqtt::connected(server.mqtt, Version::V5, "p").await;
    let mut retained = Publish::new(topic("rh/a"), Bytes::from_static(b"kept"));
    retained.retain = true;
    retained.qos = QosPid::AtLeastOnce(pid(1));
    publisher.send(&Packet::Publish(retained.clone())).await;
    assert_eq!(publisher.until_ping().await.len(), 1, "PUBACK");

    let mut client = RawMqtt::connected(server.mqtt, Version::V5, "c").await;
    let sub = |id: u16, filter: &str, handling: RetainHandling, rap: bool| {
        Packet::Subscribe(Subscribe {
            packet_id: pid(id),
            properties: SubscribeProperties::default(),
            subscriptions: vec![Subscription {
                filter: TopicFilter::new(filter).expect("filter"),
                options: SubscriptionOptions {
                    qos: QoS::AtMostOnce,
                    no_local: false,
                    retain_as_published: rap,
                    retain_handling: handling,
                },
            }],
        })
    };
    // 2: never send retained messages.
    client
        .send(&sub(1, "rh/#", RetainHandling::DoNotSend, true))
        .await;
    let got = client.until_ping().await;
    assert_eq!(got.len(), 1, "only the SUBACK: {got:?}");
    // 1: only for a new subscription, so not for this repeat.
    client
        .send(&sub(2, "rh/#", RetainHandling::SendIfNew, true))
        .await;
    assert_eq!(client.until_ping().await.len(), 1);
    // 0: always.
    client
        .send(&sub(3, "rh/#", RetainHandling::SendAtSubscribe, true))
        .await;
    let got = client.until_ping().await;
    assert!(
        matches!(&got[..], [Packet::SubAck(_), Packet::Publish(p)] if p.retain && p.payload == "kept"),
        "{got:?}"
    );
    // Retain As Published keeps the flag on live messages.
    publisher.send(&Packet::Publish(retained)).await;
    let live = client.publish().await;
    assert!(live.retain);
}

#[tokio::test]
async fn mqtt5_acks_say_what_went_wrong() {
    let server = TestServer::start_with(|ready| ready.limits.max_payload = 1024).await;
    let mut client = RawMqtt::connected(server.mqtt, Version::V5, "codes").await;
    // PUBREL for an id never received: PUBCOMP with 0x92.
    client.send(&Packet::PubRel(Ack::new(pid(4)))).await;
    // A payload over `limits.max_payload`: 0x97.
    let big = "x".repeat(2000);
    client
        .send(&publish_packet("codes/big", &big, QoS::AtLeastOnce, 5))
        .await;
    // A topic herald keeps for itself, and one with no subject: 0x90.
    client
        .send(&publish_packet(
            "$MQTT/retained/x",
            "no",
            QoS::AtLeastOnce,
            6,
        ))
        .await;
    client
        .send(&publish_packet("a b", "no", QoS::ExactlyOnce, 7))
        .await;
    let code = |packet: &Packet| match packet {
        Packet::PubComp(a) | Packet::PubAck(a) | Packet::PubRec(a) => {
            (a.packet_id.get(), a.reason_code)
        }
        other => panic!("unexpected {other:?}"),
    };
    let got: Vec<_> = client.until_ping().await.iter().map(code).collect();
    assert_eq!(
        got,
        vec![
            (4, ReasonCode::PacketIdentifierNotFound),
            (5, ReasonCode::QuotaExceeded),
            (6, ReasonCode::TopicNameInvalid),
            (7, ReasonCode::TopicNameInvalid),
        ]
    );
    // A refused QoS 2 flow is over: its PUBREL finds nothing.
    client.send(&Packet::PubRel(Ack::new(pid(7)))).await;
    assert_eq!(
        client
            .until_ping()
            .await
            .iter()
            .map(code)
            .collect::<Vec<_>>(),
        vec![(7, ReasonCode::PacketIdentifierNotFound)]
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_tells_mqtt5_clients_and_publishes_wills() {
    let server = TestServer::start().await;
    let mut connect = connect_packet(Version::V5, "leaving");
    connect.will = Some(Will {
        topic: topic("bye/leaving"),
        payload: Bytes::from_static(b"server went away"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: WillProperties::default(),
    });
    let (mut client, _) = RawMqtt::connect(server.mqtt, connect).await;
    let server = server.restart().await;
    assert_eq!(
        client.until_closed().await,
        vec![Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::ServerShuttingDown,
            ..Disconnect::default()
        })]
    );
    // The Will was retained, so it is still there after the restart.
    let mut late = RawMqtt::connected(server.mqtt, Version::V311, "late").await;
    late.send(&subscribe_packet(1, "bye/#", QoS::AtLeastOnce))
        .await;
    let got = late.until_ping().await;
    assert!(
        matches!(&got[..], [Packet::SubAck(_), Packet::Publish(p)]
            if p.retain && p.payload == "server went away"),
        "{got:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_full_server_answers_server_busy() {
    let server = TestServer::start_with(|ready| ready.limits.max_connections = 1).await;
    let _first = RawMqtt::connected(server.mqtt, Version::V311, "first").await;
    let (mut v5, connack) = RawMqtt::connect(server.mqtt, connect_packet(Version::V5, "v5")).await;
    assert_eq!(connack.reason_code, ReasonCode::ServerBusy);
    assert!(v5.until_closed().await.is_empty());
    let (_, connack) = RawMqtt::connect(server.mqtt, connect_packet(Version::V311, "v3")).await;
    // 3.1.1 has no "busy": Server unavailable (3).
    assert_eq!(connack.reason_code, ReasonCode::ServerUnavailable);
    server.stop().await;
}

/// Random bytes on the MQTT port, alone and after a valid `CONNECT` of either version,
/// while a subscriber and a publisher exchange QoS 1 messages: the good pair loses
/// nothing and the server keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_harm_no_other_client() {
    let server = TestServer::start().await;
    let mut sub = subscriber(server.mqtt, Version::V5, "good-sub", "good/#").await;
    let addr = server.mqtt;
    let garbage = tokio::spawn(async move {
        let mut rng = Xorshift::new(0x9e37_79b9_7f4a_7c15);
        for round in 0..300u64 {
            let mut bytes = BytesMut::new();
            match round % 3 {
                0 => {}
                1 => {
                    let connect = connect_packet(Version::V311, &format!("junk-{round}"));
                    encode(
                        &mut bytes,
                        Version::V311,
                        &Packet::Connect(Box::new(connect)),
                    )
                    .expect("encodes");
                }
                _ => {
                    let connect = connect_packet(Version::V5, &format!("junk-{round}"));
                    encode(&mut bytes, Version::V5, &Packet::Connect(Box::new(connect)))
                        .expect("encodes");
                }
            }
            bytes.extend(rng.bytes(2048));
            garbage::send(addr, &bytes, Duration::from_millis(10)).await;
        }
    });
    let mut publisher = RawMqtt::connected(server.mqtt, Version::V311, "good-pub").await;
    const GOOD: u16 = 300;
    for i in 1..=GOOD {
        publisher
            .send(&publish_packet(
                "good/n",
                &i.to_string(),
                QoS::AtLeastOnce,
                i,
            ))
            .await;
        assert_eq!(
            publisher.recv().await,
            Some(Packet::PubAck(Ack::new(pid(i))))
        );
        let got = sub.publish().await;
        assert_eq!(got.payload, i.to_string());
        let id = got.qos.packet_id().expect("QoS 1");
        sub.send(&Packet::PubAck(Ack::new(id))).await;
    }
    garbage.await.expect("garbage task");
    let _ = RawMqtt::connected(server.mqtt, Version::V5, "after").await;
    server.stop().await;
}

#[tokio::test]
async fn subscribing_again_can_turn_no_local_on_and_off() {
    let server = TestServer::start().await;
    let mut client = RawMqtt::connected(server.mqtt, Version::V5, "nl").await;
    let subscribe = |id: u16, no_local: bool| {
        let Packet::Subscribe(mut packet) = subscribe_packet(id, "nl/#", QoS::AtMostOnce) else {
            unreachable!("subscribe_packet builds a SUBSCRIBE")
        };
        packet.subscriptions[0].options.no_local = no_local;
        Packet::Subscribe(packet)
    };
    let own_messages = |packets: Vec<Packet>| {
        packets
            .into_iter()
            .filter(|p| matches!(p, Packet::Publish(_)))
            .count()
    };
    // Each round subscribes again with No Local set as given, then publishes to itself.
    for (id, no_local, echoed, what) in [
        (1, false, 1, "No Local off"),
        (2, true, 0, "No Local on"),
        (3, false, 1, "No Local off again"),
    ] {
        client.send(&subscribe(id, no_local)).await;
        client.until_ping().await;
        client
            .send(&publish_packet("nl/a", what, QoS::AtMostOnce, 0))
            .await;
        assert_eq!(own_messages(client.until_ping().await), echoed, "{what}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_filter_repeated_in_one_subscribe_counts_once_toward_the_limit() {
    let server = TestServer::start_with(|ready| ready.limits.max_subscriptions = 1).await;
    let mut client = RawMqtt::connected(server.mqtt, Version::V5, "twice").await;
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        ..SubscriptionOptions::default()
    };
    let filter = |f: &str| Subscription {
        filter: TopicFilter::new(f).expect("valid filter"),
        options,
    };
    client
        .send(&Packet::Subscribe(Subscribe {
            packet_id: pid(1),
            properties: SubscribeProperties::default(),
            subscriptions: vec![filter("a/b"), filter("a/b"), filter("c/d")],
        }))
        .await;
    let Some(Packet::SubAck(suback)) = client.recv().await else {
        panic!("no SUBACK");
    };
    // The second `a/b` replaces the first (MQTT 5 §3.8.4); only `c/d` is one too many.
    assert_eq!(
        suback.reason_codes,
        vec![
            ReasonCode::GrantedQos1,
            ReasonCode::GrantedQos1,
            ReasonCode::QuotaExceeded
        ]
    );
}

#[tokio::test]
async fn qos2_publishes_never_released_past_the_receive_maximum_end_the_connection() {
    let server = TestServer::start_with(|ready| ready.mqtt_config.receive_maximum = 3).await;
    let (mut client, connack) =
        RawMqtt::connect(server.mqtt, connect_packet(Version::V5, "hoarder")).await;
    assert_eq!(
        connack.properties.receive_maximum.map(NonZeroU16::get),
        Some(3),
        "the Receive Maximum is advertised"
    );
    // Three QoS 2 publishes are taken (PUBREC each) though never released.
    for id in 1..=3 {
        client
            .send(&publish_packet("held/t", "x", QoS::ExactlyOnce, id))
            .await;
        match client.recv().await {
            Some(Packet::PubRec(ack)) => assert_eq!(ack.packet_id, pid(id)),
            other => panic!("expected PUBREC {id}, got {other:?}"),
        }
    }
    // The fourth breaks the window: DISCONNECT 0x93, then the end.
    client
        .send(&publish_packet("held/t", "x", QoS::ExactlyOnce, 4))
        .await;
    match client.recv().await {
        Some(Packet::Disconnect(d)) => {
            assert_eq!(d.reason_code, ReasonCode::ReceiveMaximumExceeded);
        }
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert!(client.recv().await.is_none(), "closed");

    // Releasing keeps a client inside the window however long it runs.
    let mut polite = RawMqtt::connected(server.mqtt, Version::V5, "polite").await;
    for id in 1..=10 {
        polite
            .send(&publish_packet("held/t", "x", QoS::ExactlyOnce, id))
            .await;
        assert!(matches!(polite.recv().await, Some(Packet::PubRec(_))));
        polite.send(&Packet::PubRel(Ack::new(pid(id)))).await;
        assert!(matches!(polite.recv().await, Some(Packet::PubComp(_))));
    }
    server.stop().await;
}

#[tokio::test]
async fn a_keep_alive_past_the_cap_is_lowered_for_mqtt5_and_refused_for_mqtt311() {
    let server =
        TestServer::start_with(|ready| ready.mqtt_config.max_keepalive = Duration::from_secs(60))
            .await;
    for (asked, told) in [(120, Some(60)), (0, Some(60)), (30, None), (60, None)] {
        let mut connect = connect_packet(Version::V5, &format!("ka-{asked}"));
        connect.keep_alive = asked;
        let (_client, connack) = RawMqtt::connect(server.mqtt, connect).await;
        assert_eq!(connack.reason_code, ReasonCode::Success);
        assert_eq!(
            connack.properties.server_keep_alive, told,
            "asked for {asked} s"
        );
    }
    let mut connect = connect_packet(Version::V311, "old-ka");
    connect.keep_alive = 120;
    let (_client, connack) = RawMqtt::connect(server.mqtt, connect).await;
    assert_eq!(
        connack.reason_code,
        ReasonCode::ClientIdentifierNotValid,
        "3.1.1 cannot be told: identifier rejected, as mosquitto"
    );
    server.stop().await;
}
