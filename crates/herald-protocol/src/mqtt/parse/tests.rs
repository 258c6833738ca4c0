//! Hand-written vectors for the MQTT decoders: byte-exact packets from the specifications and
//! the reference (`mqtt.md` §2, §4), and one case per validation rule.

use std::num::NonZeroU16;

use bytes::{Bytes, BytesMut};

use super::{connect_version, parse_client, parse_server};
use crate::mqtt::{
    MqttError, MqttLimits, Packet, PacketId, PacketType, QoS, QosPid, ReasonCode, RetainHandling,
    SubscriptionId, TopicError, UserProperty, Version,
};

const V3: Version = Version::V311;
const V5: Version = Version::V5;

/// A packet from its first byte and body: the Remaining Length is computed.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let byte = (len & 0x7F) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(body);
    out
}

/// A length-prefixed string or binary field.
fn s(text: &str) -> Vec<u8> {
    let mut out = (text.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

fn id(value: u16) -> PacketId {
    PacketId::new(value).expect("non-zero")
}

type Parser = fn(&mut BytesMut, &MqttLimits, Version) -> Result<Option<Packet>, MqttError>;

/// Decodes exactly one packet filling `input`; checks every proper prefix is `Ok(None)`
/// and leaves the buffer alone.
#[track_caller]
fn one_with(parse: Parser, version: Version, input: &[u8]) -> Result<Packet, MqttError> {
    let limits = MqttLimits::default();
    for cut in 0..input.len() {
        let mut partial = BytesMut::from(&input[..cut]);
        if let Ok(result) = parse(&mut partial, &limits, version) {
            assert_eq!(result, None, "a prefix of {cut} bytes decoded");
            assert_eq!(&partial[..], &input[..cut], "a prefix was consumed");
        }
    }
    let mut buf = BytesMut::from(input);
    match parse(&mut buf, &limits, version) {
        Ok(Some(packet)) => {
            assert!(buf.is_empty(), "packet not consumed entirely");
            Ok(packet)
        }
        Ok(None) => panic!("incomplete packet {input:02x?}"),
        Err(err) => {
            assert_eq!(&buf[..], input, "buffer changed on error");
            Err(err)
        }
    }
}

#[track_caller]
fn client(version: Version, input: &[u8]) -> Packet {
    one_with(parse_client, version, input).expect("valid packet")
}

#[track_caller]
fn server(version: Version, input: &[u8]) -> Packet {
    one_with(parse_server, version, input).expect("valid packet")
}

#[track_caller]
fn client_err(version: Version, input: &[u8]) -> MqttError {
    one_with(parse_client, version, input).expect_err("invalid packet")
}

#[track_caller]
fn server_err(version: Version, input: &[u8]) -> MqttError {
    one_with(parse_server, version, input).expect_err("invalid packet")
}

/// The first error `input` gives, possibly before it is complete.
#[track_caller]
fn early_err(version: Version, input: &[u8]) -> MqttError {
    let mut buf = BytesMut::from(input);
    let err = parse_client(&mut buf, &MqttLimits::default(), version).expect_err("invalid");
    assert_eq!(&buf[..], input);
    err
}

mod connect;
mod others;

#[test]
fn a_buffer_of_several_packets_decodes_in_order() {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0x10, 0x0C, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0]);
    buf.extend_from_slice(&packet(0x30, &[s("a"), b"hi".to_vec()].concat()));
    buf.extend_from_slice(&[0xE0, 0x00, 0xC0]);
    let limits = MqttLimits::default();
    let mut kinds = Vec::new();
    while let Some(packet) = parse_client(&mut buf, &limits, V3).expect("valid") {
        kinds.push(packet.packet_type());
    }
    assert_eq!(
        kinds,
        [
            PacketType::Connect,
            PacketType::Publish,
            PacketType::Disconnect
        ]
    );
    assert_eq!(&buf[..], [0xC0], "the partial PINGREQ stays buffered");
}

#[test]
fn payloads_are_slices_of_the_buffer() {
    let input = packet(0x30, &[s("t"), b"payload".to_vec()].concat());
    let mut buf = BytesMut::from(&input[..]);
    let before = buf.as_ptr() as usize;
    let Some(Packet::Publish(publish)) =
        parse_client(&mut buf, &MqttLimits::default(), V3).expect("valid")
    else {
        panic!("not a PUBLISH");
    };
    assert_eq!(publish.payload, Bytes::from_static(b"payload"));
    let at = publish.payload.as_ptr() as usize;
    assert_eq!(at - before, input.len() - 7, "the payload was copied");
}

