//! Stream configuration, shaped and spelled as JetStream's `StreamConfig` so
//! that the NATS API, the HTTP API and the state files share one JSON form.
//!
//! Requests arrive with zeros meaning "default" (async-nats serialises its
//! whole default config); [`StreamConfig::normalize`] turns them into the
//! values nats-server reports (`-1` = unlimited, one replica, a two-minute
//! duplicate window) and refuses what herald cannot honour.

use std::collections::BTreeMap;
use std::time::Duration;

use herald_core::Pattern;
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::serde_util::{
    is_false, is_zero_duration, is_zero_i64, is_zero_u64, nanos, null_default,
};

/// When stored messages go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Retention {
    /// Only the limits remove messages.
    #[default]
    Limits,
    /// A message goes once every consumer interested in it has acknowledged it.
    Interest,
    /// A message goes once one consumer has acknowledged it.
    #[serde(rename = "workqueue")]
    WorkQueue,
}

/// What a full stream does with a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Discard {
    /// Remove the oldest messages to make room.
    #[default]
    Old,
    /// Refuse the new message.
    New,
}

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    /// Segment files in the data directory; survives restarts.
    #[default]
    File,
    /// Memory only; gone on restart.
    Memory,
}

/// Limits a stream puts on its consumers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerLimits {
    /// Default inactivity threshold of its consumers.
    #[serde(default, with = "nanos", skip_serializing_if = "is_zero_duration")]
    pub inactive_threshold: Duration,
    /// Default max ack pending of its consumers (0 = server default).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_i64"
    )]
    pub max_ack_pending: i64,
}

/// A stream's configuration (JetStream `StreamConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamConfig {
    /// The stream's name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Free text.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    /// Subjects (patterns) the stream captures.
    #[serde(default, deserialize_with = "null_default")]
    pub subjects: Vec<String>,
    /// Retention policy.
    #[serde(default, deserialize_with = "null_default")]
    pub retention: Retention,
    /// Most consumers (-1 = unlimited).
    #[serde(default, deserialize_with = "null_default")]
    pub max_consumers: i64,
    /// Most messages (-1 = unlimited).
    #[serde(default, deserialize_with = "null_default")]
    pub max_msgs: i64,
    /// Most bytes (-1 = unlimited).
    #[serde(default, deserialize_with = "null_default")]
    pub max_bytes: i64,
    /// Oldest message age (zero = unlimited).
    #[serde(default, with = "nanos")]
    pub max_age: Duration,
    /// Most messages per subject (-1 = unlimited).
    #[serde(default, deserialize_with = "null_default")]
    pub max_msgs_per_subject: i64,
    /// Largest message (-1 = unlimited).
    #[serde(default, deserialize_with = "null_default")]
    pub max_msg_size: i32,
    /// What a full stream does.
    #[serde(default, deserialize_with = "null_default")]
    pub discard: Discard,
    /// With discard new: apply `max_msgs_per_subject` by refusing.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub discard_new_per_subject: bool,
    /// File or memory.
    #[serde(default, deserialize_with = "null_default")]
    pub storage: StorageType,
    /// Replicas (herald is one server: 1).
    #[serde(default, deserialize_with = "null_default")]
    pub num_replicas: i64,
    /// No publish acks.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub no_ack: bool,
    /// Window in which a repeated `Nats-Msg-Id` is a duplicate.
    #[serde(default, with = "nanos")]
    pub duplicate_window: Duration,
    /// `none` (herald does not compress; `s2` is accepted and reported as asked).
    #[serde(default = "compression_none", deserialize_with = "compression_or_none")]
    pub compression: String,
    /// First sequence of a new stream.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_u64"
    )]
    pub first_seq: u64,
    /// Answer `DIRECT.GET` requests.
    #[serde(default, deserialize_with = "null_default")]
    pub allow_direct: bool,
    /// Mirror direct gets (no mirrors here; kept as asked).
    #[serde(default, deserialize_with = "null_default")]
    pub mirror_direct: bool,
    /// No more writes, deletes or purges.
    #[serde(default, deserialize_with = "null_default")]
    pub sealed: bool,
    /// Refuse message deletes.
    #[serde(default, deserialize_with = "null_default")]
    pub deny_delete: bool,
    /// Refuse purges.
    #[serde(default, deserialize_with = "null_default")]
    pub deny_purge: bool,
    /// Allow `Nats-Rollup` headers (a message replacing its subject's or the stream's).
    #[serde(default, deserialize_with = "null_default")]
    pub allow_rollup_hdrs: bool,
    /// Accept a `Nats-TTL` header: the message expires that long after it
    /// is stored (`never`: not even by `max_age`).
    #[serde(default, deserialize_with = "null_default")]
    pub allow_msg_ttl: bool,
    /// When a subject's last message goes by age, leave a marker message
    /// (`Nats-Marker-Reason: MaxAge`) that itself lives this long.
    #[serde(default, with = "nanos", skip_serializing_if = "is_zero_duration")]
    pub subject_delete_marker_ttl: Duration,
    /// Message schedules (nats-server 2.12+): a message with `Nats-Schedule`
    /// publishes another on its `Nats-Schedule-Target` later.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub allow_msg_schedules: bool,
    /// Defaults for its consumers.
    #[serde(default, deserialize_with = "null_default")]
    pub consumer_limits: ConsumerLimits,
    /// User metadata.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub metadata: BTreeMap<String, String>,
    /// Mirror source: not supported, refused when set.
    #[serde(default, skip_serializing)]
    pub mirror: Option<serde_json::Value>,
    /// Sources: not supported, refused when non-empty.
    #[serde(default, skip_serializing)]
    pub sources: Option<serde_json::Value>,
    /// Republish: not supported, refused when set.
    #[serde(default, skip_serializing)]
    pub republish: Option<serde_json::Value>,
    /// Atomic batch publishes (nats-server 2.12): not supported, refused when true.
    #[serde(default, deserialize_with = "null_default", skip_serializing)]
    pub allow_atomic: bool,
    /// Counter streams (nats-server 2.12): not supported, refused when true.
    #[serde(default, deserialize_with = "null_default", skip_serializing)]
    pub allow_msg_counter: bool,
}

