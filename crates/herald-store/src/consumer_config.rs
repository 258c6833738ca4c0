//! Consumer configuration, shaped as JetStream's `ConsumerConfig`.
//!
//! Responses must echo what was configured and nothing more: async-nats
//! decides pull or push from whether `deliver_subject` is present at all, so
//! every optional string is `Option` and omitted when unset.

use std::collections::BTreeMap;
use std::time::Duration;

use herald_core::Pattern;
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::config::{NameKind, Retention, StreamConfig, validate_name};
use crate::serde_util::{
    is_false, is_zero_duration, is_zero_i64, is_zero_u64, nanos, nanos_list, null_default,
};

/// Where a new consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliverPolicy {
    /// From the first message.
    #[default]
    All,
    /// From the last message.
    Last,
    /// Only messages stored after the consumer is created.
    New,
    /// From `opt_start_seq`.
    ByStartSequence,
    /// From the first message at or after `opt_start_time`.
    ByStartTime,
    /// The last message of every subject, then new ones.
    LastPerSubject,
}

/// How deliveries are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckPolicy {
    /// No acks: delivered means done (the Go zero value, hence the default).
    #[default]
    None,
    /// An ack acknowledges that message and every one before it.
    All,
    /// Each message is acknowledged on its own.
    Explicit,
}

/// How fast stored messages are replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayPolicy {
    /// As fast as the consumer takes them.
    #[default]
    Instant,
    /// With the gaps they were published with.
    Original,
}

/// A consumer's configuration (JetStream `ConsumerConfig`, plus herald's
/// dead-letter subject and header filter).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsumerConfig {
    /// Durable name: the consumer survives restarts and inactivity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable_name: Option<String>,
    /// Name (set from the API subject, or generated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where it starts.
    #[serde(default, deserialize_with = "null_default")]
    pub deliver_policy: DeliverPolicy,
    /// Start sequence for `by_start_sequence`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_u64"
    )]
    pub opt_start_seq: u64,
    /// Start time (RFC 3339) for `by_start_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    /// Ack policy.
    #[serde(default, deserialize_with = "null_default")]
    pub ack_policy: AckPolicy,
    /// Time to wait for an ack before redelivering.
    #[serde(default, with = "nanos")]
    pub ack_wait: Duration,
    /// Most deliveries of one message (-1 = unlimited).
    #[serde(default, deserialize_with = "null_default")]
    pub max_deliver: i64,
    /// Redelivery delays by attempt.
    #[serde(default, with = "nanos_list", skip_serializing_if = "Vec::is_empty")]
    pub backoff: Vec<Duration>,
    /// Only messages on matching subjects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_subject: Option<String>,
    /// Only messages on subjects matching one of these.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub filter_subjects: Vec<String>,
    /// Replay speed.
    #[serde(default, deserialize_with = "null_default")]
    pub replay_policy: ReplayPolicy,
    /// Push rate limit in bits per second (accepted, not enforced).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_u64"
    )]
    pub rate_limit_bps: u64,
    /// Ack sampling ("50" or "50%"; accepted, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_freq: Option<String>,
    /// Most queued pull requests.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_i64"
    )]
    pub max_waiting: i64,
    /// Most delivered-unacknowledged messages (-1 = unlimited).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_i64"
    )]
    pub max_ack_pending: i64,
    /// Deliver headers and `Nats-Msg-Size`, not the payload.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub headers_only: bool,
    /// Largest pull batch (0 = any).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_i64"
    )]
    pub max_batch: i64,
    /// Largest pull `max_bytes` (0 = any).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_i64"
    )]
    pub max_bytes: i64,
    /// Longest pull expiry (zero = any).
    #[serde(default, with = "nanos", skip_serializing_if = "is_zero_duration")]
    pub max_expires: Duration,
    /// Push consumers: where deliveries go. Absent = pull consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_subject: Option<String>,
    /// Push consumers: queue group on the deliver subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_group: Option<String>,
    /// Push consumers: flow control.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub flow_control: bool,
    /// Push consumers: idle heartbeat interval.
    #[serde(default, with = "nanos", skip_serializing_if = "is_zero_duration")]
    pub idle_heartbeat: Duration,
    /// Delete after this long without activity.
    #[serde(default, with = "nanos", skip_serializing_if = "is_zero_duration")]
    pub inactive_threshold: Duration,
    /// Replicas (0 = the stream's).
    #[serde(default, deserialize_with = "null_default")]
    pub num_replicas: i64,
    /// Keep state in memory only.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub mem_storage: bool,
    /// User metadata.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub metadata: BTreeMap<String, String>,
    /// herald: subject that messages are republished to after `max_deliver`
    /// attempts or a `+TERM`, with headers naming their stream, sequence and
    /// delivery count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_subject: Option<String>,
    /// herald: a header filter expression (CEL, as web subscriptions take
    /// it); only messages whose headers pass it are delivered. May change
    /// on update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_filter: Option<String>,
}

