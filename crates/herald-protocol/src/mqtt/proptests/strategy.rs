//! Generators for valid packets of each version and direction, and protocol-shaped noise.
//!
//! A packet is generated valid for its version: MQTT 5-only fields stay at their defaults in
//! 3.1.1 (which cannot carry them), and the cross-field rules hold (a 3.1.1 password comes
//! with a user name, an empty MQTT 5 topic with a Topic Alias, no DUP at QoS 0 in MQTT 5, an
//! `AUTH` with content names its method, ...).

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use proptest::strategy::Union;

use crate::mqtt::{
    Ack, AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect,
    ConnectProperties, Disconnect, DisconnectProperties, Packet, PacketId, PacketType,
    PayloadFormat, Publish, PublishProperties, QoS, QosPid, ReasonCode, RetainHandling, SubAck,
    Subscribe, SubscribeProperties, Subscription, SubscriptionId, SubscriptionOptions, TopicFilter,
    TopicName, UnsubAck, Unsubscribe, UnsubscribeProperties, UserProperty, Version, Will,
    WillProperties, encode,
};

pub(super) fn version() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::V311), Just(Version::V5)]
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 é✓/+#.$]{0,8}"
}

fn bin() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|v| PacketId::new(v).expect("non-zero"))
}

fn topic() -> impl Strategy<Value = TopicName> {
    "[a-z0-9./ é$]{1,12}".prop_map(|t| TopicName::new(&t).expect("no wildcards"))
}

fn filter() -> impl Strategy<Value = TopicFilter> {
    let level = prop_oneof![Just("+".to_owned()), "[a-z.é ]{0,4}"];
    (vec(level, 1..4), any::<bool>(), of("[a-z]{1,4}")).prop_map(|(levels, hash, share)| {
        let mut text = levels.join("/");
        if hash {
            text.push_str("/#");
        }
        if text.is_empty() {
            text.push('#');
        }
        if let Some(group) = share {
            text = format!("$share/{group}/{text}");
        }
        TopicFilter::new(&text).expect("valid filter")
    })
}

fn user_properties() -> impl Strategy<Value = Vec<UserProperty>> {
    vec(
        (text(), text()).prop_map(|(k, v)| UserProperty::new(k, v)),
        0..3,
    )
}

fn sub_id() -> impl Strategy<Value = SubscriptionId> {
    (1..=SubscriptionId::MAX).prop_map(|v| SubscriptionId::new(v).expect("in range"))
}

/// Any reason code `packet` allows.
fn reason(packet: PacketType) -> impl Strategy<Value = ReasonCode> {
    let codes: Vec<ReasonCode> = (0..=u8::MAX)
        .filter_map(ReasonCode::from_u8)
        .filter(|code| code.is_allowed_in(packet))
        .collect();
    prop::sample::select(codes)
}

/// `v5` in MQTT 5, the default in 3.1.1.
fn only_v5<T: Default + Clone + std::fmt::Debug + 'static>(
    version: Version,
    v5: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    match version {
        Version::V5 => v5.boxed(),
        Version::V311 => Just(T::default()).boxed(),
    }
}

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        of(any::<u32>()),
        of((text(), of(bin()))),
        (of(any::<bool>()), of(any::<bool>())),
        of(any::<u16>()).prop_map(|v| v.and_then(NonZeroU16::new)),
        of(any::<u16>()),
        of(any::<u32>()).prop_map(|v| v.and_then(NonZeroU32::new)),
        user_properties(),
    )
        .prop_map(
            |(expiry, auth, (problem, response), receive, alias, size, user)| {
                let (method, data) = auth.map_or((None, None), |(m, d)| (Some(m), d));
                ConnectProperties {
                    session_expiry_interval: expiry,
                    authentication_method: method,
                    authentication_data: data,
                    request_problem_information: problem,
                    request_response_information: response,
                    receive_maximum: receive,
                    topic_alias_maximum: alias,
                    maximum_packet_size: size,
                    user_properties: user,
                }
            },
        )
}

fn payload_format() -> impl Strategy<Value = Option<PayloadFormat>> {
    of(prop_oneof![
        Just(PayloadFormat::Unspecified),
        Just(PayloadFormat::Utf8)
    ])
}

