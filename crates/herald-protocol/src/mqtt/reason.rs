//! Reason codes: MQTT 5's [`ReasonCode`] and MQTT 3.1.1's [`ConnectReturnCode`].
//!
//! MQTT 5 gives every acknowledgement and `DISCONNECT` a one-byte reason code from one shared
//! table (v5 §2.4); each packet allows a subset, which the decoder enforces (a code outside
//! the packet's subset is a Protocol Error, as mosquitto treats it). MQTT 3.1.1 only has the
//! six `CONNACK` return codes and the `SUBACK` failure code 0x80.
//!
//! Packets carry the MQTT 5 code whatever the version; the 3.1.1 encoder maps it down
//! ([`ConnectReturnCode::from_reason_code`], [`ReasonCode::v311_suback_code`]) so a broker
//! decides once, in MQTT 5 terms, and the codec writes what each version can say.

use std::fmt;

use super::PacketType;

macro_rules! reason_codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $text:literal;)*) => {
        /// An MQTT 5 reason code (v5 §2.4). Codes from 0x80 up are errors.
        ///
        /// 0x00 is one code with three names in the specification (Success, Normal
        /// disconnection, Granted QoS 0); it is [`ReasonCode::Success`] here.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        #[non_exhaustive]
        pub enum ReasonCode {
            $($(#[$doc])* $name = $value,)*
        }

        impl ReasonCode {
            /// The code for a byte, if MQTT 5 defines it.
            #[must_use]
            pub fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $($value => Some(Self::$name),)*
                    _ => None,
                }
            }

            /// The name the specification gives the code, e.g. `"Packet too large"`.
            #[must_use]
            pub fn description(self) -> &'static str {
                match self {
                    $(Self::$name => $text,)*
                }
            }
        }
    };
}

