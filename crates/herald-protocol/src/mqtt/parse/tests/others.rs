//! Every packet after `CONNECT`.

use crate::mqtt::{
    Ack, AckProperties, Auth, Disconnect, Publish, PublishProperties, SubAck, Subscription,
    SubscriptionOptions, TopicFilter, TopicName, UnsubAck,
};

use super::*;

fn decoded_publish(version: Version, input: &[u8]) -> Publish {
    match client(version, input) {
        Packet::Publish(publish) => publish,
        other => panic!("not a PUBLISH: {other:?}"),
    }
}

#[test]
fn publish_vectors() {
    // QoS 0, 3.1.1: topic "a/b", payload "hello".
    let qos0 = [
        0x30, 0x0A, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o',
    ];
    let expected = Publish::new(
        TopicName::new("a/b").expect("valid"),
        Bytes::from_static(b"hello"),
    );
    assert_eq!(decoded_publish(V3, &qos0), expected);
    // QoS 1, DUP and RETAIN, id 10, empty payload.
    let qos1 = [0x3B, 0x05, 0x00, 0x01, b't', 0x00, 0x0A];
    let publish = decoded_publish(V3, &qos1);
    assert_eq!(publish.qos, QosPid::AtLeastOnce(id(10)));
    assert!(publish.dup && publish.retain && publish.payload.is_empty());
    // QoS 2 in MQTT 5, with an empty property block.
    let qos2 = [0x34, 0x06, 0x00, 0x01, b't', 0x01, 0x00, 0x00];
    assert_eq!(decoded_publish(V5, &qos2).qos, QosPid::ExactlyOnce(id(256)));
    // 3.1.1 does not forbid DUP at QoS 0 on receipt.
    assert!(decoded_publish(V3, &[0x38, 0x03, 0x00, 0x01, b't']).dup);
}

#[test]
fn publish_properties() {
    let props = [
        vec![0x01, 1, 0x02, 0, 0, 0, 60],
        [vec![0x03], s("text/plain")].concat(),
        [vec![0x08], s("reply/to")].concat(),
        vec![0x09, 0, 2, 0xAB, 0xCD, 0x23, 0, 7],
        [vec![0x26], s("a"), s("1")].concat(),
    ]
    .concat();
    let body = [s("t"), vec![props.len() as u8], props, b"x".to_vec()].concat();
    let publish = decoded_publish(V5, &packet(0x30, &body));
    let expected = PublishProperties {
        payload_format_indicator: Some(crate::mqtt::PayloadFormat::Utf8),
        message_expiry_interval: Some(60),
        content_type: Some("text/plain".into()),
        response_topic: Some(TopicName::new("reply/to").expect("valid")),
        correlation_data: Some(Bytes::from_static(&[0xAB, 0xCD])),
        topic_alias: NonZeroU16::new(7),
        subscription_identifiers: vec![],
        user_properties: vec![UserProperty::new("a", "1")],
    };
    assert_eq!(publish.properties, expected);
    assert_eq!(publish.payload, Bytes::from_static(b"x"));
}

#[test]
fn publish_topic_rules() {
    let bad = |version, topic: &str| {
        let props: &[u8] = if version == V5 { &[0] } else { &[] };
        client_err(version, &packet(0x30, &[s(topic), props.to_vec()].concat()))
    };
    for version in [V3, V5] {
        assert_eq!(
            bad(version, "a/+"),
            MqttError::InvalidTopicName(TopicError::WildcardInName)
        );
        assert_eq!(
            bad(version, "#"),
            MqttError::InvalidTopicName(TopicError::WildcardInName)
        );
        assert_eq!(
            bad(version, "a\0"),
            MqttError::NullCharacter {
                packet: PacketType::Publish
            }
        );
    }
    assert_eq!(bad(V3, ""), MqttError::InvalidTopicName(TopicError::Empty));
    let err = bad(V5, "");
    assert_eq!(err, MqttError::EmptyTopicWithoutAlias);
    assert_eq!(err.reason_code(), ReasonCode::ProtocolError);
    // With a Topic Alias an empty topic is fine.
    let aliased = decoded_publish(V5, &packet(0x30, &[0, 0, 3, 0x23, 0, 1]));
    assert!(aliased.topic.is_empty());
    assert_eq!(aliased.properties.topic_alias, NonZeroU16::new(1));
    // Packet id 0.
    assert_eq!(
        client_err(V3, &[0x32, 0x05, 0x00, 0x01, b't', 0x00, 0x00]),
        MqttError::ZeroPacketId {
            packet: PacketType::Publish
        }
    );
    // The packet id runs past the packet.
    assert_eq!(
        client_err(V3, &[0x32, 0x04, 0x00, 0x01, b't', 0x00]),
        MqttError::Truncated {
            packet: PacketType::Publish
        }
    );
}