fn will(version: Version) -> impl Strategy<Value = Will> {
    let properties = (
        payload_format(),
        of(any::<u32>()),
        of(text()),
        of(topic()),
        of(bin()),
        of(any::<u32>()),
        user_properties(),
    )
        .prop_map(
            |(format, expiry, content, response, correlation, delay, user)| WillProperties {
                payload_format_indicator: format,
                message_expiry_interval: expiry,
                content_type: content,
                response_topic: response,
                correlation_data: correlation,
                will_delay_interval: delay,
                user_properties: user,
            },
        );
    (
        topic(),
        bin(),
        qos(),
        any::<bool>(),
        only_v5(version, properties),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        })
}

fn connect(version: Version) -> impl Strategy<Value = Packet> {
    (
        (any::<bool>(), any::<u16>(), text()),
        of(will(version)),
        (of(text()), of(bin())),
        only_v5(version, connect_properties()),
    )
        .prop_map(
            move |(
                (clean_start, keep_alive, client_id),
                will,
                (username, password),
                properties,
            )| {
                // 3.1.1 sends a password only with a user name.
                let username = match (&username, &password, version) {
                    (None, Some(_), Version::V311) => Some("user".to_owned()),
                    _ => username,
                };
                Packet::Connect(Box::new(Connect {
                    version,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        )
}

fn connack(version: Version) -> impl Strategy<Value = Packet> {
    let code = match version {
        Version::V5 => reason(PacketType::ConnAck).boxed(),
        Version::V311 => (0..=5u8)
            .prop_map(|c| {
                crate::mqtt::ConnectReturnCode::from_u8(c)
                    .expect("defined")
                    .reason_code()
            })
            .boxed(),
    };
    let flags = (
        of(any::<u32>()),
        of(text()),
        of(any::<u16>()),
        of((text(), of(bin()))),
        (of(text()), of(text()), of(text())),
        of(any::<u16>()).prop_map(|v| v.and_then(NonZeroU16::new)),
        of(any::<u16>()),
    );
    let availability = (
        of(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
        of(any::<bool>()),
        of(any::<u32>()).prop_map(|v| v.and_then(NonZeroU32::new)),
        of(any::<bool>()),
        of(any::<bool>()),
        of(any::<bool>()),
        user_properties(),
    );
    let properties = (flags, availability).prop_map(
        |(
            (expiry, assigned, keep_alive, auth, (response, reference, reason), receive, alias),
            (max_qos, retain, size, wildcard, sub_ids, shared, user),
        )| {
            let (method, data) = auth.map_or((None, None), |(m, d)| (Some(m), d));
            ConnAckProperties {
                session_expiry_interval: expiry,
                assigned_client_identifier: assigned,
                server_keep_alive: keep_alive,
                authentication_method: method,
                authentication_data: data,
                response_information: response,
                server_reference: reference,
                reason_string: reason,
                receive_maximum: receive,
                topic_alias_maximum: alias,
                maximum_qos: max_qos,
                retain_available: retain,
                maximum_packet_size: size,
                wildcard_subscription_available: wildcard,
                subscription_identifiers_available: sub_ids,
                shared_subscription_available: shared,
                user_properties: user,
            }
        },
    );
    (any::<bool>(), code, only_v5(version, properties)).prop_map(
        |(present, reason_code, properties)| {
            Packet::ConnAck(Box::new(ConnAck {
                // Session Present only with success.
                session_present: present && !reason_code.is_error(),
                reason_code,
                properties,
            }))
        },
    )
}

fn publish(version: Version, from_server: bool) -> impl Strategy<Value = Packet> {
    let properties = (
        payload_format(),
        of(any::<u32>()),
        of(text()),
        of(topic()),
        of(bin()),
        of(1..=u16::MAX).prop_map(|v| v.and_then(NonZeroU16::new)),
        vec(sub_id(), 0..if from_server { 3 } else { 1 }),
        user_properties(),
    )
        .prop_map(
            |(format, expiry, content, response, correlation, alias, sub_ids, user)| {
                PublishProperties {
                    payload_format_indicator: format,
                    message_expiry_interval: expiry,
                    content_type: content,
                    response_topic: response,
                    correlation_data: correlation,
                    topic_alias: alias,
                    subscription_identifiers: sub_ids,
                    user_properties: user,
                }
            },
        );
    let topic = prop_oneof![3 => topic(), 1 => Just(TopicName::default())];
    (
        (any::<bool>(), qos(), packet_id(), any::<bool>()),
        topic,
        only_v5(version, properties),
        vec(any::<u8>(), 0..40),
    )
        .prop_map(
            move |((dup, qos, id, retain), mut topic, mut properties, payload)| {
                if topic.is_empty() {
                    match version {
                        Version::V311 => topic = TopicName::new("t").expect("valid"),
                        Version::V5 => {
                            properties.topic_alias.get_or_insert(NonZeroU16::MIN);
                        }
                    }
                }
                Packet::Publish(Publish {
                    dup: dup && !(version == Version::V5 && qos == QoS::AtMostOnce),
                    qos: QosPid::new(qos, id),
                    retain,
                    topic,
                    properties,
                    payload: Bytes::from(payload),
                })
            },
        )
}

fn ack_properties() -> impl Strategy<Value = AckProperties> {
    (of(text()), user_properties()).prop_map(|(reason_string, user_properties)| AckProperties {
        reason_string,
        user_properties,
    })
}

fn ack(version: Version) -> impl Strategy<Value = Packet> {
    let kind = prop::sample::select(vec![
        PacketType::PubAck,
        PacketType::PubRec,
        PacketType::PubRel,
        PacketType::PubComp,
    ]);
    kind.prop_flat_map(move |kind| {
        let fields = only_v5(version, (reason(kind), ack_properties()));
        (packet_id(), fields).prop_map(move |(packet_id, (reason_code, properties))| {
            let ack = Ack {
                packet_id,
                reason_code,
                properties,
            };
            match kind {
                PacketType::PubAck => Packet::PubAck(ack),
                PacketType::PubRec => Packet::PubRec(ack),
                PacketType::PubRel => Packet::PubRel(ack),
                _ => Packet::PubComp(ack),
            }
        })
    })
}

fn subscribe(version: Version) -> impl Strategy<Value = Packet> {
    let options = (
        qos(),
        only_v5(version, (any::<bool>(), any::<bool>(), 0..3u8)),
    );
    let subscription = (filter(), options).prop_map(|(filter, (qos, (no_local, rap, rh)))| {
        Subscription {
            options: SubscriptionOptions {
                qos,
                // No Local is not allowed on a shared subscription.
                no_local: no_local && !filter.is_shared(),
                retain_as_published: rap,
                retain_handling: RetainHandling::from_bits(rh).expect("0..3"),
            },
            filter,
        }
    });
    let properties = (of(sub_id()), user_properties()).prop_map(|(id, user)| SubscribeProperties {
        subscription_identifier: id,
        user_properties: user,
    });
    (
        packet_id(),
        only_v5(version, properties),
        vec(subscription, 1..4),
    )
        .prop_map(|(packet_id, properties, subscriptions)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                subscriptions,
            })
        })
}

fn suback(version: Version) -> impl Strategy<Value = Packet> {
    let code = match version {
        Version::V5 => reason(PacketType::SubAck).boxed(),
        Version::V311 => prop::sample::select(vec![
            ReasonCode::Success,
            ReasonCode::GrantedQos1,
            ReasonCode::GrantedQos2,
            ReasonCode::UnspecifiedError,
        ])
        .boxed(),
    };
    (
        packet_id(),
        only_v5(version, ack_properties()),
        vec(code, 0..4),
    )
        .prop_map(|(packet_id, properties, reason_codes)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties,
                reason_codes,
            })
        })
}

