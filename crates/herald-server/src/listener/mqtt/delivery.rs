//! What travels to an MQTT client: [`Outgoing`] messages, how they are written into a
//! connection's outbox, and the [`Origin`] of a publish made by an MQTT client.
//!
//! The broker's [`Message`] has no QoS, RETAIN flag or MQTT 5 properties, and adding them
//! as headers would show MQTT plumbing to every NATS subscriber. An MQTT publisher attaches
//! them as the message's extension, an [`Origin`], which the MQTT sinks read back and every
//! other receiver ignores. A message that did not come from MQTT (NATS, Redis, HTTP, a
//! stream) has no origin: it counts as a QoS 0 publish, as in nats-server.

use std::sync::Arc;

use bytes::Bytes;
use herald_core::{Delivery, DeliveryCtx, Message, Outbox};
use herald_protocol::mqtt::{
    PacketId, Publish, PublishProperties, QoS, QosPid, SubscriptionId, TopicName, UserProperty,
    Version, encode_publish_head, subject_to_topic,
};

/// Milliseconds since the Unix epoch: expiry times are wall-clock so they survive a restart.
pub(super) fn now_ms() -> u64 {
    u64::try_from(herald_store::time::now_nanos() / 1_000_000).unwrap_or(0)
}

/// A message on its way to one MQTT session.
#[derive(Debug, Clone)]
pub(super) struct Outgoing {
    /// The topic the client sees.
    pub(super) topic: TopicName,
    /// The payload, shared with every other receiver.
    pub(super) payload: Bytes,
    /// The QoS it is delivered with: min(published, granted).
    pub(super) qos: QoS,
    /// The RETAIN flag to send.
    pub(super) retain: bool,
    /// MQTT 5 properties to forward (never a Topic Alias, Subscription Identifier or Message
    /// Expiry Interval: those are per hop and added when the packet is written).
    pub(super) props: Option<Arc<PublishProperties>>,
    /// The Subscription Identifier of the subscription that matched (MQTT 5).
    pub(super) sub_id: Option<SubscriptionId>,
    /// When the message expires (ms since the epoch), from its Message Expiry Interval.
    pub(super) expires_at: Option<u64>,
}

impl Outgoing {
    /// Whether its Message Expiry Interval has run out at `now` (ms).
    pub(super) fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// A rough size for the outbox's pending-bytes accounting.
    pub(super) fn wire_size(&self) -> usize {
        let props = self.props.as_ref().map_or(0, |p| {
            p.user_properties
                .iter()
                .map(|u| u.name.len() + u.value.len() + 5)
                .sum::<usize>()
                + p.content_type.as_ref().map_or(0, String::len)
                + p.response_topic.as_ref().map_or(0, TopicName::len)
                + p.correlation_data.as_ref().map_or(0, Bytes::len)
                + 16
        });
        self.topic.len() + self.payload.len() + props + 16
    }

    /// The `PUBLISH` packet for this message, without its payload being copied.
    pub(super) fn packet(&self, version: Version, pid: Option<PacketId>, dup: bool) -> Publish {
        let qos = match (self.qos, pid) {
            (QoS::AtLeastOnce, Some(id)) => QosPid::AtLeastOnce(id),
            (QoS::ExactlyOnce, Some(id)) => QosPid::ExactlyOnce(id),
            _ => QosPid::AtMostOnce,
        };
        let mut properties = PublishProperties::default();
        if version == Version::V5 {
            if let Some(props) = &self.props {
                properties = PublishProperties::clone(props);
            }
            properties.topic_alias = None;
            properties.subscription_identifiers.clear();
            properties.subscription_identifiers.extend(self.sub_id);
            properties.message_expiry_interval = self.expires_at.map(|at| {
                // The remaining lifetime, rounded up so a live message keeps its interval.
                let left = at.saturating_sub(now_ms()).div_ceil(1000);
                u32::try_from(left).unwrap_or(u32::MAX)
            });
        }
        Publish {
            dup: dup && qos != QosPid::AtMostOnce,
            qos,
            retain: self.retain,
            topic: self.topic.clone(),
            properties,
            payload: self.payload.clone(),
        }
    }
}

