//! Body decoders, one per packet (v3 and v5 §3). Each reads its fields in wire order and
//! checks each rule where the field is read; [`super::parse`] then checks nothing is left.

use super::reader::Reader;
use super::{Header, Side};
use crate::mqtt::properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, WillProperties, id,
};
use crate::mqtt::reason::{ConnectReturnCode, ReasonCode};
use crate::mqtt::topic::{TopicError, TopicFilter};
use crate::mqtt::{
    Ack, Auth, ConnAck, Connect, Disconnect, MqttError, Packet, PacketType, Publish, QoS, QosPid,
    RetainHandling, SubAck, Subscribe, Subscription, SubscriptionOptions, UnsubAck, Unsubscribe,
    Version, Will,
};

/// Decodes the body of the packet `header` describes.
pub(super) fn decode(
    header: &Header,
    r: &mut Reader,
    version: Version,
    side: Side,
) -> Result<Packet, MqttError> {
    Ok(match header.packet {
        PacketType::Connect => Packet::Connect(Box::new(connect(r, header.minimal)?)),
        PacketType::ConnAck => Packet::ConnAck(Box::new(connack(r, version)?)),
        PacketType::Publish => Packet::Publish(publish(r, header.flags, version, side)?),
        PacketType::PubAck => Packet::PubAck(ack(r, version)?),
        PacketType::PubRec => Packet::PubRec(ack(r, version)?),
        PacketType::PubRel => Packet::PubRel(ack(r, version)?),
        PacketType::PubComp => Packet::PubComp(ack(r, version)?),
        PacketType::Subscribe => Packet::Subscribe(subscribe(r, version)?),
        PacketType::SubAck => Packet::SubAck(suback(r, version)?),
        PacketType::Unsubscribe => Packet::Unsubscribe(unsubscribe(r, version)?),
        PacketType::UnsubAck => Packet::UnsubAck(unsuback(r, version)?),
        PacketType::PingReq => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Disconnect => Packet::Disconnect(disconnect(r, version, side)?),
        PacketType::Auth => Packet::Auth(auth(r)?),
    })
}

/// An MQTT 5 reason code, which must be one the packet allows.
fn reason_code(r: &mut Reader) -> Result<ReasonCode, MqttError> {
    let code = r.u8()?;
    ReasonCode::from_u8(code)
        .filter(|reason| reason.is_allowed_in(r.packet()))
        .ok_or(MqttError::InvalidReasonCode {
            packet: r.packet(),
            code,
        })
}

/// Connect Flags bits (v3 and v5 §3.1.2.3).
const RESERVED: u8 = 0x01;
const CLEAN_START: u8 = 0x02;
const WILL: u8 = 0x04;
const WILL_RETAIN: u8 = 0x20;
const PASSWORD: u8 = 0x40;
const USERNAME: u8 = 0x80;

