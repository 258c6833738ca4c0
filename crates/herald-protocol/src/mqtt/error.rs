//! [`MqttError`], what the decoders report, and [`EncodeError`], what the encoders report.

use super::PacketType;
use super::properties;
use super::reason::ReasonCode;
use super::topic::TopicError;

/// The name of a property id, for messages.
fn property_name(property: &u8) -> &'static str {
    properties::kind(*property).map_or("unknown property", |(_, name)| name)
}

/// A violation found while decoding. Every variant is fatal to the connection.
///
/// [`MqttError::reason_code`] is the MQTT 5 reason code to send before closing: in `CONNACK`
/// when decoding the `CONNECT` failed, in `DISCONNECT` otherwise. Most are 0x81 (Malformed
/// Packet) or 0x82 (Protocol Error), as v5 §2.2.2.2, §4.13 and the packet sections assign
/// them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MqttError {
    /// Packet type 0, or 15 (`AUTH`) on a 3.1.1 connection; carries the type.
    #[error("reserved packet type {0}")]
    ReservedPacketType(u8),
    /// The low four bits of the first byte are not what the packet type requires.
    #[error("{packet} with invalid fixed header flags {flags:#06b}")]
    InvalidFlags {
        /// The packet.
        packet: PacketType,
        /// The flags received.
        flags: u8,
    },
    /// A packet the peer never sends: from a client, `CONNACK`, `SUBACK`, `UNSUBACK` or
    /// `PINGRESP`; from a server, `CONNECT`, `SUBSCRIBE`, `UNSUBSCRIBE` or `PINGREQ` (and
    /// `DISCONNECT` in 3.1.1).
    #[error("{0} is not sent in this direction")]
    UnexpectedPacket(PacketType),
    /// A Variable Byte Integer (the Remaining Length, a property length or id, a
    /// Subscription Identifier) with a continuation bit in its fourth byte.
    #[error("{packet}: variable byte integer longer than four bytes")]
    VarintTooLong {
        /// The packet.
        packet: PacketType,
    },
    /// An MQTT 5 Variable Byte Integer not in its shortest form (v5 §1.5.5).
    #[error("{packet}: variable byte integer not in its shortest form")]
    NonMinimalVarint {
        /// The packet.
        packet: PacketType,
    },
    /// The packet is larger than [`MqttLimits::max_packet_size`](super::MqttLimits).
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge {
        /// The whole packet's size, from its fixed header.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A field runs past the end of the packet (or of its property block).
    #[error("{packet}: a field runs past the end of the packet")]
    Truncated {
        /// The packet.
        packet: PacketType,
    },
    /// Bytes are left after the last field of the packet (or of a fixed-size packet).
    #[error("{packet}: bytes left over after the last field")]
    TrailingBytes {
        /// The packet.
        packet: PacketType,
    },
    /// A UTF-8 string field is not valid UTF-8 (surrogates included).
    #[error("{packet}: string is not valid UTF-8")]
    InvalidUtf8 {
        /// The packet.
        packet: PacketType,
    },
    /// A UTF-8 string field contains U+0000.
    #[error("{packet}: string contains U+0000")]
    NullCharacter {
        /// The packet.
        packet: PacketType,
    },
    /// The `CONNECT` protocol name is neither `MQTT` nor (with level 3) `MQIsdp`.
    #[error("protocol name is not MQTT")]
    InvalidProtocolName,
    /// A protocol level herald does not speak (not 4 or 5; `MQIsdp` level 3 included).
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    /// The reserved bit 0 of the `CONNECT` flags is set.
    #[error("CONNECT reserved flag is set")]
    ReservedConnectFlag,
    /// QoS 3 in a `PUBLISH`, a Will or a subscription.
    #[error("{packet}: QoS 3")]
    InvalidQos {
        /// The packet.
        packet: PacketType,
    },
    /// Will QoS or Will Retain set while the Will Flag is not.
    #[error("Will QoS or Will Retain set without the Will Flag")]
    WillFlagsWithoutWill,
    /// 3.1.1 only: the Password Flag without the User Name Flag.
    #[error("Password Flag set without the User Name Flag")]
    PasswordWithoutUsername,
    /// Authentication Data in `CONNECT` without an Authentication Method.
    #[error("Authentication Data without an Authentication Method")]
    AuthDataWithoutMethod,
    /// A non-empty `AUTH` without an Authentication Method.
    #[error("AUTH without an Authentication Method")]
    AuthMethodMissing,
    /// A packet identifier of 0.
    #[error("{packet}: packet identifier 0")]
    ZeroPacketId {
        /// The packet.
        packet: PacketType,
    },
    /// MQTT 5: DUP set on a QoS 0 `PUBLISH`.
    #[error("PUBLISH with DUP set at QoS 0")]
    DupAtQos0,
    /// A `PUBLISH` or Will topic that is not a valid topic name (wildcards, or empty in
    /// 3.1.1 or in a Will).
    #[error("invalid topic name: {0}")]
    InvalidTopicName(TopicError),
    /// MQTT 5: an empty `PUBLISH` topic without a Topic Alias.
    #[error("PUBLISH with an empty topic and no Topic Alias")]
    EmptyTopicWithoutAlias,
    /// A `SUBSCRIBE` or `UNSUBSCRIBE` filter that is not a valid topic filter.
    #[error("invalid topic filter: {0}")]
    InvalidTopicFilter(TopicError),
    /// A `SUBSCRIBE` or `UNSUBSCRIBE` without any filter.
    #[error("{0} without any topic filter")]
    NoTopicFilters(PacketType),
    /// Subscription options with reserved bits set (bits 7-2 in 3.1.1, 7-6 in 5.0).
    #[error("subscription options with reserved bits set")]
    ReservedSubscriptionBits,
    /// MQTT 5: Retain Handling 3.
    #[error("subscription with Retain Handling 3")]
    InvalidRetainHandling,
    /// MQTT 5: No Local on a shared subscription.
    #[error("No Local on a shared subscription")]
    NoLocalOnSharedSubscription,
    /// A property id MQTT 5 does not define.
    #[error("{packet}: unknown property id {id:#04x}")]
    UnknownProperty {
        /// The packet (`CONNECT` for Will properties).
        packet: PacketType,
        /// The id received.
        id: u32,
    },
    /// A property the packet may not carry.
    #[error("{packet}: {} (id {id:#04x}) not allowed", property_name(.id))]
    PropertyNotAllowed {
        /// The packet (`CONNECT` for Will properties).
        packet: PacketType,
        /// The property id.
        id: u8,
    },
    /// A property that may appear once appears again.
    #[error("{packet}: {} (id {id:#04x}) given twice", property_name(.id))]
    DuplicateProperty {
        /// The packet (`CONNECT` for Will properties).
        packet: PacketType,
        /// The property id.
        id: u8,
    },
    /// A property value out of range (see [`properties`]).
    #[error("{packet}: invalid value for {} (id {id:#04x})", property_name(.id))]
    InvalidPropertyValue {
        /// The packet (`CONNECT` for Will properties).
        packet: PacketType,
        /// The property id.
        id: u8,
    },
    /// A property the sender's side may not send: a Subscription Identifier in a client's
    /// `PUBLISH`, a Session Expiry Interval in a server's `DISCONNECT`.
    #[error("{packet}: {} (id {id:#04x}) not allowed in this direction", property_name(.id))]
    PropertyFromWrongSide {
        /// The packet.
        packet: PacketType,
        /// The property id.
        id: u8,
    },
    /// A reason or return code the packet does not allow.
    #[error("{packet}: invalid reason code {code:#04x}")]
    InvalidReasonCode {
        /// The packet.
        packet: PacketType,
        /// The code received.
        code: u8,
    },
    /// `CONNACK` acknowledge flags with reserved bits 7-1 set.
    #[error("CONNACK with reserved acknowledge flags set")]
    ReservedConnAckFlags,
    /// `CONNACK` with Session Present and an error code.
    #[error("CONNACK with Session Present and an error code")]
    SessionPresentOnError,
}