#[test]
fn publish_property_rules() {
    let publish = PacketType::Publish;
    let with = |props: &[u8]| packet(0x30, &[s("t"), props.to_vec()].concat());
    // A client may not send a Subscription Identifier; a server may send several.
    let sub_ids = with(&[4, 0x0B, 1, 0x0B, 2]);
    assert_eq!(
        client_err(V5, &sub_ids),
        MqttError::PropertyFromWrongSide {
            packet: publish,
            id: 0x0B
        }
    );
    let Packet::Publish(delivered) = server(V5, &sub_ids) else {
        panic!("not a PUBLISH");
    };
    assert_eq!(
        delivered.properties.subscription_identifiers,
        [1, 2].map(|v| SubscriptionId::new(v).expect("valid"))
    );
    assert_eq!(
        server_err(V5, &with(&[2, 0x0B, 0])),
        MqttError::InvalidPropertyValue {
            packet: publish,
            id: 0x0B
        }
    );
    assert_eq!(
        client_err(V5, &with(&[6, 0x23, 0, 1, 0x23, 0, 2])),
        MqttError::DuplicateProperty {
            packet: publish,
            id: 0x23
        }
    );
    assert_eq!(
        client_err(V5, &with(&[3, 0x23, 0, 0])),
        MqttError::InvalidPropertyValue {
            packet: publish,
            id: 0x23
        }
    );
    assert_eq!(
        client_err(V5, &with(&[2, 0x01, 2])),
        MqttError::InvalidPropertyValue {
            packet: publish,
            id: 0x01
        }
    );
    assert_eq!(
        client_err(V5, &with(&[5, 0x11, 0, 0, 0, 1])),
        MqttError::PropertyNotAllowed {
            packet: publish,
            id: 0x11
        }
    );
    // Id 256, as a two-byte Variable Byte Integer; and id 1 in a non-minimal form.
    assert_eq!(
        client_err(V5, &with(&[3, 0x80, 0x02, 0])),
        MqttError::UnknownProperty {
            packet: publish,
            id: 256
        }
    );
    assert_eq!(
        client_err(V5, &with(&[3, 0x81, 0x00, 0])),
        MqttError::NonMinimalVarint { packet: publish }
    );
    // User Properties repeat and keep their order, names included.
    let pairs = [vec![0x26], s("k"), s("2"), vec![0x26], s("k"), s("1")].concat();
    let repeated = with(&[vec![pairs.len() as u8], pairs].concat());
    let names: Vec<_> = decoded_publish(V5, &repeated)
        .properties
        .user_properties
        .into_iter()
        .map(|p| p.value)
        .collect();
    assert_eq!(names, ["2", "1"]);
}

/// Builds the `Packet` variant of one of the four acks.
type AckVariant = fn(Ack) -> Packet;