/// Default ack wait, as nats-server.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
/// Default max ack pending, as nats-server.
pub const DEFAULT_MAX_ACK_PENDING: i64 = 1000;
/// Default max waiting pull requests, as nats-server.
pub const DEFAULT_MAX_WAITING: i64 = 512;
/// Default inactivity threshold of ephemeral consumers, as nats-server.
pub const DEFAULT_EPHEMERAL_INACTIVE: Duration = Duration::from_secs(5);

impl ConsumerConfig {
    /// Whether deliveries are pushed to a deliver subject.
    pub fn is_push(&self) -> bool {
        self.deliver_subject.is_some()
    }

    /// Whether the consumer is durable.
    pub fn is_durable(&self) -> bool {
        self.durable_name.is_some()
    }

    /// What a consumer with this config may deliver, from a stream that
    /// captures `stream_subjects`: its filters, or without any, the
    /// stream's subjects (`>` when it captures none itself and is fed by
    /// others). Who may read a consumer's messages is checked against it.
    pub fn reach(&self, stream_subjects: &[String]) -> Vec<Pattern> {
        let filters = self.filters();
        if !filters.is_empty() {
            return filters;
        }
        let mut reach: Vec<Pattern> = stream_subjects
            .iter()
            .filter_map(|s| Pattern::new(s).ok())
            .collect();
        if reach.is_empty() {
            reach.extend(Pattern::new(">").ok());
        }
        reach
    }

    /// The filter patterns (empty = everything).
    pub fn filters(&self) -> Vec<Pattern> {
        self.filter_subject
            .iter()
            .chain(self.filter_subjects.iter())
            .filter(|s| !s.is_empty())
            .filter_map(|s| Pattern::new(s).ok())
            .collect()
    }

    /// The compiled header filter (valid after [`normalize`](Self::normalize)).
    pub fn compiled_header_filter(&self) -> Option<herald_core::HeaderFilter> {
        self.header_filter
            .as_deref()
            .and_then(|f| herald_core::HeaderFilter::new(f).ok())
    }