impl MqttError {
    /// The MQTT 5 reason code a server sends for this error before closing the connection
    /// (in `CONNACK` if it happened in `CONNECT`, else in `DISCONNECT`).
    #[must_use]
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            Self::InvalidProtocolName | Self::UnsupportedProtocolVersion(_) => {
                ReasonCode::UnsupportedProtocolVersion
            }
            Self::InvalidTopicName(_) => ReasonCode::TopicNameInvalid,
            Self::InvalidTopicFilter(_) => ReasonCode::TopicFilterInvalid,
            // v5 §3.8.3.1 calls Maximum QoS 3 a Protocol Error; elsewhere QoS 3 is malformed.
            Self::InvalidQos {
                packet: PacketType::Subscribe,
            } => ReasonCode::ProtocolError,
            Self::UnexpectedPacket(_)
            | Self::AuthDataWithoutMethod
            | Self::AuthMethodMissing
            | Self::ZeroPacketId { .. }
            | Self::EmptyTopicWithoutAlias
            | Self::NoTopicFilters(_)
            | Self::InvalidRetainHandling
            | Self::NoLocalOnSharedSubscription
            | Self::DuplicateProperty { .. }
            | Self::InvalidPropertyValue { .. }
            | Self::PropertyFromWrongSide { .. }
            | Self::InvalidReasonCode { .. }
            | Self::SessionPresentOnError => ReasonCode::ProtocolError,
            Self::ReservedPacketType(_)
            | Self::InvalidFlags { .. }
            | Self::VarintTooLong { .. }
            | Self::NonMinimalVarint { .. }
            | Self::Truncated { .. }
            | Self::TrailingBytes { .. }
            | Self::InvalidUtf8 { .. }
            | Self::NullCharacter { .. }
            | Self::ReservedConnectFlag
            | Self::InvalidQos { .. }
            | Self::WillFlagsWithoutWill
            | Self::PasswordWithoutUsername
            | Self::DupAtQos0
            | Self::ReservedSubscriptionBits
            | Self::UnknownProperty { .. }
            | Self::PropertyNotAllowed { .. }
            | Self::ReservedConnAckFlags => ReasonCode::MalformedPacket,
        }
    }
}

