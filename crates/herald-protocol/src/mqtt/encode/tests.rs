//! Hand-written vectors for the MQTT encoders: byte-exact packets from the reference
//! (`mqtt.md` §4) and the 3.1.1 down-mappings.

use bytes::{Bytes, BytesMut};

use super::{MAX_VARINT, checked_remaining, encode, encode_publish_head, encoded_len};
use crate::mqtt::{
    Ack, AckProperties, Auth, ConnAck, Connect, ConnectProperties, Disconnect, EncodeError, Packet,
    PacketId, PacketType, Publish, QoS, QosPid, ReasonCode, SubAck, Subscribe, Subscription,
    SubscriptionOptions, TopicFilter, TopicName, UnsubAck, UserProperty, Version,
};

const V3: Version = Version::V311;
const V5: Version = Version::V5;

fn id(value: u16) -> PacketId {
    PacketId::new(value).expect("non-zero")
}

/// Encodes `packet`, checking `encoded_len` agrees.
#[track_caller]
fn bytes(version: Version, packet: &Packet) -> Vec<u8> {
    let mut buf = BytesMut::from(&b"prefix"[..]);
    let written = encode(&mut buf, version, packet).expect("encodable");
    assert_eq!(written, buf.len() - 6);
    assert_eq!(encoded_len(version, packet), Ok(written));
    buf[6..].to_vec()
}

#[test]
fn connack_vectors() {
    let accepted = Packet::ConnAck(Box::default());
    assert_eq!(bytes(V3, &accepted), [0x20, 0x02, 0x00, 0x00]);
    assert_eq!(bytes(V5, &accepted), [0x20, 0x03, 0x00, 0x00, 0x00]);
    let refused = |reason_code| {
        Packet::ConnAck(Box::new(ConnAck {
            reason_code,
            ..ConnAck::default()
        }))
    };
    assert_eq!(
        bytes(V3, &refused(ReasonCode::UnsupportedProtocolVersion)),
        [0x20, 0x02, 0x00, 0x01]
    );
    assert_eq!(
        bytes(V3, &refused(ReasonCode::Banned)),
        [0x20, 0x02, 0x00, 0x05]
    );
    assert_eq!(
        bytes(V5, &refused(ReasonCode::Banned)),
        [0x20, 0x03, 0x00, 0x8A, 0x00]
    );
    let mut resumed = ConnAck {
        session_present: true,
        ..ConnAck::default()
    };
    resumed.properties.assigned_client_identifier = Some("id".into());
    let resumed = Packet::ConnAck(Box::new(resumed));
    assert_eq!(
        bytes(V5, &resumed),
        [0x20, 0x08, 0x01, 0x00, 0x05, 0x12, 0x00, 0x02, b'i', b'd']
    );
    assert_eq!(bytes(V3, &resumed), [0x20, 0x02, 0x01, 0x00]);
}