fn compression_none() -> String {
    "none".to_owned()
}

fn compression_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = Option::<String>::deserialize(d)?.unwrap_or_default();
    Ok(if s.is_empty() { compression_none() } else { s })
}

impl StreamConfig {
    /// A file-backed, limits-retention stream named `name` capturing `subjects`.
    pub fn new(name: impl Into<String>, subjects: &[&str]) -> Self {
        let mut config: StreamConfig = serde_json::from_str("{}")
            .unwrap_or_else(|_| unreachable!("an empty object is a valid StreamConfig"));
        config.name = name.into();
        config.subjects = subjects.iter().map(|s| (*s).to_owned()).collect();
        config
    }

    /// Fills defaults as nats-server reports them and checks the rest.
    pub fn normalize(&mut self) -> Result<(), ApiError> {
        validate_name(&self.name, NameKind::Stream)?;
        if self.mirror.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ApiError::stream_config(
                "stream mirrors are not supported by herald",
            ));
        }
        if self
            .sources
            .as_ref()
            .is_some_and(|v| !v.is_null() && v != &serde_json::json!([]))
        {
            return Err(ApiError::stream_config(
                "stream sources are not supported by herald",
            ));
        }
        if self.republish.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ApiError::stream_config(
                "republish is not supported by herald",
            ));
        }
        for (asked, what) in [
            (self.allow_atomic, "atomic batch publishes"),
            (self.allow_msg_counter, "message counters"),
        ] {
            if asked {
                return Err(ApiError::stream_config(format!(
                    "{what} are not supported by herald"
                )));
            }
        }
        if self.allow_rollup_hdrs && self.deny_purge {
            return Err(ApiError::stream_config(
                "roll-ups require the purge permission",
            ));
        }
        if !self.subject_delete_marker_ttl.is_zero() {
            if self.subject_delete_marker_ttl < Duration::from_secs(1) {
                return Err(ApiError::stream_config(
                    "subject delete marker TTL must be at least 1 second",
                ));
            }
            // Markers expire by TTL and roll their subject up: as nats-server
            // (not pedantic) does, asking for them turns both on.
            self.allow_msg_ttl = true;
            self.allow_rollup_hdrs = true;
            self.deny_purge = false;
        }
        if self.allow_msg_schedules {
            // A schedule replaces its subject's earlier one (a rollup).
            self.allow_rollup_hdrs = true;
            self.deny_purge = false;
        }
        if self.subjects.is_empty() {
            self.subjects = vec![self.name.clone()];
        }
        for (i, subject) in self.subjects.iter().enumerate() {
            if Pattern::new(subject).is_err() {
                return Err(ApiError::stream_config(format!(
                    "invalid subject: {subject:?}"
                )));
            }
            let p = Pattern::new(subject).map_err(|e| ApiError::stream_config(e.to_string()))?;
            for other in &self.subjects[..i] {
                let o = Pattern::new(other).map_err(|e| ApiError::stream_config(e.to_string()))?;
                if p.overlaps(&o) {
                    return Err(ApiError::stream_config("duplicate subjects detected"));
                }
            }
        }
        for limit in [
            &mut self.max_consumers,
            &mut self.max_msgs,
            &mut self.max_bytes,
            &mut self.max_msgs_per_subject,
        ] {
            if *limit <= 0 {
                *limit = -1;
            }
        }
        if self.max_msg_size <= 0 {
            self.max_msg_size = -1;
        }
        if self.num_replicas <= 0 {
            self.num_replicas = 1;
        }
        if self.num_replicas > 5 {
            return Err(ApiError::stream_config("maximum replicas is 5"));
        }
        if !self.max_age.is_zero() && self.max_age < Duration::from_millis(100) {
            return Err(ApiError::stream_config("max age needs to be >= 100ms"));
        }
        if self.duplicate_window.is_zero() {
            self.duplicate_window = DEFAULT_DUPLICATE_WINDOW;
            if !self.max_age.is_zero() && self.max_age < self.duplicate_window {
                self.duplicate_window = self.max_age;
            }
        }
        if !self.max_age.is_zero() && self.duplicate_window > self.max_age {
            return Err(ApiError::stream_config(
                "duplicates window can not be larger then max age",
            ));
        }
        if self.compression != "none" && self.compression != "s2" {
            return Err(ApiError::stream_config(format!(
                "invalid compression {:?}",
                self.compression
            )));
        }
        Ok(())
    }

    /// The subject patterns, parsed (valid after [`normalize`](Self::normalize)).
    pub fn patterns(&self) -> Vec<Pattern> {
        self.subjects
            .iter()
            .filter_map(|s| Pattern::new(s).ok())
            .collect()
    }

    /// Checks that `self` (normalised) may replace `old`: what nats-server
    /// refuses to change on update.
    pub fn check_update(&self, old: &StreamConfig) -> Result<(), ApiError> {
        let refuse = |what: &str| {
            Err(ApiError::new(
                500,
                10052,
                format!("stream configuration update can not change {what}"),
            ))
        };
        if self.storage != old.storage {
            return refuse("storage type");
        }
        if self.retention != old.retention {
            return refuse("retention policy");
        }
        if self.first_seq != old.first_seq && self.first_seq != 0 {
            return refuse("first sequence");
        }
        if old.sealed && !self.sealed {
            return refuse("sealed setting");
        }
        if old.allow_msg_ttl && !self.allow_msg_ttl {
            return Err(ApiError::stream_config(
                "message TTL status can not be disabled",
            ));
        }
        if old.allow_msg_schedules && !self.allow_msg_schedules {
            return Err(ApiError::stream_config(
                "message schedules can not be disabled",
            ));
        }
        Ok(())
    }
}