#[test]
fn ack_vectors() {
    let kinds: [(u8, AckVariant); 4] = [
        (0x40, Packet::PubAck),
        (0x50, Packet::PubRec),
        (0x62, Packet::PubRel),
        (0x70, Packet::PubComp),
    ];
    for (first, variant) in kinds {
        let plain = [first, 0x02, 0x00, 0x07];
        assert_eq!(client(V3, &plain), variant(Ack::new(id(7))));
        assert_eq!(server(V5, &plain), variant(Ack::new(id(7))));
        let kind = client(V3, &plain).packet_type();
        assert_eq!(
            client_err(V3, &[first, 0x03, 0x00, 0x07, 0x00]),
            MqttError::TrailingBytes { packet: kind }
        );
        assert_eq!(
            client_err(V3, &[first, 0x02, 0x00, 0x00]),
            MqttError::ZeroPacketId { packet: kind }
        );
        assert_eq!(
            client_err(V3, &[first, 0x01, 0x00]),
            MqttError::Truncated { packet: kind }
        );
    }
    // MQTT 5 forms: reason only, reason and properties.
    let no_match = Ack {
        reason_code: ReasonCode::NoMatchingSubscribers,
        ..Ack::new(id(1))
    };
    assert_eq!(
        client(V5, &[0x40, 0x03, 0x00, 0x01, 0x10]),
        Packet::PubAck(no_match.clone())
    );
    assert_eq!(
        client(V5, &[0x40, 0x04, 0x00, 0x01, 0x10, 0x00]),
        Packet::PubAck(no_match)
    );
    let with_reason = [vec![0x00, 0x01, 0x92], vec![7, 0x1F], s("gone")].concat();
    let expected = Ack {
        reason_code: ReasonCode::PacketIdentifierNotFound,
        properties: AckProperties {
            reason_string: Some("gone".into()),
            user_properties: vec![],
        },
        ..Ack::new(id(1))
    };
    assert_eq!(
        client(V5, &packet(0x70, &with_reason)),
        Packet::PubComp(expected)
    );
    // Codes outside the packet's table.
    assert_eq!(
        client_err(V5, &[0x40, 0x03, 0x00, 0x01, 0x92]),
        MqttError::InvalidReasonCode {
            packet: PacketType::PubAck,
            code: 0x92
        }
    );
    assert_eq!(
        client_err(V5, &[0x62, 0x03, 0x00, 0x01, 0x10]),
        MqttError::InvalidReasonCode {
            packet: PacketType::PubRel,
            code: 0x10
        }
    );
    assert_eq!(
        client_err(V5, &[0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00]),
        MqttError::TrailingBytes {
            packet: PacketType::PubAck
        }
    );
}

fn filter(text: &str) -> TopicFilter {
    TopicFilter::new(text).expect("valid filter")
}

#[test]
fn subscribe_vectors() {
    let v3 = packet(
        0x82,
        &[vec![0x00, 0x01], s("a/#"), vec![0x01], s("b"), vec![0x02]].concat(),
    );
    let Packet::Subscribe(subscribe) = client(V3, &v3) else {
        panic!("not a SUBSCRIBE");
    };
    assert_eq!(subscribe.packet_id, id(1));
    let qos = |q| SubscriptionOptions {
        qos: q,
        ..SubscriptionOptions::default()
    };
    assert_eq!(
        subscribe.subscriptions,
        [
            Subscription {
                filter: filter("a/#"),
                options: qos(QoS::AtLeastOnce)
            },
            Subscription {
                filter: filter("b"),
                options: qos(QoS::ExactlyOnce)
            },
        ]
    );
    // MQTT 5: Subscription Identifier 300 and every option bit.
    let v5 = packet(
        0x82,
        &[
            vec![0x00, 0x02, 3, 0x0B, 0xAC, 0x02],
            s("$share/g/x"),
            vec![0b0010_1001],
        ]
        .concat(),
    );
    let Packet::Subscribe(subscribe) = client(V5, &v5) else {
        panic!("not a SUBSCRIBE");
    };
    assert_eq!(
        subscribe.properties.subscription_identifier,
        SubscriptionId::new(300)
    );
    let options = subscribe.subscriptions[0].options;
    assert_eq!(options.qos, QoS::AtLeastOnce);
    assert!(options.retain_as_published && !options.no_local);
    assert_eq!(options.retain_handling, RetainHandling::DoNotSend);
    assert_eq!(subscribe.subscriptions[0].filter.share_group(), Some("g"));
}