#[test]
fn connect_vectors() {
    let mosquitto_sub = Packet::Connect(Box::new(Connect {
        version: V3,
        clean_start: true,
        keep_alive: 60,
        client_id: String::new(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }));
    let expected = [
        0x10, 0x0C, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00,
    ];
    // Encoded in the CONNECT's own version, whatever the call says.
    assert_eq!(bytes(V3, &mosquitto_sub), expected);
    assert_eq!(bytes(V5, &mosquitto_sub), expected);
    let Packet::Connect(mut v5) = mosquitto_sub else {
        unreachable!("built above")
    };
    v5.version = V5;
    v5.username = Some("u".into());
    v5.password = Some(Bytes::from_static(b"p"));
    assert_eq!(
        bytes(V5, &Packet::Connect(v5)),
        [
            0x10, 0x13, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0xC2, 0x00, 0x3C, 0x00, 0x00,
            0x00, 0x00, 0x01, b'u', 0x00, 0x01, b'p'
        ]
    );
}

#[test]
fn publish_vectors() {
    let mut publish = Publish::new(
        TopicName::new("a/b").expect("valid"),
        Bytes::from_static(b"hello"),
    );
    let qos0 = [
        0x30, 0x0A, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o',
    ];
    assert_eq!(bytes(V3, &Packet::Publish(publish.clone())), qos0);
    assert_eq!(
        bytes(V5, &Packet::Publish(publish.clone())),
        [
            0x30, 0x0B, 0x00, 0x03, b'a', b'/', b'b', 0x00, b'h', b'e', b'l', b'l', b'o'
        ]
    );
    publish.qos = QosPid::ExactlyOnce(id(0x0102));
    publish.dup = true;
    publish.retain = true;
    publish.properties.topic_alias = std::num::NonZeroU16::new(2);
    let encoded = bytes(V5, &Packet::Publish(publish.clone()));
    assert_eq!(
        encoded[..13],
        [
            0x3D, 0x10, 0x00, 0x03, b'a', b'/', b'b', 0x01, 0x02, 0x03, 0x23, 0x00, 0x02
        ]
    );
    // 3.1.1 leaves the properties out.
    assert_eq!(
        bytes(V3, &Packet::Publish(publish.clone()))[..9],
        [0x3D, 0x0C, 0x00, 0x03, b'a', b'/', b'b', 0x01, 0x02]
    );

    // The head plus the payload is the whole packet.
    let mut head = BytesMut::new();
    let written = encode_publish_head(&mut head, V5, &publish).expect("encodable");
    assert_eq!(written, head.len());
    head.extend_from_slice(&publish.payload);
    assert_eq!(head[..], encoded[..]);
}

#[test]
fn ack_forms() {
    let ack = Ack::new(id(7));
    for (variant, first) in [
        (Packet::PubAck as fn(Ack) -> Packet, 0x40),
        (Packet::PubRec, 0x50),
        (Packet::PubRel, 0x62),
        (Packet::PubComp, 0x70),
    ] {
        assert_eq!(bytes(V3, &variant(ack.clone())), [first, 0x02, 0x00, 0x07]);
        // MQTT 5 success without properties uses the short form, as mosquitto does.
        assert_eq!(bytes(V5, &variant(ack.clone())), [first, 0x02, 0x00, 0x07]);
    }
    let refused = Ack {
        reason_code: ReasonCode::NotAuthorized,
        ..ack.clone()
    };
    assert_eq!(
        bytes(V5, &Packet::PubAck(refused.clone())),
        [0x40, 0x03, 0x00, 0x07, 0x87]
    );
    // 3.1.1 has no negative ack: a plain one is sent.
    assert_eq!(
        bytes(V3, &Packet::PubAck(refused)),
        [0x40, 0x02, 0x00, 0x07]
    );
    let with_props = Ack {
        properties: AckProperties {
            reason_string: None,
            user_properties: vec![UserProperty::new("k", "v")],
        },
        ..ack
    };
    assert_eq!(
        bytes(V5, &Packet::PubComp(with_props)),
        [
            0x70, 0x0B, 0x00, 0x07, 0x00, 0x07, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v'
        ]
    );
}

#[test]
fn subscribe_and_suback() {
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: id(1),
        properties: Default::default(),
        subscriptions: vec![Subscription {
            filter: TopicFilter::new("a/#").expect("valid"),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: crate::mqtt::RetainHandling::SendIfNew,
            },
        }],
    });
    assert_eq!(
        bytes(V5, &subscribe),
        [
            0x82, 0x09, 0x00, 0x01, 0x00, 0x00, 0x03, b'a', b'/', b'#', 0x1D
        ]
    );
    // 3.1.1 keeps only the QoS.
    assert_eq!(
        bytes(V3, &subscribe),
        [0x82, 0x08, 0x00, 0x01, 0x00, 0x03, b'a', b'/', b'#', 0x01]
    );
    let suback = Packet::SubAck(SubAck {
        packet_id: id(1),
        properties: AckProperties::default(),
        reason_codes: vec![
            ReasonCode::GrantedQos1,
            ReasonCode::NotAuthorized,
            ReasonCode::Success,
        ],
    });
    assert_eq!(
        bytes(V3, &suback),
        [0x90, 0x05, 0x00, 0x01, 0x01, 0x80, 0x00]
    );
    assert_eq!(
        bytes(V5, &suback),
        [0x90, 0x06, 0x00, 0x01, 0x00, 0x01, 0x87, 0x00]
    );
}

