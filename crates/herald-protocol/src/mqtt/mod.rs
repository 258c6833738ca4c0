//! MQTT 3.1.1 and 5.0, as a broker speaks it (see the project's `mqtt.md`).
//!
//! - `mqtt` (this file): the small shared types ([`Version`], [`QoS`], [`PacketId`],
//!   [`QosPid`], [`PacketType`], [`MqttLimits`]) and the [`Packet`] enum.
//! - [`packet`]: one struct per packet ([`Connect`], [`Publish`], [`Subscribe`], ...).
//! - [`properties`]: the MQTT 5 property sets, one struct per packet kind, with every property
//!   id, its wire type and its value rules.
//! - [`reason`]: [`ReasonCode`] (MQTT 5) and [`ConnectReturnCode`] (3.1.1), with the mapping
//!   between them.
//! - [`topic`]: [`TopicName`] and [`TopicFilter`] (wildcards, `$share/<group>/<filter>`).
//! - [`subject`]: the MQTT topic ↔ herald subject mapping nats-server uses.
//! - [`parse`]: [`parse_client`] (what a server reads) and [`parse_server`] (what a client
//!   reads). Both are incremental: `Ok(None)` until a whole packet is buffered.
//! - [`encode`](mod@encode): [`encode()`] writes any packet in either version; [`encode_publish_head`] is
//!   the delivery path's zero-copy variant.
//!
//! The codec is sans-I/O and stateless: it knows nothing of sessions, topic aliases in use,
//! packet ids in flight or which packet may come when (a second `CONNECT` decodes fine; the
//! listener rejects it). The protocol version is known once `CONNECT` is read, so every
//! decoder and encoder takes it as a parameter.
//!
//! Every [`MqttError`] is fatal to the connection: framing is lost after a bad packet. The
//! error says which rule was broken and, through [`MqttError::reason_code`], which MQTT 5
//! reason code the broker sends (in `CONNACK` for a bad `CONNECT`, in `DISCONNECT` after
//! that) before it closes. A 3.1.1 connection is closed without a word, except that an
//! unsupported protocol level is answered with the 3.1.1 `CONNACK` return code 1 (see
//! [`connect_version`]).

pub mod encode;
mod error;
pub mod packet;
pub mod parse;
pub mod properties;
pub mod reason;
pub mod subject;
pub mod topic;

use std::fmt;
use std::num::NonZeroU16;

pub use encode::{encode, encode_publish_head, encoded_len};
pub use error::{EncodeError, MqttError};
pub use packet::{
    Ack, Auth, ConnAck, Connect, Disconnect, Publish, RetainHandling, SubAck, Subscribe,
    Subscription, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};
pub use parse::{connect_version, parse_client, parse_server};
pub use properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PayloadFormat, PublishProperties, SubscribeProperties, SubscriptionId, UnsubscribeProperties,
    UserProperty, WillProperties,
};
pub use reason::{ConnectReturnCode, ReasonCode};
pub use subject::{filter_to_subject, parent_subject, subject_to_topic, topic_to_subject};
pub use topic::{TopicError, TopicFilter, TopicName};

/// The protocol version of a connection, fixed by its `CONNECT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// MQTT 3.1.1, protocol level 4.
    V311,
    /// MQTT 5.0, protocol level 5.
    V5,
}

impl Version {
    /// The protocol level byte sent in `CONNECT`: 4 or 5.
    #[must_use]
    pub fn level(self) -> u8 {
        match self {
            Self::V311 => 4,
            Self::V5 => 5,
        }
    }

    /// The version for a protocol level byte, if herald speaks it.
    #[must_use]
    pub fn from_level(level: u8) -> Option<Self> {
        match level {
            4 => Some(Self::V311),
            5 => Some(Self::V5),
            _ => None,
        }
    }
}

/// A quality of service level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    /// QoS 0: at most once, no acknowledgement.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: at least once (`PUBACK`).
    AtLeastOnce = 1,
    /// QoS 2: exactly once (`PUBREC`, `PUBREL`, `PUBCOMP`).
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for its two-bit value; `None` for 3, which is always a violation.
    #[must_use]
    pub fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }

    /// The two-bit wire value.
    #[must_use]
    pub fn bits(self) -> u8 {
        self as u8
    }
}

/// A packet identifier: a two-byte integer that is never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PacketId(NonZeroU16);

impl PacketId {
    /// The id for `value`; `None` for 0, which the protocol forbids.
    #[must_use]
    pub fn new(value: u16) -> Option<Self> {
        NonZeroU16::new(value).map(Self)
    }

    /// The numeric value (1..=65535).
    #[must_use]
    pub fn get(self) -> u16 {
        self.0.get()
    }
}

impl From<NonZeroU16> for PacketId {
    fn from(value: NonZeroU16) -> Self {
        Self(value)
    }
}