/// A packet that cannot be encoded. Nothing is written when encoding fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or binary field longer than its two-byte length prefix allows (65,535).
    #[error("{packet}: field of {len} bytes exceeds 65535")]
    FieldTooLong {
        /// The packet.
        packet: PacketType,
        /// The field's length.
        len: usize,
    },
    /// The packet's Remaining Length would exceed 268,435,455 bytes, or its property block
    /// the same limit.
    #[error("{packet}: {len} bytes exceed the protocol maximum")]
    PacketTooLarge {
        /// The packet.
        packet: PacketType,
        /// The Remaining Length (or property length) it would need.
        len: usize,
    },
    /// `AUTH` on a 3.1.1 connection.
    #[error("{0} does not exist in MQTT 3.1.1")]
    NotInVersion(PacketType),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_for_the_broker() {
        let packet = PacketType::Publish;
        assert_eq!(
            MqttError::PacketTooLarge { size: 9, max: 8 }.reason_code(),
            ReasonCode::PacketTooLarge
        );
        assert_eq!(
            MqttError::Truncated { packet }.reason_code(),
            ReasonCode::MalformedPacket
        );
        assert_eq!(
            MqttError::ZeroPacketId { packet }.reason_code(),
            ReasonCode::ProtocolError
        );
        assert_eq!(
            MqttError::InvalidTopicName(TopicError::WildcardInName).reason_code(),
            ReasonCode::TopicNameInvalid
        );
        assert_eq!(
            MqttError::InvalidQos { packet }.reason_code(),
            ReasonCode::MalformedPacket
        );
        assert_eq!(
            MqttError::InvalidQos {
                packet: PacketType::Subscribe
            }
            .reason_code(),
            ReasonCode::ProtocolError
        );
        assert_eq!(
            MqttError::UnsupportedProtocolVersion(3).reason_code(),
            ReasonCode::UnsupportedProtocolVersion
        );
    }

    #[test]
    fn messages_name_the_rule() {
        let err = MqttError::DuplicateProperty {
            packet: PacketType::Connect,
            id: 0x21,
        };
        assert_eq!(
            err.to_string(),
            "CONNECT: Receive Maximum (id 0x21) given twice"
        );
        let err = MqttError::InvalidFlags {
            packet: PacketType::PubRel,
            flags: 0,
        };
        assert_eq!(
            err.to_string(),
            "PUBREL with invalid fixed header flags 0b0000"
        );
    }
}