fn connect(r: &mut Reader, minimal_length: bool) -> Result<Connect, MqttError> {
    // The name is read as bytes: it is compared, not kept.
    let name = r.binary()?;
    let level = r.u8()?;
    let version = match (&name[..], Version::from_level(level)) {
        (b"MQTT", Some(version)) => version,
        (b"MQTT" | b"MQIsdp", _) => return Err(MqttError::UnsupportedProtocolVersion(level)),
        _ => return Err(MqttError::InvalidProtocolName),
    };
    if version == Version::V5 && !minimal_length {
        return Err(MqttError::NonMinimalVarint {
            packet: PacketType::Connect,
        });
    }
    let flags = r.u8()?;
    if flags & RESERVED != 0 {
        return Err(MqttError::ReservedConnectFlag);
    }
    let will_qos = (flags >> 3) & 0b11;
    if flags & WILL == 0 && (will_qos != 0 || flags & WILL_RETAIN != 0) {
        return Err(MqttError::WillFlagsWithoutWill);
    }
    let will_qos = QoS::from_bits(will_qos).ok_or(MqttError::InvalidQos {
        packet: PacketType::Connect,
    })?;
    if version == Version::V311 && flags & PASSWORD != 0 && flags & USERNAME == 0 {
        return Err(MqttError::PasswordWithoutUsername);
    }
    let keep_alive = r.u16()?;
    let properties: ConnectProperties = v5_properties(r, version)?;
    if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
        return Err(MqttError::AuthDataWithoutMethod);
    }
    let client_id = r.string()?;
    let will = if flags & WILL != 0 {
        let properties: WillProperties = v5_properties(r, version)?;
        let topic = r.topic_name()?;
        if topic.is_empty() {
            return Err(MqttError::InvalidTopicName(TopicError::Empty));
        }
        Some(Will {
            topic,
            payload: r.binary()?,
            qos: will_qos,
            retain: flags & WILL_RETAIN != 0,
            properties,
        })
    } else {
        None
    };
    let username = if flags & USERNAME != 0 {
        Some(r.string()?)
    } else {
        None
    };
    let password = if flags & PASSWORD != 0 {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        version,
        clean_start: flags & CLEAN_START != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

/// A property block in MQTT 5; the empty set in 3.1.1, which has none.
fn v5_properties<P: crate::mqtt::properties::PropertySet>(
    r: &mut Reader,
    version: Version,
) -> Result<P, MqttError> {
    match version {
        Version::V5 => r.properties(),
        Version::V311 => Ok(P::default()),
    }
}

fn connack(r: &mut Reader, version: Version) -> Result<ConnAck, MqttError> {
    let flags = r.u8()?;
    if flags & !1 != 0 {
        return Err(MqttError::ReservedConnAckFlags);
    }
    let reason_code = match version {
        Version::V5 => reason_code(r)?,
        Version::V311 => {
            let code = r.u8()?;
            ConnectReturnCode::from_u8(code)
                .ok_or(MqttError::InvalidReasonCode {
                    packet: PacketType::ConnAck,
                    code,
                })?
                .reason_code()
        }
    };
    let session_present = flags & 1 != 0;
    if session_present && reason_code.is_error() {
        return Err(MqttError::SessionPresentOnError);
    }
    Ok(ConnAck {
        session_present,
        reason_code,
        properties: v5_properties::<ConnAckProperties>(r, version)?,
    })
}

fn publish(r: &mut Reader, flags: u8, version: Version, side: Side) -> Result<Publish, MqttError> {
    let topic = r.topic_name()?;
    // The fixed header already refused QoS 3.
    let qos = match (flags >> 1) & 0b11 {
        0 => QosPid::AtMostOnce,
        1 => QosPid::AtLeastOnce(r.packet_id()?),
        _ => QosPid::ExactlyOnce(r.packet_id()?),
    };
    let properties: PublishProperties = v5_properties(r, version)?;
    if side == Side::Client && !properties.subscription_identifiers.is_empty() {
        return Err(MqttError::PropertyFromWrongSide {
            packet: PacketType::Publish,
            id: id::SUBSCRIPTION_IDENTIFIER,
        });
    }
    if topic.is_empty() {
        match version {
            Version::V311 => return Err(MqttError::InvalidTopicName(TopicError::Empty)),
            Version::V5 if properties.topic_alias.is_none() => {
                return Err(MqttError::EmptyTopicWithoutAlias);
            }
            Version::V5 => {}
        }
    }
    Ok(Publish {
        dup: flags & 0b1000 != 0,
        qos,
        retain: flags & 1 != 0,
        topic,
        properties,
        payload: r.rest(),
    })
}

/// `PUBACK`, `PUBREC`, `PUBREL`, `PUBCOMP`. MQTT 5 may leave out the properties (Remaining
/// Length 3) or the reason code too (Remaining Length 2, Success).
fn ack(r: &mut Reader, version: Version) -> Result<Ack, MqttError> {
    let packet_id = r.packet_id()?;
    let mut ack = Ack::new(packet_id);
    if version == Version::V5 && !r.is_empty() {
        ack.reason_code = reason_code(r)?;
        if !r.is_empty() {
            ack.properties = r.properties()?;
        }
    }
    Ok(ack)
}

/// Options byte bits (v5 §3.8.3.1).
const NO_LOCAL: u8 = 0x04;
const RETAIN_AS_PUBLISHED: u8 = 0x08;

fn subscribe(r: &mut Reader, version: Version) -> Result<Subscribe, MqttError> {
    let packet_id = r.packet_id()?;
    let properties: SubscribeProperties = v5_properties(r, version)?;
    let mut subscriptions = Vec::new();
    while !r.is_empty() {
        let filter = topic_filter(r)?;
        let options = subscription_options(r.u8()?, version, &filter)?;
        subscriptions.push(Subscription { filter, options });
    }
    if subscriptions.is_empty() {
        return Err(MqttError::NoTopicFilters(PacketType::Subscribe));
    }
    Ok(Subscribe {
        packet_id,
        properties,
        subscriptions,
    })
}

fn topic_filter(r: &mut Reader) -> Result<TopicFilter, MqttError> {
    TopicFilter::try_from(r.string()?).map_err(MqttError::InvalidTopicFilter)
}

fn subscription_options(
    byte: u8,
    version: Version,
    filter: &TopicFilter,
) -> Result<SubscriptionOptions, MqttError> {
    let reserved = match version {
        Version::V311 => 0b1111_1100,
        Version::V5 => 0b1100_0000,
    };
    if byte & reserved != 0 {
        return Err(MqttError::ReservedSubscriptionBits);
    }
    let qos = QoS::from_bits(byte & 0b11).ok_or(MqttError::InvalidQos {
        packet: PacketType::Subscribe,
    })?;
    let retain_handling =
        RetainHandling::from_bits((byte >> 4) & 0b11).ok_or(MqttError::InvalidRetainHandling)?;
    let no_local = byte & NO_LOCAL != 0;
    if no_local && filter.is_shared() {
        return Err(MqttError::NoLocalOnSharedSubscription);
    }
    Ok(SubscriptionOptions {
        qos,
        no_local,
        retain_as_published: byte & RETAIN_AS_PUBLISHED != 0,
        retain_handling,
    })
}

fn suback(r: &mut Reader, version: Version) -> Result<SubAck, MqttError> {
    let packet_id = r.packet_id()?;
    let properties: AckProperties = v5_properties(r, version)?;
    let mut reason_codes = Vec::new();
    while !r.is_empty() {
        let code = match version {
            Version::V5 => reason_code(r)?,
            Version::V311 => match r.u8()? {
                0x00 => ReasonCode::Success,
                0x01 => ReasonCode::GrantedQos1,
                0x02 => ReasonCode::GrantedQos2,
                0x80 => ReasonCode::UnspecifiedError,
                code => {
                    return Err(MqttError::InvalidReasonCode {
                        packet: PacketType::SubAck,
                        code,
                    });
                }
            },
        };
        reason_codes.push(code);
    }
    Ok(SubAck {
        packet_id,
        properties,
        reason_codes,
    })
}

fn unsubscribe(r: &mut Reader, version: Version) -> Result<Unsubscribe, MqttError> {
    let packet_id = r.packet_id()?;
    let properties: UnsubscribeProperties = v5_properties(r, version)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(topic_filter(r)?);
    }
    if filters.is_empty() {
        return Err(MqttError::NoTopicFilters(PacketType::Unsubscribe));
    }
    Ok(Unsubscribe {
        packet_id,
        properties,
        filters,
    })
}