impl fmt::Display for PacketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The QoS of a `PUBLISH` together with the packet id that QoS 1 and 2 need, so a QoS 0
/// message with an id (or a QoS 1 message without one) cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum QosPid {
    /// QoS 0: no packet id.
    #[default]
    AtMostOnce,
    /// QoS 1 with its packet id.
    AtLeastOnce(PacketId),
    /// QoS 2 with its packet id.
    ExactlyOnce(PacketId),
}

impl QosPid {
    /// `qos` with `id`; the id is dropped for QoS 0.
    #[must_use]
    pub fn new(qos: QoS, id: PacketId) -> Self {
        match qos {
            QoS::AtMostOnce => Self::AtMostOnce,
            QoS::AtLeastOnce => Self::AtLeastOnce(id),
            QoS::ExactlyOnce => Self::ExactlyOnce(id),
        }
    }

    /// The QoS level.
    #[must_use]
    pub fn qos(self) -> QoS {
        match self {
            Self::AtMostOnce => QoS::AtMostOnce,
            Self::AtLeastOnce(_) => QoS::AtLeastOnce,
            Self::ExactlyOnce(_) => QoS::ExactlyOnce,
        }
    }

    /// The packet id, `None` for QoS 0.
    #[must_use]
    pub fn packet_id(self) -> Option<PacketId> {
        match self {
            Self::AtMostOnce => None,
            Self::AtLeastOnce(id) | Self::ExactlyOnce(id) => Some(id),
        }
    }
}

/// The control packet type, the high four bits of the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `CONNECT` (1), client to server.
    Connect = 1,
    /// `CONNACK` (2), server to client.
    ConnAck = 2,
    /// `PUBLISH` (3), both ways.
    Publish = 3,
    /// `PUBACK` (4), both ways.
    PubAck = 4,
    /// `PUBREC` (5), both ways.
    PubRec = 5,
    /// `PUBREL` (6), both ways.
    PubRel = 6,
    /// `PUBCOMP` (7), both ways.
    PubComp = 7,
    /// `SUBSCRIBE` (8), client to server.
    Subscribe = 8,
    /// `SUBACK` (9), server to client.
    SubAck = 9,
    /// `UNSUBSCRIBE` (10), client to server.
    Unsubscribe = 10,
    /// `UNSUBACK` (11), server to client.
    UnsubAck = 11,
    /// `PINGREQ` (12), client to server.
    PingReq = 12,
    /// `PINGRESP` (13), server to client.
    PingResp = 13,
    /// `DISCONNECT` (14): client to server in 3.1.1, both ways in 5.0.
    Disconnect = 14,
    /// `AUTH` (15), MQTT 5 only, both ways.
    Auth = 15,
}

impl PacketType {
    /// The type for the high four bits of a first byte; `None` for the reserved 0.
    #[must_use]
    pub fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            1 => Self::Connect,
            2 => Self::ConnAck,
            3 => Self::Publish,
            4 => Self::PubAck,
            5 => Self::PubRec,
            6 => Self::PubRel,
            7 => Self::PubComp,
            8 => Self::Subscribe,
            9 => Self::SubAck,
            10 => Self::Unsubscribe,
            11 => Self::UnsubAck,
            12 => Self::PingReq,
            13 => Self::PingResp,
            14 => Self::Disconnect,
            15 => Self::Auth,
            _ => return None,
        })
    }

    /// The flags every packet but `PUBLISH` must carry in the low four bits: `0b0010` for
    /// `PUBREL`, `SUBSCRIBE` and `UNSUBSCRIBE`, zero otherwise. `None` for `PUBLISH`, whose
    /// flags are DUP, QoS and RETAIN.
    #[must_use]
    pub fn fixed_flags(self) -> Option<u8> {
        match self {
            Self::Publish => None,
            Self::PubRel | Self::Subscribe | Self::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }

    /// The packet's name as the specifications write it, e.g. `"PUBLISH"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect => "CONNECT",
            Self::ConnAck => "CONNACK",
            Self::Publish => "PUBLISH",
            Self::PubAck => "PUBACK",
            Self::PubRec => "PUBREC",
            Self::PubRel => "PUBREL",
            Self::PubComp => "PUBCOMP",
            Self::Subscribe => "SUBSCRIBE",
            Self::SubAck => "SUBACK",
            Self::Unsubscribe => "UNSUBSCRIBE",
            Self::UnsubAck => "UNSUBACK",
            Self::PingReq => "PINGREQ",
            Self::PingResp => "PINGRESP",
            Self::Disconnect => "DISCONNECT",
            Self::Auth => "AUTH",
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Limits for the MQTT decoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MqttLimits {
    /// Largest packet accepted, counted as MQTT 5's Maximum Packet Size counts: the whole
    /// packet, fixed header included. Checked from the fixed header, before the body is
    /// buffered. A broker advertises it to MQTT 5 clients in `CONNACK`. Default
    /// [`MqttLimits::DEFAULT_MAX_PACKET_SIZE`].
    pub max_packet_size: usize,
}

impl MqttLimits {
    /// The default maximum packet size: a 1 MiB payload (herald's default `max_payload`) plus
    /// 64 KiB for the topic and properties.
    pub const DEFAULT_MAX_PACKET_SIZE: usize = 1024 * 1024 + 64 * 1024;
    /// The largest packet the protocol can express: a one-byte fixed header, a four-byte
    /// Remaining Length and 268,435,455 bytes.
    pub const PROTOCOL_MAX_PACKET_SIZE: usize = 1 + 4 + 268_435_455;
}

impl Default for MqttLimits {
    fn default() -> Self {
        Self {
            max_packet_size: Self::DEFAULT_MAX_PACKET_SIZE,
        }
    }
}

/// One MQTT control packet, in either direction and either version.
///
/// Fields that only MQTT 5 has (reason codes, properties) take their default on a 3.1.1
/// connection: decoding leaves them at the default, encoding leaves them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `CONNECT`, boxed: it is large and comes once per connection.
    Connect(Box<Connect>),
    /// `CONNACK`, boxed for the same reason.
    ConnAck(Box<ConnAck>),
    /// `PUBLISH`.
    Publish(Publish),
    /// `PUBACK`: the answer to a QoS 1 `PUBLISH`.
    PubAck(Ack),
    /// `PUBREC`: the first answer to a QoS 2 `PUBLISH`.
    PubRec(Ack),
    /// `PUBREL`: the answer to `PUBREC`.
    PubRel(Ack),
    /// `PUBCOMP`: the answer to `PUBREL`, which ends a QoS 2 flow.
    PubComp(Ack),
    /// `SUBSCRIBE`.
    Subscribe(Subscribe),
    /// `SUBACK`.
    SubAck(SubAck),
    /// `UNSUBSCRIBE`.
    Unsubscribe(Unsubscribe),
    /// `UNSUBACK`.
    UnsubAck(UnsubAck),
    /// `PINGREQ`: the server must answer `PINGRESP`.
    PingReq,
    /// `PINGRESP`.
    PingResp,
    /// `DISCONNECT`.
    Disconnect(Disconnect),
    /// `AUTH` (MQTT 5 only).
    Auth(Auth),
}

