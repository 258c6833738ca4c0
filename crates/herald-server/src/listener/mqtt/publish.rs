//! `PUBLISH` from clients and Will messages: topic aliases, the topic → subject mapping,
//! permissions, retained messages, and the QoS 1 and 2 answers.
//!
//! A QoS 2 message is forwarded when its `PUBLISH` arrives and its packet id remembered
//! until `PUBREL` (v5 §4.3.3 method B), so a repeated `PUBLISH` with that id is answered
//! `PUBREC` again without being forwarded twice.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use herald_core::{ConnId, Extension, Message, Subject};
use herald_protocol::mqtt::{
    Ack, Packet, PayloadFormat, Publish, PublishProperties, QosPid, ReasonCode, TopicName,
    topic_to_subject,
};

use super::MqttServer;
use super::connection::{Connection, Exit};
use super::delivery::{Origin, now_ms};
use super::session::Will;
use crate::listener::port::Gate;

/// Topic aliases a client may set (MQTT 5; announced in `CONNACK`), as mosquitto's default.
pub(super) const TOPIC_ALIAS_MAX: u16 = 10;

/// The subject an MQTT topic is published on, or the reason it cannot be: topics under
/// `$MQTT/` are herald's own, and some topics have no subject (see the mapping).
pub(super) fn publish_subject(topic: &TopicName) -> Result<Subject, ReasonCode> {
    if topic.as_str().starts_with("$MQTT/") {
        return Err(ReasonCode::TopicNameInvalid);
    }
    let subject = topic_to_subject(topic).map_err(|_| ReasonCode::TopicNameInvalid)?;
    Subject::new(&subject).map_err(|_| ReasonCode::TopicNameInvalid)
}

/// The properties forwarded with a message: everything but the per-hop Topic Alias and
/// the Message Expiry Interval (sent as the remaining lifetime). `None` when empty.
fn forwarded(mut props: PublishProperties) -> Option<Arc<PublishProperties>> {
    props.topic_alias = None;
    props.message_expiry_interval = None;
    props.subscription_identifiers.clear();
    (!props.is_empty()).then(|| Arc::new(props))
}

/// The reply subject for a Response Topic, so NATS responders can answer MQTT 5 requests.
fn reply_subject(props: &PublishProperties) -> Option<Subject> {
    props
        .response_topic
        .as_ref()
        .and_then(|topic| publish_subject(topic).ok())
}

impl Connection {
    /// Handles a `PUBLISH`; `Some` ends the connection (a bad Topic Alias).
    pub(super) async fn publish(&mut self, publish: Publish) -> Option<Exit> {
        let topic = match self.resolve_alias(&publish) {
            Ok(topic) => topic,
            Err(code) => return Some(Exit::Violation(code)),
        };
        if let QosPid::ExactlyOnce(id) = publish.qos {
            let Some(state) = self.attached() else {
                return Some(Exit::TakenOver);
            };
            if state.incoming.contains(&id.get()) {
                // Already forwarded; the client did not get our PUBREC.
                drop(state);
                self.send(&Packet::PubRec(Ack::new(id)));
                return None;
            }
            // Each QoS 2 publish waits for its PUBREL: past the Receive
            // Maximum the client broke its side of the window (MQTT-3.3.4-9),
            // and a client that never releases would grow this set for good.
            if state.incoming.len() >= usize::from(self.server.config.receive_maximum) {
                return Some(Exit::Violation(ReasonCode::ReceiveMaximumExceeded));
            }
        }
        let reason = match self.check(&topic, &publish) {
            Ok(subject) => self.forward(subject, topic, &publish).await,
            Err(code) => code,
        };
        match publish.qos {
            QosPid::AtMostOnce => {}
            QosPid::AtLeastOnce(id) => self.send(&Packet::PubAck(reason_ack(id, reason))),
            QosPid::ExactlyOnce(id) => {
                // "No matching subscribers" only in PUBACK, as mosquitto: it answers PUBREC
                // before it forwards, so it never knows there; clients see the same here.
                let reason = match reason {
                    ReasonCode::NoMatchingSubscribers => ReasonCode::Success,
                    other => other,
                };
                if !reason.is_error() {
                    let Some(mut state) = self.attached() else {
                        return Some(Exit::TakenOver);
                    };
                    state.incoming.insert(id.get());
                    drop(state);
                    self.session.touch();
                }
                self.send(&Packet::PubRec(reason_ack(id, reason)));
            }
        }
        None
    }