reason_codes! {
    /// 0x00: Success; Normal disconnection; Granted QoS 0.
    #[default]
    Success = 0x00, "Success";
    /// 0x01: Granted QoS 1 (`SUBACK`).
    GrantedQos1 = 0x01, "Granted QoS 1";
    /// 0x02: Granted QoS 2 (`SUBACK`).
    GrantedQos2 = 0x02, "Granted QoS 2";
    /// 0x04: Disconnect with Will Message (client `DISCONNECT`: publish the Will).
    DisconnectWithWill = 0x04, "Disconnect with Will Message";
    /// 0x10: No matching subscribers (`PUBACK`, `PUBREC`).
    NoMatchingSubscribers = 0x10, "No matching subscribers";
    /// 0x11: No subscription existed (`UNSUBACK`).
    NoSubscriptionExisted = 0x11, "No subscription existed";
    /// 0x18: Continue authentication (`AUTH`).
    ContinueAuthentication = 0x18, "Continue authentication";
    /// 0x19: Re-authenticate (`AUTH`).
    ReAuthenticate = 0x19, "Re-authenticate";
    /// 0x80: Unspecified error.
    UnspecifiedError = 0x80, "Unspecified error";
    /// 0x81: Malformed Packet.
    MalformedPacket = 0x81, "Malformed Packet";
    /// 0x82: Protocol Error.
    ProtocolError = 0x82, "Protocol Error";
    /// 0x83: Implementation specific error.
    ImplementationSpecificError = 0x83, "Implementation specific error";
    /// 0x84: Unsupported Protocol Version (`CONNACK`).
    UnsupportedProtocolVersion = 0x84, "Unsupported Protocol Version";
    /// 0x85: Client Identifier not valid (`CONNACK`).
    ClientIdentifierNotValid = 0x85, "Client Identifier not valid";
    /// 0x86: Bad User Name or Password (`CONNACK`).
    BadUserNameOrPassword = 0x86, "Bad User Name or Password";
    /// 0x87: Not authorized.
    NotAuthorized = 0x87, "Not authorized";
    /// 0x88: Server unavailable (`CONNACK`).
    ServerUnavailable = 0x88, "Server unavailable";
    /// 0x89: Server busy.
    ServerBusy = 0x89, "Server busy";
    /// 0x8A: Banned (`CONNACK`).
    Banned = 0x8A, "Banned";
    /// 0x8B: Server shutting down (`DISCONNECT`).
    ServerShuttingDown = 0x8B, "Server shutting down";
    /// 0x8C: Bad authentication method.
    BadAuthenticationMethod = 0x8C, "Bad authentication method";
    /// 0x8D: Keep Alive timeout (`DISCONNECT`).
    KeepAliveTimeout = 0x8D, "Keep Alive timeout";
    /// 0x8E: Session taken over (`DISCONNECT`).
    SessionTakenOver = 0x8E, "Session taken over";
    /// 0x8F: Topic Filter invalid.
    TopicFilterInvalid = 0x8F, "Topic Filter invalid";
    /// 0x90: Topic Name invalid.
    TopicNameInvalid = 0x90, "Topic Name invalid";
    /// 0x91: Packet Identifier in use.
    PacketIdentifierInUse = 0x91, "Packet Identifier in use";
    /// 0x92: Packet Identifier not found (`PUBREL`, `PUBCOMP`).
    PacketIdentifierNotFound = 0x92, "Packet Identifier not found";
    /// 0x93: Receive Maximum exceeded (`DISCONNECT`).
    ReceiveMaximumExceeded = 0x93, "Receive Maximum exceeded";
    /// 0x94: Topic Alias invalid (`DISCONNECT`).
    TopicAliasInvalid = 0x94, "Topic Alias invalid";
    /// 0x95: Packet too large.
    PacketTooLarge = 0x95, "Packet too large";
    /// 0x96: Message rate too high (`DISCONNECT`).
    MessageRateTooHigh = 0x96, "Message rate too high";
    /// 0x97: Quota exceeded.
    QuotaExceeded = 0x97, "Quota exceeded";
    /// 0x98: Administrative action (`DISCONNECT`).
    AdministrativeAction = 0x98, "Administrative action";
    /// 0x99: Payload format invalid.
    PayloadFormatInvalid = 0x99, "Payload format invalid";
    /// 0x9A: Retain not supported.
    RetainNotSupported = 0x9A, "Retain not supported";
    /// 0x9B: QoS not supported.
    QosNotSupported = 0x9B, "QoS not supported";
    /// 0x9C: Use another server.
    UseAnotherServer = 0x9C, "Use another server";
    /// 0x9D: Server moved.
    ServerMoved = 0x9D, "Server moved";
    /// 0x9E: Shared Subscriptions not supported.
    SharedSubscriptionsNotSupported = 0x9E, "Shared Subscriptions not supported";
    /// 0x9F: Connection rate exceeded.
    ConnectionRateExceeded = 0x9F, "Connection rate exceeded";
    /// 0xA0: Maximum connect time (`DISCONNECT`).
    MaximumConnectTime = 0xA0, "Maximum connect time";
    /// 0xA1: Subscription Identifiers not supported.
    SubscriptionIdentifiersNotSupported = 0xA1, "Subscription Identifiers not supported";
    /// 0xA2: Wildcard Subscriptions not supported.
    WildcardSubscriptionsNotSupported = 0xA2, "Wildcard Subscriptions not supported";
}

/// Codes allowed in each packet, from the tables in v5 §3.
const CONNACK: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
const PUBACK: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL: &[u8] = &[0x00, 0x92];
const SUBACK: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
const UNSUBACK: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH: &[u8] = &[0x00, 0x18, 0x19];

impl ReasonCode {
    /// The byte on the wire.
    #[must_use]
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Whether the code reports a failure (0x80 and up).
    #[must_use]
    pub fn is_error(self) -> bool {
        self.as_u8() >= 0x80
    }