#[test]
fn unsuback_ping_disconnect_auth() {
    let unsuback = Packet::UnsubAck(UnsubAck {
        packet_id: id(5),
        properties: AckProperties::default(),
        reason_codes: vec![ReasonCode::NoSubscriptionExisted],
    });
    assert_eq!(bytes(V3, &unsuback), [0xB0, 0x02, 0x00, 0x05]);
    assert_eq!(bytes(V5, &unsuback), [0xB0, 0x04, 0x00, 0x05, 0x00, 0x11]);
    assert_eq!(bytes(V3, &Packet::PingReq), [0xC0, 0x00]);
    assert_eq!(bytes(V5, &Packet::PingResp), [0xD0, 0x00]);
    let normal = Packet::Disconnect(Disconnect::default());
    assert_eq!(bytes(V3, &normal), [0xE0, 0x00]);
    assert_eq!(bytes(V5, &normal), [0xE0, 0x00]);
    let taken_over = Packet::Disconnect(Disconnect {
        reason_code: ReasonCode::SessionTakenOver,
        ..Disconnect::default()
    });
    assert_eq!(bytes(V5, &taken_over), [0xE0, 0x01, 0x8E]);
    assert_eq!(bytes(V3, &taken_over), [0xE0, 0x00]);
    assert_eq!(bytes(V5, &Packet::Auth(Auth::default())), [0xF0, 0x00]);
    let mut buf = BytesMut::from(&b"x"[..]);
    assert_eq!(
        encode(&mut buf, V3, &Packet::Auth(Auth::default())),
        Err(EncodeError::NotInVersion(PacketType::Auth))
    );
    assert_eq!(&buf[..], b"x");
}

#[test]
fn fields_too_long_write_nothing() {
    let connect = Packet::Connect(Box::new(Connect {
        version: V5,
        clean_start: true,
        keep_alive: 0,
        client_id: "x".repeat(65_536),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }));
    let mut buf = BytesMut::new();
    let err = EncodeError::FieldTooLong {
        packet: PacketType::Connect,
        len: 65_536,
    };
    assert_eq!(encode(&mut buf, V5, &connect), Err(err.clone()));
    assert_eq!(encoded_len(V5, &connect), Err(err));
    assert!(buf.is_empty());
    let mut props = Disconnect::default();
    props.properties.reason_string = Some("r".repeat(70_000));
    assert_eq!(
        encode(&mut buf, V5, &Packet::Disconnect(props)),
        Err(EncodeError::FieldTooLong {
            packet: PacketType::Disconnect,
            len: 70_000
        })
    );
    assert!(buf.is_empty());
    assert_eq!(
        checked_remaining(PacketType::Publish, MAX_VARINT),
        Ok(MAX_VARINT)
    );
    assert_eq!(
        checked_remaining(PacketType::Publish, MAX_VARINT + 1),
        Err(EncodeError::PacketTooLarge {
            packet: PacketType::Publish,
            len: MAX_VARINT + 1
        })
    );
}

#[test]
fn remaining_length_encodings() {
    // A payload that needs a two-byte Remaining Length: 128 bytes after a 3-byte topic.
    let publish = Publish::new(
        TopicName::new("t").expect("valid"),
        Bytes::from(vec![0u8; 125]),
    );
    let encoded = bytes(V3, &Packet::Publish(publish));
    assert_eq!(encoded[..3], [0x30, 0x80, 0x01]);
    assert_eq!(encoded.len(), 131);
}