/// Two-minute duplicate window, nats-server's default.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// What a name names, for its error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A stream name.
    Stream,
    /// A consumer or durable name.
    Consumer,
}

/// Checks a stream or consumer name: non-empty, at most 255 bytes, no `.`,
/// `*`, `>`, whitespace or path separators (it names a directory).
pub fn validate_name(name: &str, kind: NameKind) -> Result<(), ApiError> {
    let what = match kind {
        NameKind::Stream => "stream",
        NameKind::Consumer => "consumer",
    };
    if name.is_empty() {
        return Err(match kind {
            NameKind::Stream => ApiError::stream_config("stream name is required"),
            NameKind::Consumer => ApiError::consumer_create("consumer name is required"),
        });
    }
    if name.contains(['/', '\\']) {
        return Err(match kind {
            NameKind::Stream => {
                ApiError::new(400, 10128, "stream name can not contain path separators")
            }
            NameKind::Consumer => {
                ApiError::new(400, 10127, "consumer name can not contain path separators")
            }
        });
    }
    if name.len() > 255
        || name.contains(['.', '*', '>'])
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
        || name == ".."
    {
        return Err(match kind {
            NameKind::Stream => ApiError::stream_config(format!("invalid {what} name {name:?}")),
            NameKind::Consumer => {
                ApiError::new(400, 10103, "durable name can not contain '.', '*', '>'")
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn async_nats_default_config_normalises_as_nats_server_reports_it() {
        let json = r#"{"name":"ORDERS","max_bytes":0,"max_msgs":0,"max_msgs_per_subject":0,"discard":"old","subjects":["orders.>"],"retention":"limits","max_consumers":0,"max_age":0,"storage":"file","num_replicas":0,"consumer_limits":null}"#;
        let mut c: StreamConfig = serde_json::from_str(json).unwrap();
        c.normalize().unwrap();
        assert_eq!(c.max_msgs, -1);
        assert_eq!(c.max_bytes, -1);
        assert_eq!(c.max_msg_size, -1);
        assert_eq!(c.num_replicas, 1);
        assert_eq!(c.duplicate_window, DEFAULT_DUPLICATE_WINDOW);
        let out = serde_json::to_value(&c).unwrap();
        assert_eq!(out["duplicate_window"], 120_000_000_000u64);
        assert_eq!(out["compression"], "none");
        assert_eq!(out["retention"], "limits");
        assert!(out.get("description").is_none());
    }

    #[test]
    fn subjects_default_to_the_name_and_must_be_valid() {
        let mut c = StreamConfig::new("S", &[]);
        c.normalize().unwrap();
        assert_eq!(c.subjects, vec!["S".to_owned()]);
        let mut bad = StreamConfig::new("S", &["a..b"]);
        assert_eq!(bad.normalize().unwrap_err().err_code, 10052);
        let mut bad = StreamConfig::new("a.b", &["x"]);
        assert!(bad.normalize().is_err());
        let mut bad = StreamConfig::new("a/b", &["x"]);
        assert_eq!(bad.normalize().unwrap_err().err_code, 10128);
    }
}