    /// The topic of a `PUBLISH`, through its Topic Alias (MQTT 5): a topic with an alias
    /// sets it, an empty topic uses it.
    fn resolve_alias(&mut self, publish: &Publish) -> Result<TopicName, ReasonCode> {
        let Some(alias) = publish.properties.topic_alias else {
            return Ok(publish.topic.clone());
        };
        if alias.get() > TOPIC_ALIAS_MAX {
            return Err(ReasonCode::TopicAliasInvalid);
        }
        if publish.topic.is_empty() {
            return self
                .aliases
                .get(&alias.get())
                .cloned()
                .ok_or(ReasonCode::ProtocolError);
        }
        self.aliases.insert(alias.get(), publish.topic.clone());
        Ok(publish.topic.clone())
    }

    /// Whether the client may publish this: a mappable topic, permitted, a payload within
    /// `limits.max_payload`, and UTF-8 when it says so.
    fn check(&self, topic: &TopicName, publish: &Publish) -> Result<Subject, ReasonCode> {
        let subject = publish_subject(topic).inspect_err(|_| {
            tracing::debug!(%topic, "topic has no subject; publish refused");
        })?;
        if self.port.gate().publish(&subject).is_err() {
            return Err(ReasonCode::NotAuthorized);
        }
        if publish.payload.len() > self.shared.limits.max_payload {
            // The packet limit leaves room for properties; the payload limit is herald's,
            // the same on every protocol.
            self.shared
                .stats
                .payload_refusals
                .fetch_add(1, Ordering::Relaxed);
            return Err(ReasonCode::QuotaExceeded);
        }
        if publish.properties.payload_format_indicator == Some(PayloadFormat::Utf8)
            && std::str::from_utf8(&publish.payload).is_err()
        {
            return Err(ReasonCode::PayloadFormatInvalid);
        }
        Ok(subject)
    }

    /// Publishes to the broker (and the retained store); the MQTT 5 reason for the ack.
    async fn forward(
        &mut self,
        subject: Subject,
        topic: TopicName,
        publish: &Publish,
    ) -> ReasonCode {
        let expiry = publish.properties.message_expiry_interval;
        let origin = Arc::new(Origin {
            topic,
            qos: publish.qos.qos(),
            retain: publish.retain,
            props: forwarded(publish.properties.clone()),
            expires_at: expiry.map(|secs| now_ms() + u64::from(secs) * 1000),
        });
        let mut msg = Message::new(subject.clone(), publish.payload.clone())
            .with_extension(Extension::new(origin));
        msg.reply = reply_subject(&publish.properties);
        msg.headers = user_property_headers(&publish.properties.user_properties);
        let receivers = self.port.publish_checked(&msg);
        if publish.retain {
            self.flush_before_wait();
            // Kept with the message: everything but the per-hop Topic Alias.
            let mut props = publish.properties.clone();
            props.topic_alias = None;
            self.server
                .retained
                .set(
                    &subject,
                    publish.qos.qos(),
                    publish.payload.clone(),
                    Some(&props),
                )
                .await;
        }
        if receivers == 0 {
            ReasonCode::NoMatchingSubscribers
        } else {
            ReasonCode::Success
        }
    }
}

fn reason_ack(id: herald_protocol::mqtt::PacketId, reason: ReasonCode) -> Ack {
    let mut ack = Ack::new(id);
    ack.reason_code = reason;
    ack
}

