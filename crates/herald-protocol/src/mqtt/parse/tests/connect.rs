//! `CONNECT` and `CONNACK`.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;

use super::*;
use crate::mqtt::{ConnAck, Connect, ConnectProperties, Will, WillProperties};

/// `mosquitto_sub -t a`: 3.1.1, clean session, keep alive 60, empty client id (`mqtt.md`
/// §4.1).
const MOSQUITTO_SUB: [u8; 14] = [
    0x10, 0x0C, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00,
];

fn connect(version: Version, flags: u8, props: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut body = s("MQTT");
    body.extend_from_slice(&[version.level(), flags, 0, 10]);
    body.extend_from_slice(props);
    body.extend_from_slice(payload);
    packet(0x10, &body)
}

fn decoded_connect(version: Version, input: &[u8]) -> Connect {
    match client(version, input) {
        Packet::Connect(connect) => *connect,
        other => panic!("not a CONNECT: {other:?}"),
    }
}

#[test]
fn mosquitto_sub_connect() {
    let expected = Connect {
        version: V3,
        clean_start: true,
        keep_alive: 60,
        client_id: String::new(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    };
    // A CONNECT is decoded by its own level, whatever the connection's version says.
    assert_eq!(decoded_connect(V3, &MOSQUITTO_SUB), expected);
    assert_eq!(decoded_connect(V5, &MOSQUITTO_SUB), expected);
}

#[test]
fn spec_example_flags_with_will_user_and_password() {
    // v3 §3.1.2.10 and v5 §3.1.2.12: flags 0xCE = user name, password, Will QoS 1, Will,
    // Clean; keep alive 10; v5 adds Session Expiry Interval 10.
    let payload = [s("client"), s("will/t"), s("bye"), s("user"), s("pw")].concat();
    let v3 = connect(V3, 0xCE, &[], &payload);
    let expected = Connect {
        version: V3,
        clean_start: true,
        keep_alive: 10,
        client_id: "client".into(),
        will: Some(Will {
            topic: "will/t".try_into().expect("valid"),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: WillProperties::default(),
        }),
        username: Some("user".into()),
        password: Some(Bytes::from_static(b"pw")),
        properties: ConnectProperties::default(),
    };
    assert_eq!(decoded_connect(V3, &v3), expected);

    let payload = [
        s("client"),
        vec![7, 0x18, 0, 0, 0, 5, 0x01, 1], // Will Delay 5, UTF-8 payload
        s("will/t"),
        s("bye"),
        s("user"),
        s("pw"),
    ]
    .concat();
    let v5 = connect(V5, 0xCE, &[5, 0x11, 0, 0, 0, 10], &payload);
    let mut expected = expected;
    expected.version = V5;
    expected.properties.session_expiry_interval = Some(10);
    if let Some(will) = &mut expected.will {
        will.properties.will_delay_interval = Some(5);
        will.properties.payload_format_indicator = Some(crate::mqtt::PayloadFormat::Utf8);
    }
    assert_eq!(decoded_connect(V5, &v5), expected);
}

#[test]
fn every_connect_property() {
    let props = [
        vec![0x11, 0, 0, 0, 30],                        // Session Expiry Interval
        vec![0x15, 0, 5, b'S', b'C', b'R', b'A', b'M'], // Authentication Method
        vec![0x16, 0, 2, 1, 2],                         // Authentication Data
        vec![0x17, 0],                                  // Request Problem Information
        vec![0x19, 1],                                  // Request Response Information
        vec![0x21, 0, 20],                              // Receive Maximum
        vec![0x22, 0, 5],                               // Topic Alias Maximum
        vec![0x27, 0, 1, 0, 0],                         // Maximum Packet Size
        [vec![0x26], s("k"), s("v1")].concat(),         // User Property
        [vec![0x26], s("k"), s("v2")].concat(),         // ... repeated, in order
    ]
    .concat();
    let block = [vec![props.len() as u8], props].concat();
    let decoded = decoded_connect(V5, &connect(V5, 0x02, &block, &s("id")));
    let expected = ConnectProperties {
        session_expiry_interval: Some(30),
        authentication_method: Some("SCRAM".into()),
        authentication_data: Some(Bytes::from_static(&[1, 2])),
        request_problem_information: Some(false),
        request_response_information: Some(true),
        receive_maximum: NonZeroU16::new(20),
        topic_alias_maximum: Some(5),
        maximum_packet_size: NonZeroU32::new(65536),
        user_properties: vec![UserProperty::new("k", "v1"), UserProperty::new("k", "v2")],
    };
    assert_eq!(decoded.properties, expected);
}

#[test]
fn protocol_name_and_level() {
    let mut bad_name = MOSQUITTO_SUB;
    bad_name[7] = b'X';
    assert_eq!(client_err(V3, &bad_name), MqttError::InvalidProtocolName);
    for level in [0, 3, 6, 255] {
        let mut input = MOSQUITTO_SUB;
        input[8] = level;
        assert_eq!(
            client_err(V3, &input),
            MqttError::UnsupportedProtocolVersion(level)
        );
    }
    // MQTT 3.1 (what Paho falls back to): answered with return code 1.
    let mqisdp = packet(0x10, &[s("MQIsdp"), vec![3, 2, 0, 60, 0, 0]].concat());
    let err = client_err(V3, &mqisdp);
    assert_eq!(err, MqttError::UnsupportedProtocolVersion(3));
    assert_eq!(err.reason_code(), ReasonCode::UnsupportedProtocolVersion);
}

#[test]
fn connect_flag_rules() {
    let payload = s("id");
    let err = |version, flags| client_err(version, &connect(version, flags, &[0], &payload));
    for version in [V3, V5] {
        assert_eq!(err(version, 0x03), MqttError::ReservedConnectFlag);
        // Will QoS or Will Retain without the Will Flag.
        assert_eq!(err(version, 0x08), MqttError::WillFlagsWithoutWill);
        assert_eq!(err(version, 0x20), MqttError::WillFlagsWithoutWill);
        // Will QoS 3.
        assert_eq!(
            err(version, 0x1C),
            MqttError::InvalidQos {
                packet: PacketType::Connect
            }
        );
    }
    // 3.1.1 needs a user name with a password; MQTT 5 does not.
    let v3 = connect(V3, 0x42, &[], &[s("id"), s("pw")].concat());
    assert_eq!(client_err(V3, &v3), MqttError::PasswordWithoutUsername);
    let v5 = connect(V5, 0x42, &[0], &[s("id"), s("pw")].concat());
    assert_eq!(
        decoded_connect(V5, &v5).password,
        Some(Bytes::from_static(b"pw"))
    );
}

#[test]
fn connect_field_rules() {
    let missing_username = connect(V3, 0x82, &[], &s("id"));
    assert_eq!(
        client_err(V3, &missing_username),
        MqttError::Truncated {
            packet: PacketType::Connect
        }
    );
    let extra = connect(V3, 0x02, &[], &[s("id"), vec![0]].concat());
    assert_eq!(
        client_err(V3, &extra),
        MqttError::TrailingBytes {
            packet: PacketType::Connect
        }
    );
    let bad_id = connect(V3, 0x02, &[], &[0, 2, b'a', 0xFF]);
    assert_eq!(
        client_err(V3, &bad_id),
        MqttError::InvalidUtf8 {
            packet: PacketType::Connect
        }
    );
    let nul_user = connect(V3, 0x82, &[], &[s("id"), s("a\0")].concat());
    assert_eq!(
        client_err(V3, &nul_user),
        MqttError::NullCharacter {
            packet: PacketType::Connect
        }
    );
    for (topic, error) in [("", TopicError::Empty), ("a/#", TopicError::WildcardInName)] {
        let will = connect(V3, 0x06, &[], &[s("id"), s(topic), s("m")].concat());
        let err = client_err(V3, &will);
        assert_eq!(err, MqttError::InvalidTopicName(error));
        assert_eq!(err.reason_code(), ReasonCode::TopicNameInvalid);
    }
    // A non-minimal Remaining Length is fine in 3.1.1, not in MQTT 5.
    let mut long = vec![0x10, 0x8C, 0x00];
    long.extend_from_slice(&MOSQUITTO_SUB[2..]);
    assert_eq!(decoded_connect(V5, &long).keep_alive, 60);
    let mut long_v5 = long.clone();
    long_v5[9] = 5;
    long_v5.push(0); // the property block
    long_v5[1] = 0x8D;
    assert_eq!(
        client_err(V3, &long_v5),
        MqttError::NonMinimalVarint {
            packet: PacketType::Connect
        }
    );
}

#[test]
fn connect_property_rules() {
    let err = |props: &[u8]| client_err(V5, &connect(V5, 0x02, props, &s("id")));
    let connect_packet = PacketType::Connect;
    assert_eq!(
        err(&[3, 0x16, 0, 0]),
        MqttError::AuthDataWithoutMethod,
        "data without method"
    );
    assert_eq!(
        err(&[3, 0x21, 0, 0]),
        MqttError::InvalidPropertyValue {
            packet: connect_packet,
            id: 0x21
        }
    );
    assert_eq!(
        err(&[5, 0x27, 0, 0, 0, 0]),
        MqttError::InvalidPropertyValue {
            packet: connect_packet,
            id: 0x27
        }
    );
    assert_eq!(
        err(&[2, 0x17, 2]),
        MqttError::InvalidPropertyValue {
            packet: connect_packet,
            id: 0x17
        }
    );
    assert_eq!(
        err(&[6, 0x21, 0, 1, 0x21, 0, 2]),
        MqttError::DuplicateProperty {
            packet: connect_packet,
            id: 0x21
        }
    );
    assert_eq!(
        err(&[3, 0x23, 0, 1]),
        MqttError::PropertyNotAllowed {
            packet: connect_packet,
            id: 0x23
        }
    );
    assert_eq!(
        err(&[2, 0x04, 0]),
        MqttError::UnknownProperty {
            packet: connect_packet,
            id: 4
        }
    );
    // A property running past its block, and a block running past the packet.
    assert_eq!(
        err(&[2, 0x21, 0]),
        MqttError::Truncated {
            packet: connect_packet
        }
    );
    assert_eq!(
        err(&[9]),
        MqttError::Truncated {
            packet: connect_packet
        }
    );
    // Will properties are checked against the Will's set.
    let will = |props: &[u8]| {
        let payload = [s("id"), props.to_vec(), s("t"), s("m")].concat();
        client_err(V5, &connect(V5, 0x06, &[0], &payload))
    };
    assert_eq!(
        will(&[5, 0x11, 0, 0, 0, 1]),
        MqttError::PropertyNotAllowed {
            packet: connect_packet,
            id: 0x11
        }
    );
    let wildcard_response = [vec![6, 0x08], s("a/+")].concat();
    assert_eq!(
        will(&wildcard_response),
        MqttError::InvalidPropertyValue {
            packet: connect_packet,
            id: 0x08
        }
    );
}

#[test]
fn connack_vectors() {
    let accepted = ConnAck::default();
    assert_eq!(
        server(V3, &[0x20, 0x02, 0x00, 0x00]),
        Packet::ConnAck(Box::new(accepted.clone()))
    );
    assert_eq!(
        server(V5, &[0x20, 0x03, 0x00, 0x00, 0x00]),
        Packet::ConnAck(Box::new(accepted))
    );
    let refused = ConnAck {
        reason_code: ReasonCode::UnsupportedProtocolVersion,
        ..ConnAck::default()
    };
    assert_eq!(
        server(V3, &[0x20, 0x02, 0x00, 0x01]),
        Packet::ConnAck(Box::new(refused))
    );
    let resumed = server(V3, &[0x20, 0x02, 0x01, 0x00]);
    assert!(matches!(resumed, Packet::ConnAck(c) if c.session_present));
    // Every CONNACK property.
    let props = [
        vec![
            0x11, 0, 0, 0, 9, 0x13, 0, 30, 0x21, 0, 10, 0x22, 0, 4, 0x24, 1, 0x25, 0,
        ],
        vec![0x27, 0, 0, 1, 0, 0x28, 0, 0x29, 1, 0x2A, 0],
        [vec![0x12], s("gen-1")].concat(),
        [vec![0x1A], s("resp")].concat(),
        [vec![0x1C], s("other:1883")].concat(),
        [vec![0x1F], s("why")].concat(),
        [vec![0x15], s("M"), vec![0x16, 0, 1, 9]].concat(),
    ]
    .concat();
    let body = [vec![0, 0, props.len() as u8], props].concat();
    let Packet::ConnAck(connack) = server(V5, &packet(0x20, &body)) else {
        panic!("not a CONNACK");
    };
    let p = &connack.properties;
    assert_eq!(p.session_expiry_interval, Some(9));
    assert_eq!(p.server_keep_alive, Some(30));
    assert_eq!(p.receive_maximum.map(NonZeroU16::get), Some(10));
    assert_eq!(p.topic_alias_maximum, Some(4));
    assert_eq!(p.maximum_qos, Some(QoS::AtLeastOnce));
    assert_eq!(p.retain_available, Some(false));
    assert_eq!(p.maximum_packet_size.map(NonZeroU32::get), Some(256));
    assert_eq!(p.wildcard_subscription_available, Some(false));
    assert_eq!(p.subscription_identifiers_available, Some(true));
    assert_eq!(p.shared_subscription_available, Some(false));
    assert_eq!(p.assigned_client_identifier.as_deref(), Some("gen-1"));
    assert_eq!(p.response_information.as_deref(), Some("resp"));
    assert_eq!(p.server_reference.as_deref(), Some("other:1883"));
    assert_eq!(p.reason_string.as_deref(), Some("why"));
    assert_eq!(p.authentication_method.as_deref(), Some("M"));
    assert_eq!(p.authentication_data, Some(Bytes::from_static(&[9])));
}

#[test]
fn connack_rules() {
    let connack = PacketType::ConnAck;
    assert_eq!(
        server_err(V3, &[0x20, 0x02, 0x02, 0x00]),
        MqttError::ReservedConnAckFlags
    );
    assert_eq!(
        server_err(V3, &[0x20, 0x02, 0x01, 0x05]),
        MqttError::SessionPresentOnError
    );
    assert_eq!(
        server_err(V3, &[0x20, 0x02, 0x00, 0x06]),
        MqttError::InvalidReasonCode {
            packet: connack,
            code: 6
        }
    );
    // 0x8E (Session taken over) is a DISCONNECT code, not a CONNACK one.
    assert_eq!(
        server_err(V5, &[0x20, 0x03, 0x00, 0x8E, 0x00]),
        MqttError::InvalidReasonCode {
            packet: connack,
            code: 0x8E
        }
    );
    // MQTT 5 CONNACK always has a property block.
    assert_eq!(
        server_err(V5, &[0x20, 0x02, 0x00, 0x00]),
        MqttError::Truncated { packet: connack }
    );
    assert_eq!(
        server_err(V3, &[0x20, 0x03, 0x00, 0x00, 0x00]),
        MqttError::TrailingBytes { packet: connack }
    );
    // Maximum QoS 2 is not a value it may take.
    assert_eq!(
        server_err(V5, &[0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02]),
        MqttError::InvalidPropertyValue {
            packet: connack,
            id: 0x24
        }
    );
}
