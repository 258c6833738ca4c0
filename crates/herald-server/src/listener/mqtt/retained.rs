//! Retained messages, kept durably in a herald stream.
//!
//! Stream `MQTT_RETAINED` captures `$MQTT.retained.>` with one message per subject, file
//! storage: a retained publish on topic `a/b` is stored as `$MQTT.retained.a.b`, replacing
//! the one before; an empty retained publish purges that subject. The stream is created on
//! the first retained publish, so a server that never sees one lists no extra stream.
//!
//! The stored payload is the MQTT payload as published (so `herald stream get` shows it);
//! header `Mqtt-Qos` holds the QoS, and `Mqtt-Props` the MQTT 5 properties (base64 of a
//! property-only `PUBLISH`), when there are any. Messages are written straight into the
//! stream (not published on the subject), so no subscriber ever sees this plumbing.
//!
//! In a cluster of three or more nodes running JetStream the stream has three replicas
//! (created through the cluster by the first retained publish on any node), so every
//! holder reads the same retained messages and they survive a node: writes go to its
//! leader as a publish with a reply (the leader's capture stores it and acks), clears as
//! a purge through its group. A two-node cluster keeps a stream per node.
//!
//! A stream write completes a little after the `PUBLISH` is handled. So that a subscriber
//! arriving in between (`mosquitto_pub -r ...; mosquitto_sub ...` in a script) still sees
//! the new retained message, each change is also kept in memory until its write is done,
//! and lookups apply those pending changes over what the stream holds.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use bytes::{Bytes, BytesMut};
use herald_core::{Headers, Message, Pattern, Subject};
use herald_protocol::mqtt::{
    MqttLimits, Packet, Publish, PublishProperties, QoS, TopicName, Version, encode, parse_client,
    subject_to_topic,
};
use herald_store::{PurgeRequest, Store, StreamConfig};
use parking_lot::Mutex;

/// The stream's name.
pub(super) const STREAM: &str = "MQTT_RETAINED";
/// The prefix of its subjects.
const PREFIX: &str = "$MQTT.retained.";
const QOS_HEADER: &str = "Mqtt-Qos";
const PROPS_HEADER: &str = "Mqtt-Props";

/// Retained changes not yet written, by stored subject: each change's number and the new
/// message (`None`: cleared).
type Pending = HashMap<String, (u64, Option<RetainedMessage>)>;

/// Replicas of the stream in a cluster.
const CLUSTER_REPLICAS: i64 = 3;
/// How long a retained write waits for the cluster (its meta group forming, a leader).
const CLUSTER_PATIENCE: Duration = Duration::from_secs(5);

/// The retained-message store.
#[derive(Debug, Clone)]
pub(super) struct Retained {
    store: Store,
    cluster: Option<herald_cluster::Cluster>,
    /// Changes whose stream write is not done yet.
    pending: Arc<Mutex<Pending>>,
    changes: Arc<AtomicU64>,
}

/// A retained message read back.
#[derive(Debug, Clone)]
pub(super) struct RetainedMessage {
    /// The subject it was published on.
    pub(super) subject: Subject,
    /// Its topic.
    pub(super) topic: TopicName,
    /// Its payload.
    pub(super) payload: Bytes,
    /// The QoS it was published with.
    pub(super) qos: QoS,
    /// Its MQTT 5 properties (Message Expiry Interval removed).
    pub(super) props: Option<Arc<PublishProperties>>,
    /// When it expires (ms since the epoch).
    pub(super) expires_at: Option<u64>,
}

impl Retained {
    pub(super) fn new(store: Store, cluster: Option<herald_cluster::Cluster>) -> Self {
        Self {
            store,
            cluster,
            pending: Arc::default(),
            changes: Arc::default(),
        }
    }

    fn stream(&self) -> Option<herald_store::Stream> {
        self.store.stream(STREAM).ok()
    }

