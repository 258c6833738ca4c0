//! One struct per control packet. MQTT 5-only fields default on 3.1.1 connections (see
//! [`Packet`](super::Packet)).

use bytes::Bytes;

use super::properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, WillProperties,
};
use super::reason::ReasonCode;
use super::topic::{TopicFilter, TopicName};
use super::{PacketId, QoS, QosPid, Version};

/// `CONNECT`: the first packet of every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The protocol version the client speaks, from the protocol level byte. A `CONNECT` is
    /// decoded and encoded in this version, whatever version the call is given.
    pub version: Version,
    /// Clean Session (3.1.1) / Clean Start (5.0): discard any existing session.
    pub clean_start: bool,
    /// Keep alive in seconds; 0 disables it.
    pub keep_alive: u16,
    /// The client identifier; may be empty (the server then assigns one, or refuses).
    pub client_id: String,
    /// The Will message, if the Will Flag is set.
    pub will: Option<Will>,
    /// The user name, if the User Name Flag is set.
    pub username: Option<String>,
    /// The password, if the Password Flag is set (3.1.1 requires a user name with it).
    pub password: Option<Bytes>,
    /// `CONNECT` properties (MQTT 5).
    pub properties: ConnectProperties,
}

/// The Will message of a `CONNECT`: published if the connection ends without a normal
/// `DISCONNECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// The topic to publish to (non-empty).
    pub topic: TopicName,
    /// The message.
    pub payload: Bytes,
    /// QoS to publish with.
    pub qos: QoS,
    /// Whether to publish it retained.
    pub retain: bool,
    /// Will properties (MQTT 5).
    pub properties: WillProperties,
}

/// `CONNACK`: the server's answer to `CONNECT`.
///
/// The outcome is an MQTT 5 reason code in both versions; 3.1.1 encoding maps it with
/// [`ConnectReturnCode::from_reason_code`](super::ConnectReturnCode::from_reason_code) and
/// 3.1.1 decoding maps the return code back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    /// Whether the server resumed a session (must be false with an error code).
    pub session_present: bool,
    /// The outcome.
    pub reason_code: ReasonCode,
    /// `CONNACK` properties (MQTT 5).
    pub properties: ConnAckProperties,
}

/// `PUBLISH`: an application message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// DUP: the sender may have sent this packet before (informational; never forwarded).
    pub dup: bool,
    /// QoS, with the packet id QoS 1 and 2 need.
    pub qos: QosPid,
    /// RETAIN.
    pub retain: bool,
    /// The topic; empty only in MQTT 5 when [`PublishProperties::topic_alias`] is set.
    pub topic: TopicName,
    /// `PUBLISH` properties (MQTT 5).
    pub properties: PublishProperties,
    /// The payload: a slice of the received packet, shared, never copied.
    pub payload: Bytes,
}

impl Publish {
    /// A QoS 0 message without properties.
    #[must_use]
    pub fn new(topic: TopicName, payload: Bytes) -> Self {
        Self {
            dup: false,
            qos: QosPid::AtMostOnce,
            retain: false,
            topic,
            properties: PublishProperties::default(),
            payload,
        }
    }
}

/// `PUBACK`, `PUBREC`, `PUBREL` or `PUBCOMP` (which one is the [`Packet`](super::Packet)
/// variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The flow's packet id.
    pub packet_id: PacketId,
    /// The outcome (MQTT 5; 3.1.1 has none, so a 3.1.1 encoder sends a plain ack).
    pub reason_code: ReasonCode,
    /// Properties (MQTT 5).
    pub properties: AckProperties,
}

impl Ack {
    /// A successful ack without properties.
    #[must_use]
    pub fn new(packet_id: PacketId) -> Self {
        Self {
            packet_id,
            reason_code: ReasonCode::Success,
            properties: AckProperties::default(),
        }
    }
}

/// `SUBSCRIBE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// The packet id, echoed in `SUBACK`.
    pub packet_id: PacketId,
    /// `SUBSCRIBE` properties (MQTT 5).
    pub properties: SubscribeProperties,
    /// One or more filters with their options, in request order.
    pub subscriptions: Vec<Subscription>,
}

/// One filter of a `SUBSCRIBE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The filter (possibly shared).
    pub filter: TopicFilter,
    /// Its options.
    pub options: SubscriptionOptions,
}

/// The options byte of a subscription. In 3.1.1 only `qos` exists; the others keep their
/// defaults and are not encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// Requested (3.1.1) or maximum (5.0) QoS.
    pub qos: QoS,
    /// No Local: do not deliver this connection's own publications (not allowed on a shared
    /// subscription).
    pub no_local: bool,
    /// Retain As Published: keep RETAIN as published when forwarding.
    pub retain_as_published: bool,
    /// When to send retained messages.
    pub retain_handling: RetainHandling,
}

/// Retain Handling: when the server sends retained messages for a new subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// 0: at subscribe time.
    #[default]
    SendAtSubscribe = 0,
    /// 1: at subscribe time, only if the subscription did not exist.
    SendIfNew = 1,
    /// 2: never.
    DoNotSend = 2,
}

impl RetainHandling {
    /// The handling for its two-bit value; `None` for 3 (a Protocol Error).
    #[must_use]
    pub fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(Self::SendAtSubscribe),
            1 => Some(Self::SendIfNew),
            2 => Some(Self::DoNotSend),
            _ => None,
        }
    }
}

/// `SUBACK`: one code per requested filter, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// The `SUBSCRIBE`'s packet id.
    pub packet_id: PacketId,
    /// Properties (MQTT 5).
    pub properties: AckProperties,
    /// Granted QoS ([`ReasonCode::granted`]) or an error. 3.1.1 encodes every error as its
    /// Failure code 0x80 ([`ReasonCode::v311_suback_code`]) and decodes 0x80 as
    /// [`ReasonCode::UnspecifiedError`].
    pub reason_codes: Vec<ReasonCode>,
}

/// `UNSUBSCRIBE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// The packet id, echoed in `UNSUBACK`.
    pub packet_id: PacketId,
    /// Properties (MQTT 5).
    pub properties: UnsubscribeProperties,
    /// One or more filters, compared as strings with the session's subscriptions.
    pub filters: Vec<TopicFilter>,
}

/// `UNSUBACK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// The `UNSUBSCRIBE`'s packet id.
    pub packet_id: PacketId,
    /// Properties (MQTT 5).
    pub properties: AckProperties,
    /// One code per filter (MQTT 5). 3.1.1 `UNSUBACK` has none: empty when decoded, not
    /// encoded.
    pub reason_codes: Vec<ReasonCode>,
}

/// `DISCONNECT`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// Why (MQTT 5); 3.1.1 has no reason: [`ReasonCode::Success`] (Normal disconnection).
    pub reason_code: ReasonCode,
    /// Properties (MQTT 5).
    pub properties: DisconnectProperties,
}

/// `AUTH` (MQTT 5): a step of enhanced authentication.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// Success, Continue authentication or Re-authenticate.
    pub reason_code: ReasonCode,
    /// Properties; the Authentication Method is required unless the packet is empty
    /// (Success, no properties).
    pub properties: AuthProperties,
}