impl Packet {
    /// The packet's type.
    #[must_use]
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect(_) => PacketType::Connect,
            Self::ConnAck(_) => PacketType::ConnAck,
            Self::Publish(_) => PacketType::Publish,
            Self::PubAck(_) => PacketType::PubAck,
            Self::PubRec(_) => PacketType::PubRec,
            Self::PubRel(_) => PacketType::PubRel,
            Self::PubComp(_) => PacketType::PubComp,
            Self::Subscribe(_) => PacketType::Subscribe,
            Self::SubAck(_) => PacketType::SubAck,
            Self::Unsubscribe(_) => PacketType::Unsubscribe,
            Self::UnsubAck(_) => PacketType::UnsubAck,
            Self::PingReq => PacketType::PingReq,
            Self::PingResp => PacketType::PingResp,
            Self::Disconnect(_) => PacketType::Disconnect,
            Self::Auth(_) => PacketType::Auth,
        }
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_levels() {
        assert_eq!(Version::V311.level(), 4);
        assert_eq!(Version::V5.level(), 5);
        assert_eq!(Version::from_level(4), Some(Version::V311));
        assert_eq!(Version::from_level(5), Some(Version::V5));
        assert_eq!(Version::from_level(3), None);
        assert_eq!(Version::from_level(6), None);
    }

    #[test]
    fn qos_bits() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            assert_eq!(QoS::from_bits(qos.bits()), Some(qos));
        }
        assert_eq!(QoS::from_bits(3), None);
    }

    #[test]
    fn packet_ids_are_never_zero() {
        assert_eq!(PacketId::new(0), None);
        assert_eq!(PacketId::new(7).map(PacketId::get), Some(7));
        let id = PacketId::new(9).expect("non-zero");
        assert_eq!(QosPid::new(QoS::AtMostOnce, id), QosPid::AtMostOnce);
        assert_eq!(QosPid::new(QoS::ExactlyOnce, id).packet_id(), Some(id));
        assert_eq!(QosPid::new(QoS::AtLeastOnce, id).qos(), QoS::AtLeastOnce);
    }

    #[test]
    fn packet_types_and_fixed_flags() {
        assert_eq!(PacketType::from_bits(0), None);
        for bits in 1..=15 {
            let kind = PacketType::from_bits(bits).expect("defined");
            assert_eq!(kind as u8, bits);
        }
        assert_eq!(PacketType::PubRel.fixed_flags(), Some(2));
        assert_eq!(PacketType::Subscribe.fixed_flags(), Some(2));
        assert_eq!(PacketType::Unsubscribe.fixed_flags(), Some(2));
        assert_eq!(PacketType::PubAck.fixed_flags(), Some(0));
        assert_eq!(PacketType::Publish.fixed_flags(), None);
        assert_eq!(PacketType::UnsubAck.to_string(), "UNSUBACK");
    }
}