#[test]
fn subscribe_rules() {
    let sub = |version: Version, entry: &[u8]| {
        let props: &[u8] = if version == V5 { &[0] } else { &[] };
        client_err(
            version,
            &packet(0x82, &[&[0x00, 0x01], props, entry].concat()),
        )
    };
    let entry = |filter: &str, options: u8| [s(filter), vec![options]].concat();
    let subscribe = PacketType::Subscribe;
    assert_eq!(sub(V3, &[]), MqttError::NoTopicFilters(subscribe));
    assert_eq!(sub(V5, &[]), MqttError::NoTopicFilters(subscribe));
    assert_eq!(
        sub(V3, &entry("a/#/b", 0)),
        MqttError::InvalidTopicFilter(TopicError::MisplacedWildcard)
    );
    assert_eq!(
        sub(V5, &entry("$share/g", 0)),
        MqttError::InvalidTopicFilter(TopicError::InvalidShare)
    );
    assert_eq!(
        sub(V3, &entry("", 0)),
        MqttError::InvalidTopicFilter(TopicError::Empty)
    );
    assert_eq!(
        sub(V3, &entry("a", 0x03)),
        MqttError::InvalidQos { packet: subscribe }
    );
    assert_eq!(
        sub(V5, &entry("a", 0x03)).reason_code(),
        ReasonCode::ProtocolError
    );
    // Bits 2-7 are reserved in 3.1.1, bits 6-7 in MQTT 5.
    assert_eq!(
        sub(V3, &entry("a", 0x04)),
        MqttError::ReservedSubscriptionBits
    );
    assert_eq!(
        sub(V5, &entry("a", 0x40)),
        MqttError::ReservedSubscriptionBits
    );
    assert_eq!(sub(V5, &entry("a", 0x30)), MqttError::InvalidRetainHandling);
    assert_eq!(
        sub(V5, &entry("$share/g/a", 0x04)),
        MqttError::NoLocalOnSharedSubscription
    );
    assert_eq!(sub(V3, &s("a")), MqttError::Truncated { packet: subscribe });
    // Subscription Identifier: once, and not zero.
    let with_props = |props: &[u8]| {
        client_err(
            V5,
            &packet(0x82, &[&[0x00, 0x01], props, &entry("a", 0)].concat()),
        )
    };
    assert_eq!(
        with_props(&[4, 0x0B, 1, 0x0B, 2]),
        MqttError::DuplicateProperty {
            packet: subscribe,
            id: 0x0B
        }
    );
    assert_eq!(
        with_props(&[2, 0x0B, 0]),
        MqttError::InvalidPropertyValue {
            packet: subscribe,
            id: 0x0B
        }
    );
    assert_eq!(
        with_props(&[5, 0x0B, 0x80, 0x80, 0x80, 0x80]),
        MqttError::VarintTooLong { packet: subscribe }
    );
}

#[test]
fn suback_vectors() {
    let v3 = server(V3, &[0x90, 0x05, 0x00, 0x03, 0x00, 0x02, 0x80]);
    assert_eq!(
        v3,
        Packet::SubAck(SubAck {
            packet_id: id(3),
            properties: AckProperties::default(),
            reason_codes: vec![
                ReasonCode::Success,
                ReasonCode::GrantedQos2,
                ReasonCode::UnspecifiedError
            ],
        })
    );
    assert_eq!(
        server_err(V3, &[0x90, 0x03, 0x00, 0x03, 0x87]),
        MqttError::InvalidReasonCode {
            packet: PacketType::SubAck,
            code: 0x87
        }
    );
    let v5 = server(V5, &[0x90, 0x05, 0x00, 0x03, 0x00, 0x01, 0xA2]);
    let Packet::SubAck(suback) = v5 else {
        panic!("not a SUBACK");
    };
    assert_eq!(
        suback.reason_codes,
        [
            ReasonCode::GrantedQos1,
            ReasonCode::WildcardSubscriptionsNotSupported
        ]
    );
    assert_eq!(
        server_err(V5, &[0x90, 0x04, 0x00, 0x03, 0x00, 0x11]),
        MqttError::InvalidReasonCode {
            packet: PacketType::SubAck,
            code: 0x11
        }
    );
}