    /// The stream, created if missing: replicated in a cluster of three or more nodes.
    async fn created(&self) -> Option<herald_store::Stream> {
        if let Some(stream) = self.stream() {
            return Some(stream);
        }
        let mut config = StreamConfig::new(STREAM, &["$MQTT.retained.>"]);
        config.description = "MQTT retained messages, one per topic".to_owned();
        config.max_msgs_per_subject = 1;
        let cluster = self
            .cluster
            .as_ref()
            .filter(|c| c.jetstream_clustered() && c.routes().len() + 1 >= 3);
        let Some(cluster) = cluster else {
            if let Err(error) = self.store.create_stream(config) {
                tracing::error!(%error, "cannot create the MQTT retained-message stream");
            }
            return self.stream();
        };
        config.num_replicas = CLUSTER_REPLICAS;
        let deadline = tokio::time::Instant::now() + CLUSTER_PATIENCE;
        // Right after start the meta group may still be forming.
        while let Err(error) = cluster.create_stream(&config).await {
            if tokio::time::Instant::now() >= deadline {
                tracing::error!(%error, "cannot create the replicated MQTT retained-message stream");
                return None;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.stream()
    }

    /// Replaces the retained message of `subject` (an empty payload removes it).
    /// `props` are the publish's MQTT 5 properties, Message Expiry Interval included.
    pub(super) async fn set(
        &self,
        subject: &Subject,
        qos: QoS,
        payload: Bytes,
        props: Option<&PublishProperties>,
    ) {
        let Ok(stored) = Subject::new(&format!("{PREFIX}{subject}")) else {
            return;
        };
        let key = stored.to_string();
        let change = self.changes.fetch_add(1, Ordering::Relaxed);
        let visible = (!payload.is_empty())
            .then(|| pending_message(subject, qos, &payload, props))
            .flatten();
        self.pending.lock().insert(key.clone(), (change, visible));
        self.write(&stored, qos, payload, props).await;
        let mut pending = self.pending.lock();
        if pending.get(&key).is_some_and(|(n, _)| *n == change) {
            pending.remove(&key);
        }
    }

    async fn write(
        &self,
        stored: &Subject,
        qos: QoS,
        payload: Bytes,
        props: Option<&PublishProperties>,
    ) {
        if payload.is_empty() {
            let Some(stream) = self.stream() else {
                return;
            };
            let request = PurgeRequest {
                filter: Some(stored.to_string()),
                ..PurgeRequest::default()
            };
            let purged = match &self.cluster {
                Some(cluster) if stream.is_replicated() => {
                    cluster.purge_stream(STREAM, &request).await.map(|_| ())
                }
                _ => stream.purge(&request).map(|_| ()),
            };
            if let Err(error) = purged {
                tracing::warn!(%error, %stored, "cannot clear a retained message");
            }
            return;
        }
        let Some(stream) = self.created().await else {
            return;
        };
        let mut headers = Headers::builder();
        let qos_text = qos.bits().to_string();
        headers = match headers.insert(QOS_HEADER, &qos_text) {
            Ok(h) => h,
            Err(_) => return,
        };
        if let Some(encoded) = props.filter(|p| !p.is_empty()).and_then(encode_props) {
            headers = match headers.insert(PROPS_HEADER, &encoded) {
                Ok(h) => h,
                Err(_) => return,
            };
        }
        let msg = Message::new(stored.clone(), payload).with_headers(headers.build());
        if stream.is_replicated() {
            self.write_replicated(msg).await;
        } else if let Err(error) = stream.publish(msg).await {
            tracing::warn!(%error, %stored, "cannot store a retained message");
        }
    }

    /// Stores `msg` in the replicated stream: sent to its leader, wherever it is, as any
    /// publish with a reply, and sent again (the stream keeps one per subject) while
    /// leadership moves.
    async fn write_replicated(&self, msg: Message) {
        let broker = self.store.broker();
        let deadline = tokio::time::Instant::now() + 2 * CLUSTER_PATIENCE;
        loop {
            let error = match broker.request_message(msg.clone(), CLUSTER_PATIENCE).await {
                Ok(ack) => serde_json::from_slice::<serde_json::Value>(&ack.payload)
                    .ok()
                    .and_then(|ack| ack.get("error").map(ToString::to_string)),
                Err(error) => Some(error.to_string()),
            };
            let Some(error) = error else {
                return;
            };
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(%error, subject = %msg.subject, "cannot store a retained message");
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The retained messages on subjects matching any of `patterns` (blocking: reads the
    /// store). Expired ones are left out.
    pub(super) fn lookup(&self, patterns: &[Pattern]) -> Vec<RetainedMessage> {
        let now = super::delivery::now_ms();
        let mut found: HashMap<String, RetainedMessage> = HashMap::new();
        if let Some(stream) = self.stream() {
            for pattern in patterns {
                let Ok(stored) = Pattern::new(&format!("{PREFIX}{pattern}")) else {
                    continue;
                };
                for (subject, _) in stream.subject_counts(&stored) {
                    let Ok(literal) = Pattern::new(&subject) else {
                        continue;
                    };
                    let Ok(msg) = stream.last_by_subject(&literal) else {
                        continue;
                    };
                    if let Some(retained) = decode(&subject, msg, now) {
                        found.insert(subject, retained);
                    }
                }
            }
        }
        for (key, (_, change)) in self.pending.lock().iter() {
            let Some(subject) = key.strip_prefix(PREFIX).and_then(|s| Subject::new(s).ok()) else {
                continue;
            };
            if !patterns.iter().any(|p| p.matches(&subject)) {
                continue;
            }
            match change {
                Some(msg) => found.insert(key.clone(), msg.clone()),
                None => found.remove(key),
            };
        }
        let mut found: Vec<RetainedMessage> = found.into_values().collect();
        found.sort_by(|a, b| a.topic.cmp(&b.topic));
        found
    }
}

/// How a retained message that is still being written reads back.
fn pending_message(
    subject: &Subject,
    qos: QoS,
    payload: &Bytes,
    props: Option<&PublishProperties>,
) -> Option<RetainedMessage> {
    let topic = TopicName::new(&subject_to_topic(subject.as_bytes()).ok()?).ok()?;
    let mut props = props.cloned();
    let expires_at = props
        .as_mut()
        .and_then(|p| p.message_expiry_interval.take())
        .map(|secs| super::delivery::now_ms() + u64::from(secs) * 1000);
    Some(RetainedMessage {
        subject: subject.clone(),
        topic,
        payload: payload.clone(),
        qos,
        props: props.filter(|p| !p.is_empty()).map(Arc::new),
        expires_at,
    })
}

fn decode(stored: &str, msg: herald_store::StoredMessage, now: u64) -> Option<RetainedMessage> {
    let subject = stored.strip_prefix(PREFIX)?;
    let topic = TopicName::new(&subject_to_topic(subject.as_bytes()).ok()?).ok()?;
    let headers = msg.headers.as_ref();
    let qos = headers
        .and_then(|h| h.get(QOS_HEADER))
        .and_then(|q| q.parse::<u8>().ok())
        .and_then(QoS::from_bits)
        .unwrap_or(QoS::AtMostOnce);
    let mut props = headers
        .and_then(|h| h.get(PROPS_HEADER))
        .and_then(decode_props);
    let stored_ms = u64::try_from(msg.time / 1_000_000).unwrap_or(0);
    let expires_at = props
        .as_mut()
        .and_then(|p| p.message_expiry_interval.take())
        .map(|secs| stored_ms + u64::from(secs) * 1000);
    if expires_at.is_some_and(|at| at <= now) {
        return None;
    }
    Some(RetainedMessage {
        subject: Subject::new(subject).ok()?,
        topic,
        payload: msg.payload,
        qos,
        props: props.filter(|p| !p.is_empty()).map(Arc::new),
        expires_at,
    })
}

/// MQTT 5 properties as base64 text: a `PUBLISH` that carries only them.
pub(super) fn encode_props(props: &PublishProperties) -> Option<String> {
    let publish = Publish {
        properties: props.clone(),
        ..Publish::new(TopicName::new("p").ok()?, Bytes::new())
    };
    let mut buf = BytesMut::new();
    encode(&mut buf, Version::V5, &Packet::Publish(publish)).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(&buf))
}

/// The properties [`encode_props`] wrote.
pub(super) fn decode_props(text: &str) -> Option<PublishProperties> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    let mut buf = BytesMut::from(&bytes[..]);
    let limits = MqttLimits {
        max_packet_size: MqttLimits::PROTOCOL_MAX_PACKET_SIZE,
    };
    match parse_client(&mut buf, &limits, Version::V5) {
        Ok(Some(Packet::Publish(publish))) => Some(publish.properties),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_protocol::mqtt::UserProperty;

    #[test]
    fn properties_round_trip_through_text() {
        let props = PublishProperties {
            content_type: Some("text/plain".to_owned()),
            message_expiry_interval: Some(30),
            user_properties: vec![UserProperty::new("a", "1\r\n2"), UserProperty::new("a", "")],
            ..PublishProperties::default()
        };
        let text = encode_props(&props).expect("encodes");
        assert_eq!(decode_props(&text), Some(props));
        assert_eq!(decode_props("not base64!"), None);
    }
}