    /// Whether MQTT 5 allows this code in `packet` (the tables of v5 §3). Packets without a
    /// reason code allow none.
    #[must_use]
    pub fn is_allowed_in(self, packet: PacketType) -> bool {
        let allowed = match packet {
            PacketType::ConnAck => CONNACK,
            PacketType::PubAck | PacketType::PubRec => PUBACK,
            PacketType::PubRel | PacketType::PubComp => PUBREL,
            PacketType::SubAck => SUBACK,
            PacketType::UnsubAck => UNSUBACK,
            PacketType::Disconnect => DISCONNECT,
            PacketType::Auth => AUTH,
            _ => &[],
        };
        allowed.contains(&self.as_u8())
    }

    /// The `SUBACK` code granting `qos`.
    #[must_use]
    pub fn granted(qos: super::QoS) -> Self {
        match qos {
            super::QoS::AtMostOnce => Self::Success,
            super::QoS::AtLeastOnce => Self::GrantedQos1,
            super::QoS::ExactlyOnce => Self::GrantedQos2,
        }
    }

    /// The 3.1.1 `SUBACK` return code for this code: the granted QoS (0, 1, 2) for a
    /// success, 0x80 (Failure) for any error, since 3.1.1 cannot say why.
    #[must_use]
    pub fn v311_suback_code(self) -> u8 {
        match self {
            Self::GrantedQos1 => 0x01,
            Self::GrantedQos2 => 0x02,
            code if code.is_error() => 0x80,
            _ => 0x00,
        }
    }
}

impl TryFrom<u8> for ReasonCode {
    type Error = u8;

    /// The code for a byte; the byte itself back if MQTT 5 does not define it.
    fn try_from(value: u8) -> Result<Self, u8> {
        Self::from_u8(value).ok_or(value)
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x} {}", self.as_u8(), self.description())
    }
}

/// A 3.1.1 `CONNACK` return code (v3 §3.2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConnectReturnCode {
    /// 0: connection accepted.
    #[default]
    Accepted = 0,
    /// 1: the server does not support the protocol level the client asked for.
    UnacceptableProtocolVersion = 1,
    /// 2: the client identifier is correct UTF-8 but not allowed by the server.
    IdentifierRejected = 2,
    /// 3: the network connection is up but the MQTT service is not.
    ServerUnavailable = 3,
    /// 4: the user name or password is malformed or wrong.
    BadUserNameOrPassword = 4,
    /// 5: the client is not authorized to connect.
    NotAuthorized = 5,
}