#[test]
fn unsubscribe_and_unsuback() {
    let v3 = packet(
        0xA2,
        &[vec![0x00, 0x04], s("a/+"), s("$share/g/b")].concat(),
    );
    let Packet::Unsubscribe(unsubscribe) = client(V3, &v3) else {
        panic!("not an UNSUBSCRIBE");
    };
    assert_eq!(unsubscribe.filters, [filter("a/+"), filter("$share/g/b")]);
    assert_eq!(
        client_err(V3, &[0xA2, 0x02, 0x00, 0x04]),
        MqttError::NoTopicFilters(PacketType::Unsubscribe)
    );
    assert_eq!(
        client_err(V3, &packet(0xA2, &[vec![0x00, 0x04], s("a+")].concat())),
        MqttError::InvalidTopicFilter(TopicError::MisplacedWildcard)
    );
    // UNSUBSCRIBE allows User Properties only.
    assert_eq!(
        client_err(
            V5,
            &packet(0xA2, &[vec![0x00, 0x04, 2, 0x0B, 1], s("a")].concat())
        ),
        MqttError::PropertyNotAllowed {
            packet: PacketType::Unsubscribe,
            id: 0x0B
        }
    );

    let empty = UnsubAck {
        packet_id: id(5),
        properties: AckProperties::default(),
        reason_codes: vec![],
    };
    assert_eq!(
        server(V3, &[0xB0, 0x02, 0x00, 0x05]),
        Packet::UnsubAck(empty)
    );
    assert_eq!(
        server_err(V3, &[0xB0, 0x03, 0x00, 0x05, 0x00]),
        MqttError::TrailingBytes {
            packet: PacketType::UnsubAck
        }
    );
    let Packet::UnsubAck(v5) = server(V5, &[0xB0, 0x05, 0x00, 0x05, 0x00, 0x00, 0x11]) else {
        panic!("not an UNSUBACK");
    };
    assert_eq!(
        v5.reason_codes,
        [ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
    );
}

#[test]
fn ping_and_disconnect() {
    assert_eq!(client(V3, &[0xC0, 0x00]), Packet::PingReq);
    assert_eq!(server(V3, &[0xD0, 0x00]), Packet::PingResp);
    assert_eq!(
        client_err(V3, &[0xC0, 0x01, 0x00]),
        MqttError::TrailingBytes {
            packet: PacketType::PingReq
        }
    );
    let normal = Packet::Disconnect(Disconnect::default());
    assert_eq!(client(V3, &[0xE0, 0x00]), normal);
    assert_eq!(client(V5, &[0xE0, 0x00]), normal);
    assert_eq!(
        client_err(V3, &[0xE0, 0x01, 0x04]),
        MqttError::TrailingBytes {
            packet: PacketType::Disconnect
        }
    );
    let Packet::Disconnect(with_will) = client(V5, &[0xE0, 0x01, 0x04]) else {
        panic!("not a DISCONNECT");
    };
    assert_eq!(with_will.reason_code, ReasonCode::DisconnectWithWill);
    let expiry = [0xE0, 0x07, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x3C];
    let Packet::Disconnect(client_side) = client(V5, &expiry) else {
        panic!("not a DISCONNECT");
    };
    assert_eq!(client_side.properties.session_expiry_interval, Some(60));
    assert_eq!(
        server_err(V5, &expiry),
        MqttError::PropertyFromWrongSide {
            packet: PacketType::Disconnect,
            id: 0x11
        }
    );
    assert_eq!(
        client_err(V5, &[0xE0, 0x01, 0x05]),
        MqttError::InvalidReasonCode {
            packet: PacketType::Disconnect,
            code: 0x05
        }
    );
}

#[test]
fn auth() {
    assert_eq!(client(V5, &[0xF0, 0x00]), Packet::Auth(Auth::default()));
    let challenge = [vec![0x18, 0x0B, 0x15], s("SCRAM"), vec![0x16, 0, 0]].concat();
    let Packet::Auth(auth) = server(V5, &packet(0xF0, &challenge)) else {
        panic!("not an AUTH");
    };
    assert_eq!(auth.reason_code, ReasonCode::ContinueAuthentication);
    assert_eq!(
        auth.properties.authentication_method.as_deref(),
        Some("SCRAM")
    );
    assert_eq!(auth.properties.authentication_data, Some(Bytes::new()));
    assert_eq!(
        client_err(V5, &[0xF0, 0x02, 0x18, 0x00]),
        MqttError::AuthMethodMissing
    );
    assert_eq!(
        client_err(V5, &[0xF0, 0x01, 0x19]),
        MqttError::AuthMethodMissing
    );
    assert_eq!(
        client_err(V5, &[0xF0, 0x02, 0x01, 0x00]),
        MqttError::InvalidReasonCode {
            packet: PacketType::Auth,
            code: 0x01
        }
    );
    // AUTH does not exist in 3.1.1: type 15 is reserved there.
    assert_eq!(
        client_err(V3, &[0xF0, 0x00]),
        MqttError::ReservedPacketType(15)
    );
}
