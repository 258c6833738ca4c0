//! Dead letters: after `max_deliver` attempts or a `+TERM`, an advisory on
//! `$JS.EVENT.ADVISORY.CONSUMER.…`, and a copy of the message on the
//! consumer's `dead_letter_subject` with headers naming where it came from,
//! so a dead-letter stream can keep it and `herald stream redrive` can put
//! it back.

use herald_core::{Headers, Message, Subject};

use super::ConsumerInner;
use crate::record::StoredMessage;
use crate::time::{now_nanos, rfc3339};

impl ConsumerInner {
    pub(super) fn dead_letter(&self, seq: u64, deliveries: u64, reason: &'static str) {
        let broker = &self.stream.inner.broker;
        let stream = self.stream.name();
        let (kind, subject) = if reason == "terminated" {
            ("io.nats.jetstream.advisory.v1.terminated", "MSG_TERMINATED")
        } else {
            (
                "io.nats.jetstream.advisory.v1.max_deliver",
                "MAX_DELIVERIES",
            )
        };
        let advisory = serde_json::json!({
            "type": kind,
            "id": format!("{stream}-{}-{seq}", self.name),
            "timestamp": rfc3339(now_nanos()),
            "stream": stream,
            "consumer": self.name,
            "stream_seq": seq,
            "deliveries": deliveries,
        });
        let advisory_subject = format!(
            "$JS.EVENT.ADVISORY.CONSUMER.{subject}.{stream}.{}",
            self.name
        );
        if let (Ok(s), Ok(body)) = (
            Subject::new(&advisory_subject),
            serde_json::to_vec(&advisory),
        ) {
            broker.publish_message(&Message::new(s, body));
        }
        let target = self.state.lock().config.dead_letter_subject.clone();
        let Some(target) = target.and_then(|t| Subject::new(&t).ok()) else {
            return;
        };
        let Ok(msg) = self.stream.get(seq) else {
            return;
        };
        match dead_letter_message(&target, stream, &self.name, &msg, deliveries, reason) {
            Some(letter) => {
                broker.publish_message(&letter);
            }
            None => tracing::warn!(stream, seq, "dead letter headers could not be built"),
        }
    }
}

/// Header names of a dead letter.
pub mod dead_letter_headers {
    /// The stream the message came from.
    pub const STREAM: &str = "Herald-Dead-Letter-Stream";
    /// The consumer that gave up on it.
    pub const CONSUMER: &str = "Herald-Dead-Letter-Consumer";
    /// Its stream sequence.
    pub const SEQUENCE: &str = "Herald-Dead-Letter-Sequence";
    /// How many times it was delivered.
    pub const DELIVERIES: &str = "Herald-Dead-Letter-Deliveries";
    /// The subject it was published on (where a redrive puts it back).
    pub const SUBJECT: &str = "Herald-Dead-Letter-Subject";
    /// `max_deliveries` or `terminated`.
    pub const REASON: &str = "Herald-Dead-Letter-Reason";
}

fn dead_letter_message(
    target: &Subject,
    stream: &str,
    consumer: &str,
    msg: &StoredMessage,
    deliveries: u64,
    reason: &str,
) -> Option<Message> {
    use dead_letter_headers as h;
    let base = msg
        .headers
        .clone()
        .unwrap_or_else(|| Headers::builder().build());
    let headers = base
        .appended(h::STREAM, stream)
        .ok()?
        .appended(h::CONSUMER, consumer)
        .ok()?
        .appended(h::SEQUENCE, &msg.seq.to_string())
        .ok()?
        .appended(h::DELIVERIES, &deliveries.to_string())
        .ok()?
        .appended(h::SUBJECT, &msg.subject.to_string())
        .ok()?
        .appended(h::REASON, reason)
        .ok()?;
    Some(Message::new(target.clone(), msg.payload.clone()).with_headers(headers))
}