impl ConnectReturnCode {
    /// The code for a byte, if 3.1.1 defines it (0 to 5).
    #[must_use]
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0 => Self::Accepted,
            1 => Self::UnacceptableProtocolVersion,
            2 => Self::IdentifierRejected,
            3 => Self::ServerUnavailable,
            4 => Self::BadUserNameOrPassword,
            5 => Self::NotAuthorized,
            _ => return None,
        })
    }

    /// The 3.1.1 code a broker sends for an MQTT 5 `CONNACK` reason: the six with a 3.1.1
    /// twin map to it (Server busy also to Server unavailable), Bad authentication method to
    /// Bad user name or password, Banned to Not authorized, and every other error to Server
    /// unavailable.
    #[must_use]
    pub fn from_reason_code(code: ReasonCode) -> Self {
        match code {
            ReasonCode::UnsupportedProtocolVersion => Self::UnacceptableProtocolVersion,
            ReasonCode::ClientIdentifierNotValid => Self::IdentifierRejected,
            ReasonCode::BadUserNameOrPassword | ReasonCode::BadAuthenticationMethod => {
                Self::BadUserNameOrPassword
            }
            ReasonCode::NotAuthorized | ReasonCode::Banned => Self::NotAuthorized,
            code if code.is_error() => Self::ServerUnavailable,
            _ => Self::Accepted,
        }
    }

    /// The MQTT 5 reason code with the same meaning.
    #[must_use]
    pub fn reason_code(self) -> ReasonCode {
        match self {
            Self::Accepted => ReasonCode::Success,
            Self::UnacceptableProtocolVersion => ReasonCode::UnsupportedProtocolVersion,
            Self::IdentifierRejected => ReasonCode::ClientIdentifierNotValid,
            Self::ServerUnavailable => ReasonCode::ServerUnavailable,
            Self::BadUserNameOrPassword => ReasonCode::BadUserNameOrPassword,
            Self::NotAuthorized => ReasonCode::NotAuthorized,
        }
    }

    /// The byte on the wire.
    #[must_use]
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::QoS;

    #[test]
    fn every_byte_round_trips_or_is_undefined() {
        let mut defined = 0;
        for byte in 0..=u8::MAX {
            if let Some(code) = ReasonCode::from_u8(byte) {
                assert_eq!(code.as_u8(), byte);
                assert_eq!(ReasonCode::try_from(byte), Ok(code));
                defined += 1;
            } else {
                assert_eq!(ReasonCode::try_from(byte), Err(byte));
            }
        }
        // v5 §2.4 lists 43 distinct values.
        assert_eq!(defined, 43);
    }

    #[test]
    fn packet_tables() {
        use PacketType as P;
        assert!(ReasonCode::NoMatchingSubscribers.is_allowed_in(P::PubAck));
        assert!(!ReasonCode::NoMatchingSubscribers.is_allowed_in(P::PubRel));
        assert!(ReasonCode::PacketIdentifierNotFound.is_allowed_in(P::PubComp));
        assert!(!ReasonCode::NotAuthorized.is_allowed_in(P::PubComp));
        assert!(ReasonCode::GrantedQos2.is_allowed_in(P::SubAck));
        assert!(!ReasonCode::GrantedQos2.is_allowed_in(P::UnsubAck));
        assert!(ReasonCode::NoSubscriptionExisted.is_allowed_in(P::UnsubAck));
        assert!(ReasonCode::DisconnectWithWill.is_allowed_in(P::Disconnect));
        assert!(!ReasonCode::DisconnectWithWill.is_allowed_in(P::ConnAck));
        assert!(ReasonCode::Banned.is_allowed_in(P::ConnAck));
        assert!(!ReasonCode::Banned.is_allowed_in(P::Disconnect));
        assert!(ReasonCode::ReAuthenticate.is_allowed_in(P::Auth));
        assert!(!ReasonCode::Success.is_allowed_in(P::Publish));
        // Every code in a table is defined.
        for table in [CONNACK, PUBACK, PUBREL, SUBACK, UNSUBACK, DISCONNECT, AUTH] {
            assert!(table.iter().all(|&b| ReasonCode::from_u8(b).is_some()));
        }
    }

    #[test]
    fn suback_mapping_for_311() {
        assert_eq!(ReasonCode::granted(QoS::AtMostOnce).v311_suback_code(), 0);
        assert_eq!(ReasonCode::granted(QoS::AtLeastOnce).v311_suback_code(), 1);
        assert_eq!(ReasonCode::granted(QoS::ExactlyOnce).v311_suback_code(), 2);
        assert_eq!(ReasonCode::NotAuthorized.v311_suback_code(), 0x80);
        assert_eq!(
            ReasonCode::WildcardSubscriptionsNotSupported.v311_suback_code(),
            0x80
        );
    }

    #[test]
    fn connack_mapping_for_311() {
        for byte in 0..=5 {
            let code = ConnectReturnCode::from_u8(byte).expect("defined");
            assert_eq!(code.as_u8(), byte);
            assert_eq!(
                ConnectReturnCode::from_reason_code(code.reason_code()),
                code
            );
        }
        assert_eq!(ConnectReturnCode::from_u8(6), None);
        let map = ConnectReturnCode::from_reason_code;
        assert_eq!(
            map(ReasonCode::BadAuthenticationMethod),
            ConnectReturnCode::BadUserNameOrPassword
        );
        assert_eq!(map(ReasonCode::Banned), ConnectReturnCode::NotAuthorized);
        assert_eq!(
            map(ReasonCode::ServerBusy),
            ConnectReturnCode::ServerUnavailable
        );
        assert_eq!(
            map(ReasonCode::MalformedPacket),
            ConnectReturnCode::ServerUnavailable
        );
    }

    #[test]
    fn display() {
        assert_eq!(
            ReasonCode::PacketTooLarge.to_string(),
            "0x95 Packet too large"
        );
    }
}