fn unsuback(r: &mut Reader, version: Version) -> Result<UnsubAck, MqttError> {
    let packet_id = r.packet_id()?;
    let properties: AckProperties = v5_properties(r, version)?;
    let mut reason_codes = Vec::new();
    // 3.1.1 has no payload: anything left is reported as trailing bytes.
    while version == Version::V5 && !r.is_empty() {
        reason_codes.push(reason_code(r)?);
    }
    Ok(UnsubAck {
        packet_id,
        properties,
        reason_codes,
    })
}

/// `DISCONNECT`: empty in 3.1.1; in MQTT 5 an empty body means Normal disconnection and a
/// one-byte body a reason without properties.
fn disconnect(r: &mut Reader, version: Version, side: Side) -> Result<Disconnect, MqttError> {
    let mut disconnect = Disconnect::default();
    if version == Version::V5 && !r.is_empty() {
        disconnect.reason_code = reason_code(r)?;
        if !r.is_empty() {
            disconnect.properties = r.properties::<DisconnectProperties>()?;
        }
    }
    if side == Side::Server && disconnect.properties.session_expiry_interval.is_some() {
        return Err(MqttError::PropertyFromWrongSide {
            packet: PacketType::Disconnect,
            id: id::SESSION_EXPIRY_INTERVAL,
        });
    }
    Ok(disconnect)
}

/// `AUTH` (MQTT 5 only; the fixed header refused it in 3.1.1). An empty body means Success
/// without properties; otherwise the Authentication Method is required.
fn auth(r: &mut Reader) -> Result<Auth, MqttError> {
    if r.is_empty() {
        return Ok(Auth::default());
    }
    let reason_code = reason_code(r)?;
    let properties: AuthProperties = if r.is_empty() {
        AuthProperties::default()
    } else {
        r.properties()?
    };
    if properties.authentication_method.is_none() {
        return Err(MqttError::AuthMethodMissing);
    }
    Ok(Auth {
        reason_code,
        properties,
    })
}