#[test]
fn fixed_header_rules_fail_before_the_body_arrives() {
    let publish = PacketType::Publish;
    assert_eq!(early_err(V3, &[0x00]), MqttError::ReservedPacketType(0));
    assert_eq!(early_err(V3, &[0xF0]), MqttError::ReservedPacketType(15));
    assert_eq!(
        early_err(V3, &[0x36]),
        MqttError::InvalidQos { packet: publish }
    );
    assert_eq!(early_err(V5, &[0x38]), MqttError::DupAtQos0);
    assert_eq!(
        early_err(V3, &[0x41]),
        MqttError::InvalidFlags {
            packet: PacketType::PubAck,
            flags: 1
        }
    );
    assert_eq!(
        early_err(V3, &[0x60]),
        MqttError::InvalidFlags {
            packet: PacketType::PubRel,
            flags: 0
        }
    );
    assert_eq!(
        early_err(V3, &[0x80]),
        MqttError::InvalidFlags {
            packet: PacketType::Subscribe,
            flags: 0
        }
    );
    assert_eq!(
        early_err(V3, &[0xA0]),
        MqttError::InvalidFlags {
            packet: PacketType::Unsubscribe,
            flags: 0
        }
    );
    assert_eq!(
        early_err(V3, &[0x12]),
        MqttError::InvalidFlags {
            packet: PacketType::Connect,
            flags: 2
        }
    );
    assert_eq!(
        early_err(V3, &[0x30, 0x80, 0x80, 0x80, 0x80]),
        MqttError::VarintTooLong { packet: publish }
    );
    let small = MqttLimits {
        max_packet_size: 10,
    };
    let mut buf = BytesMut::from(&[0x30, 0x09][..]);
    assert_eq!(
        parse_client(&mut buf, &small, V3),
        Err(MqttError::PacketTooLarge { size: 11, max: 10 })
    );
    let mut buf = BytesMut::from(&[0x30, 0x08][..]);
    assert_eq!(parse_client(&mut buf, &small, V3), Ok(None));
    let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x80][..]);
    assert_eq!(parse_client(&mut buf, &small, V3), Ok(None));
}

#[test]
fn the_largest_remaining_length() {
    // 268,435,455 in four bytes is legal; the limit refuses it, nothing is buffered.
    let limits = MqttLimits {
        max_packet_size: MqttLimits::PROTOCOL_MAX_PACKET_SIZE,
    };
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    assert_eq!(parse_client(&mut buf, &limits, V5), Ok(None));
    assert_eq!(
        early_err(V5, &[0x30, 0xFF, 0xFF, 0xFF, 0x7F]),
        MqttError::PacketTooLarge {
            size: MqttLimits::PROTOCOL_MAX_PACKET_SIZE,
            max: MqttLimits::DEFAULT_MAX_PACKET_SIZE
        }
    );
}

#[test]
fn remaining_length_must_be_minimal_in_v5_only() {
    let ping = [0xC0, 0x80, 0x00];
    assert_eq!(client(V3, &ping), Packet::PingReq);
    assert_eq!(
        client_err(V5, &ping),
        MqttError::NonMinimalVarint {
            packet: PacketType::PingReq
        }
    );
}

#[test]
fn direction() {
    use PacketType as P;
    for (bytes, packet) in [
        (&[0x20, 0x02, 0, 0][..], P::ConnAck),
        (&[0x90, 0x03, 0, 1, 0][..], P::SubAck),
        (&[0xB0, 0x02, 0, 1][..], P::UnsubAck),
        (&[0xD0, 0x00][..], P::PingResp),
    ] {
        assert_eq!(early_err(V5, bytes), MqttError::UnexpectedPacket(packet));
    }
    let mut buf = BytesMut::new();
    for (bytes, packet, version) in [
        (&[0x10, 0x00][..], P::Connect, V5),
        (&[0x82, 0x00][..], P::Subscribe, V5),
        (&[0xA2, 0x00][..], P::Unsubscribe, V5),
        (&[0xC0, 0x00][..], P::PingReq, V5),
        (&[0xE0, 0x00][..], P::Disconnect, V3),
    ] {
        buf.clear();
        buf.extend_from_slice(bytes);
        assert_eq!(
            parse_server(&mut buf, &MqttLimits::default(), version),
            Err(MqttError::UnexpectedPacket(packet))
        );
    }
    assert_eq!(
        server(V5, &[0xE0, 0x00]),
        Packet::Disconnect(Default::default())
    );
}

#[test]
fn connect_version_reads_name_and_level() {
    let v3 = [0x10, 0x0C, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0];
    assert_eq!(connect_version(&v3), Some(V3));
    assert_eq!(connect_version(&v3[..9]), Some(V3));
    assert_eq!(connect_version(&v3[..8]), None);
    let mut v5 = v3;
    v5[8] = 5;
    assert_eq!(connect_version(&v5), Some(V5));
    v5[8] = 6;
    assert_eq!(connect_version(&v5), None);
    let mqisdp = packet(0x10, &[s("MQIsdp"), vec![3, 2, 0, 60, 0, 0]].concat());
    assert_eq!(connect_version(&mqisdp), None);
    assert_eq!(connect_version(&[0x30, 0x00]), None);
    assert_eq!(connect_version(&[]), None);
    // A long Remaining Length is skipped.
    let mut long = vec![0x10, 0x80, 0x01];
    long.extend_from_slice(&v3[2..9]);
    assert_eq!(connect_version(&long), Some(V3));
}