fn unsubscribe(version: Version) -> impl Strategy<Value = Packet> {
    let properties =
        user_properties().prop_map(|user_properties| UnsubscribeProperties { user_properties });
    (
        packet_id(),
        only_v5(version, properties),
        vec(filter(), 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                filters,
            })
        })
}

fn unsuback(version: Version) -> impl Strategy<Value = Packet> {
    let v5 = (ack_properties(), vec(reason(PacketType::UnsubAck), 0..4));
    (packet_id(), only_v5(version, v5)).prop_map(|(packet_id, (properties, reason_codes))| {
        Packet::UnsubAck(UnsubAck {
            packet_id,
            properties,
            reason_codes,
        })
    })
}

fn disconnect(version: Version, from_server: bool) -> impl Strategy<Value = Packet> {
    let properties = (of(any::<u32>()), of(text()), of(text()), user_properties()).prop_map(
        move |(expiry, reference, reason, user)| DisconnectProperties {
            // Only a client sends a Session Expiry Interval.
            session_expiry_interval: expiry.filter(|_| !from_server),
            server_reference: reference,
            reason_string: reason,
            user_properties: user,
        },
    );
    only_v5(version, (reason(PacketType::Disconnect), properties)).prop_map(
        |(reason_code, properties)| {
            Packet::Disconnect(Disconnect {
                reason_code,
                properties,
            })
        },
    )
}