    /// Fills defaults as nats-server reports them and checks the config
    /// against its stream.
    pub fn normalize(&mut self, stream: &StreamConfig) -> Result<(), ApiError> {
        if self
            .header_filter
            .as_deref()
            .is_some_and(|f| f.trim().is_empty())
        {
            self.header_filter = None;
        }
        if let Some(f) = &self.header_filter {
            herald_core::HeaderFilter::new(f).map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        if let Some(name) = &self.durable_name {
            validate_name(name, NameKind::Consumer)?;
        }
        if let Some(name) = &self.name {
            validate_name(name, NameKind::Consumer)?;
        }
        if self.filter_subject.as_deref() == Some("") {
            self.filter_subject = None;
        }
        if self.filter_subject.is_some() && !self.filter_subjects.is_empty() {
            return Err(ApiError::new(
                400,
                10136,
                "consumer cannot have both FilterSubject and FilterSubjects specified",
            ));
        }
        let stream_patterns = stream.patterns();
        let filters: Vec<&String> = self
            .filter_subject
            .iter()
            .chain(self.filter_subjects.iter())
            .collect();
        let mut parsed: Vec<Pattern> = Vec::new();
        for f in filters {
            let p = Pattern::new(f).map_err(|_| {
                ApiError::new(
                    400,
                    10093,
                    "consumer filter subject is not a valid subset of the interest subjects",
                )
            })?;
            if !stream_patterns.iter().any(|s| s.overlaps(&p)) {
                return Err(ApiError::new(
                    400,
                    10093,
                    "consumer filter subject is not a valid subset of the interest subjects",
                ));
            }
            if parsed.iter().any(|q| q.overlaps(&p)) {
                return Err(ApiError::new(
                    400,
                    10138,
                    "consumer subject filters cannot overlap",
                ));
            }
            parsed.push(p);
        }
        if let Some(deliver) = &self.deliver_subject {
            if deliver.is_empty() {
                self.deliver_subject = None;
            } else {
                let p = Pattern::new(deliver).map_err(|_| {
                    ApiError::bad_request(format!("invalid deliver subject {deliver:?}"))
                })?;
                if !p.is_literal() {
                    return Err(ApiError::new(
                        400,
                        10079,
                        "consumer deliver subject has wildcards",
                    ));
                }
                // Deliveries there would be requests to the JetStream API or
                // another consumer, made by the server on nobody's behalf.
                if deliver.starts_with("$JS.") {
                    return Err(ApiError::bad_request(
                        "consumer deliver subject may not be a JetStream subject ($JS.…)",
                    ));
                }
            }
        }
        if self.deliver_group.as_deref() == Some("") {
            self.deliver_group = None;
        }
        if !self.is_push() {
            if self.flow_control {
                return Err(ApiError::new(
                    400,
                    10089,
                    "consumer flow control requires a push based consumer",
                ));
            }
            if !self.idle_heartbeat.is_zero() {
                return Err(ApiError::new(
                    400,
                    10088,
                    "consumer idle heartbeat requires a push based consumer",
                ));
            }
            if self.max_waiting == 0 {
                self.max_waiting = DEFAULT_MAX_WAITING;
            }
        }
        match self.deliver_policy {
            DeliverPolicy::ByStartSequence if self.opt_start_seq == 0 => {
                return Err(ApiError::consumer_create(
                    "consumer delivery policy is deliver by start sequence, but optional start sequence is not set",
                ));
            }
            DeliverPolicy::ByStartTime => match self
                .opt_start_time
                .as_deref()
                .map(crate::time::parse_rfc3339)
            {
                Some(Some(_)) => {}
                _ => {
                    return Err(ApiError::consumer_create(
                        "consumer delivery policy is deliver by start time, but optional start time is not set",
                    ));
                }
            },
            DeliverPolicy::ByStartSequence => {}
            _ if self.opt_start_seq != 0 || self.opt_start_time.is_some() => {
                return Err(ApiError::consumer_create(
                    "consumer delivery policy is not by start sequence or time, but optional start sequence or time is set",
                ));
            }
            _ => {}
        }
        if self.deliver_policy == DeliverPolicy::LastPerSubject
            && self.filter_subject.is_none()
            && self.filter_subjects.is_empty()
        {
            return Err(ApiError::new(
                400,
                10094,
                "consumer delivery policy is deliver last per subject, but optional filter subject is not set",
            ));
        }
        if stream.retention == Retention::WorkQueue && self.ack_policy != AckPolicy::Explicit {
            return Err(ApiError::new(
                400,
                10084,
                "consumer in pull mode requires explicit ack policy on workqueue stream",
            ));
        }
        if self.ack_policy != AckPolicy::None {
            if self.ack_wait.is_zero() {
                self.ack_wait = self.backoff.first().copied().unwrap_or(DEFAULT_ACK_WAIT);
            }
            if self.max_ack_pending == 0 {
                self.max_ack_pending = if stream.consumer_limits.max_ack_pending > 0 {
                    stream.consumer_limits.max_ack_pending
                } else {
                    DEFAULT_MAX_ACK_PENDING
                };
            }
        }
        if self.max_deliver == 0 {
            self.max_deliver = -1;
        }
        if !self.backoff.is_empty()
            && (self.max_deliver <= 0 || self.max_deliver as usize <= self.backoff.len())
        {
            return Err(ApiError::new(
                400,
                10116,
                "max deliver is required to be > length of backoff values",
            ));
        }
        if let Some(dl) = &self.dead_letter_subject {
            let target = Pattern::new(dl)
                .ok()
                .filter(Pattern::is_literal)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("invalid dead letter subject {dl:?}"))
                })?;
            if stream_patterns.iter().any(|s| s.contains(&target)) {
                return Err(ApiError::bad_request(
                    "dead letter subject must not be captured by its own stream",
                ));
            }
        }
        if self.durable_name.is_none() && self.inactive_threshold.is_zero() {
            self.inactive_threshold = if stream.consumer_limits.inactive_threshold.is_zero() {
                DEFAULT_EPHEMERAL_INACTIVE
            } else {
                stream.consumer_limits.inactive_threshold
            };
        }
        Ok(())
    }

    /// Checks that `self` (normalised) may replace `old`, as nats-server allows.
    pub fn check_update(&self, old: &ConsumerConfig) -> Result<(), ApiError> {
        let refuse = |what: &str| {
            Err(ApiError::consumer_create(format!(
                "{what} can not be updated"
            )))
        };
        if self.deliver_policy != old.deliver_policy {
            return refuse("deliver policy");
        }
        if self.opt_start_seq != old.opt_start_seq || self.opt_start_time != old.opt_start_time {
            return refuse("start sequence or time");
        }
        if self.ack_policy != old.ack_policy {
            return refuse("ack policy");
        }
        if self.replay_policy != old.replay_policy {
            return refuse("replay policy");
        }
        if self.is_push() != old.is_push() {
            return refuse("consumer kind (push or pull)");
        }
        if self.mem_storage != old.mem_storage {
            return refuse("memory storage");
        }
        Ok(())
    }
}