/// Appends a `PUBLISH` for `out` to `outbox`, held to the outbox's pending limit.
///
/// A packet larger than the client's Maximum Packet Size is not sent (MQTT 5 §3.1.2.11.4:
/// the server discards it as if it had been delivered); `Delivered` is returned for it.
pub(super) fn push_publish(
    outbox: &Arc<Outbox>,
    version: Version,
    max_packet: usize,
    out: &Outgoing,
    pid: Option<PacketId>,
    dup: bool,
    ctx: &mut DeliveryCtx,
) -> Delivery {
    let publish = out.packet(version, pid, dup);
    if max_packet < usize::MAX {
        let packet = herald_protocol::mqtt::Packet::Publish(publish.clone());
        match herald_protocol::mqtt::encoded_len(version, &packet) {
            Ok(len) if len <= max_packet => {}
            _ => {
                tracing::debug!(topic = %out.topic, "message larger than the client accepts; dropped");
                return Delivery::Delivered;
            }
        }
    }
    outbox.push_message(ctx, out.wire_size(), |w| {
        // The head is written only when the whole packet can be encoded; the payload
        // then follows it as its own (shared) part.
        if encode_publish_head(w.buf(), version, &publish).is_ok() {
            w.put_payload(&publish.payload);
        }
    })
}

/// An MQTT client's publish, as the MQTT sinks need to see it.
#[derive(Debug)]
pub(super) struct Origin {
    /// The topic as the publisher wrote it (saves mapping the subject back).
    pub(super) topic: TopicName,
    /// The QoS it was published with.
    pub(super) qos: QoS,
    /// Its RETAIN flag (forwarded only to Retain As Published subscriptions).
    pub(super) retain: bool,
    /// Its MQTT 5 properties, Topic Alias and Message Expiry Interval removed.
    pub(super) props: Option<Arc<PublishProperties>>,
    /// When it expires (ms since the epoch).
    pub(super) expires_at: Option<u64>,
}

/// Carries an MQTT publish's QoS, RETAIN flag, topic and expiry across
/// cluster routes, so an MQTT subscriber on another node gets it as one on
/// the publisher's node would. Its other MQTT 5 properties travel as what
/// they become for every protocol: user properties as headers, the response
/// topic as the reply subject (content type, correlation data and payload
/// format do not cross yet).
#[derive(Debug)]
pub(crate) struct RouteCodec;

impl herald_cluster::ExtensionCodec for RouteCodec {
    fn encode(&self, msg: &Message) -> Option<Bytes> {
        use bytes::BufMut;
        let origin = msg.extension::<Origin>()?;
        let mut out = bytes::BytesMut::with_capacity(11 + origin.topic.as_str().len());
        out.put_u8(origin.qos as u8);
        out.put_u8(u8::from(origin.retain));
        match origin.expires_at {
            Some(at) => {
                out.put_u8(1);
                out.put_u64(at);
            }
            None => out.put_u8(0),
        }
        out.put_slice(origin.topic.as_str().as_bytes());
        Some(out.freeze())
    }

    fn decode(&self, bytes: &[u8], msg: &Message) -> Option<herald_core::Extension> {
        let (&qos, rest) = bytes.split_first()?;
        let (&retain, rest) = rest.split_first()?;
        let (&has_expiry, rest) = rest.split_first()?;
        let (expires_at, rest) = if has_expiry == 1 {
            let (at, rest) = rest.split_at_checked(8)?;
            (Some(u64::from_be_bytes(at.try_into().ok()?)), rest)
        } else {
            (None, rest)
        };
        let topic = TopicName::new(std::str::from_utf8(rest).ok()?).ok()?;
        Some(herald_core::Extension::new(Arc::new(Origin {
            topic,
            qos: QoS::from_bits(qos)?,
            retain: retain == 1,
            props: foreign_properties(msg),
            expires_at,
        })))
    }
}

/// The MQTT 5 properties of a message from another protocol: its NATS headers become User
/// Properties (in order) and its reply subject the Response Topic, so an MQTT 5 client can
/// read both and answer a NATS request.
pub(super) fn foreign_properties(msg: &Message) -> Option<Arc<PublishProperties>> {
    let response_topic = msg
        .reply
        .as_ref()
        .and_then(|reply| subject_to_topic(reply.as_bytes()).ok())
        .and_then(|topic| TopicName::new(&topic).ok());
    let user_properties: Vec<UserProperty> = msg
        .headers
        .as_ref()
        .map(|h| h.iter().map(|(n, v)| UserProperty::new(n, v)).collect())
        .unwrap_or_default();
    if response_topic.is_none() && user_properties.is_empty() {
        return None;
    }
    Some(Arc::new(PublishProperties {
        response_topic,
        user_properties,
        ..PublishProperties::default()
    }))
}