fn auth() -> impl Strategy<Value = Packet> {
    let properties = (text(), of(bin()), of(text()), user_properties()).prop_map(
        |(method, data, reason, user)| AuthProperties {
            authentication_method: Some(method),
            authentication_data: data,
            reason_string: reason,
            user_properties: user,
        },
    );
    prop_oneof![
        Just(Packet::Auth(Auth::default())),
        (reason(PacketType::Auth), properties).prop_map(|(reason_code, properties)| {
            Packet::Auth(Auth {
                reason_code,
                properties,
            })
        }),
    ]
}

/// Any packet a client may send in `version`.
pub(super) fn client_packet(version: Version) -> BoxedStrategy<Packet> {
    let mut options = vec![
        connect(version).boxed(),
        publish(version, false).boxed(),
        publish(version, false).boxed(),
        ack(version).boxed(),
        subscribe(version).boxed(),
        unsubscribe(version).boxed(),
        Just(Packet::PingReq).boxed(),
        disconnect(version, false).boxed(),
    ];
    if version == Version::V5 {
        options.push(auth().boxed());
    }
    Union::new(options).boxed()
}

/// Any packet a server may send in `version`.
pub(super) fn server_packet(version: Version) -> BoxedStrategy<Packet> {
    let mut options = vec![
        connack(version).boxed(),
        publish(version, true).boxed(),
        publish(version, true).boxed(),
        ack(version).boxed(),
        suback(version).boxed(),
        unsuback(version).boxed(),
        Just(Packet::PingResp).boxed(),
    ];
    if version == Version::V5 {
        options.push(disconnect(version, true).boxed());
        options.push(auth().boxed());
    }
    Union::new(options).boxed()
}

/// Bytes that are often nearly MQTT: valid packets of either version and direction with a
/// few bytes overwritten, raw fragments, or random bytes.
pub(super) fn noise() -> impl Strategy<Value = Vec<u8>> {
    const PIECES: &[&[u8]] = &[
        &[0x10],
        &[0x30],
        &[0x32],
        &[0x82],
        &[0xA2],
        &[0xE0, 0x00],
        &[0xC0, 0x00],
        &[0xF0, 0x00],
        &[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05],
        &[0x00, 0x01, b'a'],
        &[0x80, 0x80, 0x80, 0x80],
        &[0x7F],
        &[0x00],
        &[0x26, 0x00, 0x00, 0x00, 0x00],
        &[0x0B, 0x01],
    ];
    let packets = version().prop_flat_map(|v| {
        let any_packet = prop_oneof![client_packet(v), server_packet(v)];
        (Just(v), vec(any_packet, 1..4))
    });
    let mutated = (packets, vec((any::<usize>(), any::<u8>()), 0..3)).prop_map(
        |((version, packets), edits)| {
            let mut buf = BytesMut::new();
            for packet in &packets {
                encode(&mut buf, version, packet).expect("generated packets encode");
            }
            let mut bytes = buf.to_vec();
            for (at, byte) in edits {
                if !bytes.is_empty() {
                    let len = bytes.len();
                    bytes[at % len] = byte;
                }
            }
            bytes
        },
    );
    prop_oneof![
        3 => mutated,
        1 => vec(any::<u8>(), 0..64),
        1 => vec(prop::sample::select(PIECES), 0..12).prop_map(|pieces| pieces.concat()),
    ]
}