/// The Will of a `CONNECT`, checked as a publish would be.
pub(super) fn will_of(
    will: herald_protocol::mqtt::Will,
    gate: Gate<'_>,
) -> Result<Will, ReasonCode> {
    let subject = publish_subject(&will.topic)?;
    if gate.publish(&subject).is_err() {
        return Err(ReasonCode::NotAuthorized);
    }
    let props = &will.properties;
    let publish_props = PublishProperties {
        payload_format_indicator: props.payload_format_indicator,
        content_type: props.content_type.clone(),
        response_topic: props.response_topic.clone(),
        correlation_data: props.correlation_data.clone(),
        user_properties: props.user_properties.clone(),
        ..PublishProperties::default()
    };
    Ok(Will {
        subject,
        topic: will.topic,
        payload: will.payload,
        qos: will.qos,
        retain: will.retain,
        props: forwarded(publish_props),
        expiry_interval: props.message_expiry_interval,
        delay: props.will_delay_interval.unwrap_or(0),
        requester: gate.requester(),
    })
}

impl MqttServer {
    /// Publishes a Will as its client would have (No Local applies to its session), and
    /// stores it when it is retained.
    pub(super) async fn publish_will(&self, conn: ConnId, will: Will) {
        tracing::debug!(topic = %will.topic, "publishing Will");
        let origin = Arc::new(Origin {
            topic: will.topic.clone(),
            qos: will.qos,
            retain: will.retain,
            props: will.props.clone(),
            expires_at: will
                .expiry_interval
                .map(|secs| now_ms() + u64::from(secs) * 1000),
        });
        let mut msg = Message::new(will.subject.clone(), will.payload.clone())
            .with_extension(Extension::new(origin));
        msg.reply = will.props.as_deref().and_then(reply_subject);
        msg.headers = will
            .props
            .as_deref()
            .and_then(|p| user_property_headers(&p.user_properties));
        let msg = will.requester.clone().stamp_request(msg);
        self.shared.broker.publish_from(conn, &msg);
        if will.retain {
            let mut props = will.props.as_deref().cloned().unwrap_or_default();
            props.message_expiry_interval = will.expiry_interval;
            self.retained
                .set(&will.subject, will.qos, will.payload, Some(&props))
                .await;
        }
    }
}

/// An MQTT 5 publish's User Properties as message headers, in order, so
/// NATS subscribers see them and streams act on them (`Nats-Msg-Id`,
/// `Nats-TTL`, `Nats-Schedule`, ...). Properties that cannot be headers
/// (a name with a colon, a line break) stay MQTT-only.
fn user_property_headers(
    properties: &[herald_protocol::mqtt::UserProperty],
) -> Option<herald_core::Headers> {
    let mut builder = herald_core::Headers::builder();
    let mut any = false;
    for property in properties {
        any |= builder.push(&property.name, &property.value).is_ok();
    }
    any.then(|| builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_without_a_subject_are_refused() {
        let topic = |s: &str| TopicName::new(s).expect("valid topic");
        assert_eq!(
            publish_subject(&topic("sensors/kitchen/temp")).map(|s| s.to_string()),
            Ok("sensors.kitchen.temp".to_owned())
        );
        assert_eq!(
            publish_subject(&topic("$MQTT/retained/x")),
            Err(ReasonCode::TopicNameInvalid)
        );
        assert_eq!(
            publish_subject(&topic("a b")),
            Err(ReasonCode::TopicNameInvalid)
        );
        assert_eq!(
            publish_subject(&topic("a/*")),
            Err(ReasonCode::TopicNameInvalid)
        );
    }

    #[test]
    fn forwarded_properties_drop_the_per_hop_ones() {
        let props = PublishProperties {
            topic_alias: std::num::NonZeroU16::new(3),
            message_expiry_interval: Some(9),
            ..PublishProperties::default()
        };
        assert!(forwarded(props).is_none());
        let props = PublishProperties {
            content_type: Some("json".into()),
            ..PublishProperties::default()
        };
        assert_eq!(
            forwarded(props).and_then(|p| p.content_type.clone()),
            Some("json".into())
        );
    }
}
