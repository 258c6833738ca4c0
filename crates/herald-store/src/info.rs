//! What the store reports: stream state and info, consumer info, publish
//! acks and purge requests, in JetStream's JSON shapes.

use serde::{Deserialize, Serialize};

use crate::config::StreamConfig;
use crate::consumer_config::ConsumerConfig;
use crate::serde_util::{is_false, null_default};

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A stream's numbers (JetStream `StreamState`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    /// Live messages.
    pub messages: u64,
    /// Bytes they count for.
    pub bytes: u64,
    /// First live sequence (`last_seq + 1` when empty).
    pub first_seq: u64,
    /// Time of the first live message (RFC 3339; Go zero time when empty).
    pub first_ts: String,
    /// Last sequence ever stored.
    pub last_seq: u64,
    /// Sequences between the first and the last that were removed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_deleted: u64,
    /// Time of the last message.
    pub last_ts: String,
    /// Distinct subjects with live messages.
    pub num_subjects: u64,
    /// Consumers of the stream.
    pub consumer_count: u64,
}

/// A stream's config, creation time and state (JetStream `StreamInfo`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamInfo {
    /// Its configuration.
    pub config: StreamConfig,
    /// When it was created (RFC 3339).
    pub created: String,
    /// Its numbers.
    pub state: StreamState,
    /// Time of this report.
    pub ts: String,
}

/// The answer to a stored publish (JetStream `PubAck`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PubAck {
    /// The stream that stored it.
    pub stream: String,
    /// Its sequence (the original one for a duplicate).
    pub seq: u64,
    /// True when it was a duplicate and not stored again.
    #[serde(default, skip_serializing_if = "is_false")]
    pub duplicate: bool,
}

/// What to purge (JetStream purge request).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeRequest {
    /// Only messages on subjects matching this.
    #[serde(default, deserialize_with = "null_default")]
    pub filter: Option<String>,
    /// Purge everything below this sequence.
    #[serde(default, deserialize_with = "null_default")]
    pub seq: u64,
    /// Keep this many of the newest (matching) messages.
    #[serde(default, deserialize_with = "null_default")]
    pub keep: u64,
}

/// A pair of sequences (JetStream `SequenceInfo`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencePair {
    /// Consumer sequence.
    pub consumer_seq: u64,
    /// Stream sequence.
    pub stream_seq: u64,
}

/// A consumer's config and progress (JetStream `ConsumerInfo`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsumerInfo {
    /// Its stream.
    pub stream_name: String,
    /// Its name.
    pub name: String,
    /// When it was created.
    pub created: String,
    /// Its configuration.
    pub config: ConsumerConfig,
    /// Last delivered.
    pub delivered: SequencePair,
    /// Everything at or below this is acknowledged.
    pub ack_floor: SequencePair,
    /// Delivered, not yet acknowledged.
    pub num_ack_pending: u64,
    /// Pending messages delivered more than once.
    pub num_redelivered: u64,
    /// Queued pull requests.
    pub num_waiting: u64,
    /// Matching messages not yet delivered.
    pub num_pending: u64,
    /// Push consumers: whether someone listens on the deliver subject.
    #[serde(default, skip_serializing_if = "is_false")]
    pub push_bound: bool,
    /// Time of this report.
    pub ts: String,
}
