//! The checks a publish passes before a stream stores it, in nats-server's
//! order: expected stream, expected last subject sequence, expected last
//! sequence, duplicates, expected last message id, size and limits.

use bytes::Bytes;
use herald_core::{Headers, Message};

use super::super::{Body, Slot, StreamData};
use super::{
    EXPECTED_LAST_MSG_ID, EXPECTED_LAST_SEQ, EXPECTED_LAST_SUBJECT_SEQ,
    EXPECTED_LAST_SUBJECT_SEQ_SUBJECT, EXPECTED_STREAM, MSG_ID,
};
use crate::PubAck;
use crate::api_error::ApiError;
use crate::config::Discard;
use crate::record::{Record, StoredMessage, stored_size};

/// Checks one publish and, if it is accepted, adds it to the index and its
/// record to `records`.
pub(super) fn store_one(
    data: &mut StreamData,
    stream: &str,
    msg: &Message,
    now: i64,
    records: &mut Vec<Record>,
    removed: &mut Vec<u64>,
) -> Result<PubAck, ApiError> {
    if let Some(reason) = &data.failed {
        return Err(ApiError::new(
            503,
            10077,
            format!("stream storage failed: {reason}"),
        ));
    }
    if data.config.sealed {
        return Err(ApiError::new(
            400,
            10109,
            "invalid operation on sealed stream",
        ));
    }
    let headers = msg.headers.as_ref();
    let header = |name: &str| headers.and_then(|h| h.get(name));
    if let Some(expected) = header(EXPECTED_STREAM)
        && expected != stream
    {
        return Err(ApiError::new(400, 10060, "expected stream does not match"));
    }
    if let Some(expected) = header(EXPECTED_LAST_SUBJECT_SEQ) {
        let expected: u64 = expected
            .parse()
            .map_err(|_| ApiError::bad_request("invalid expected last subject sequence"))?;
        let subject = header(EXPECTED_LAST_SUBJECT_SEQ_SUBJECT)
            .map(str::as_bytes)
            .unwrap_or(msg.subject.as_bytes());
        let last = data.index.subject(subject).map_or(0, |i| i.last());
        if last != expected {
            return Err(ApiError::new(
                400,
                10071,
                format!("wrong last sequence: {last}"),
            ));
        }
    }
    if let Some(expected) = header(EXPECTED_LAST_SEQ) {
        let expected: u64 = expected
            .parse()
            .map_err(|_| ApiError::bad_request("invalid expected last sequence"))?;
        let last = data.index.last_seq();
        if last != expected {
            return Err(ApiError::new(
                400,
                10071,
                format!("wrong last sequence: {last}"),
            ));
        }
    }
    let msg_id = header(MSG_ID).filter(|id| !id.is_empty());
    if let Some(id) = msg_id
        && let Some(&seq) = data.dedup.ids.get(id)
    {
        return Ok(PubAck {
            stream: stream.to_owned(),
            seq,
            duplicate: true,
        });
    }
    if let Some(expected) = header(EXPECTED_LAST_MSG_ID) {
        let last = data.dedup.last_id.as_deref().unwrap_or("");
        if last != expected {
            return Err(ApiError::new(
                400,
                10070,
                format!("wrong last msg ID: {last}"),
            ));
        }
    }
    let headers_len = headers.map_or(0, |h| h.raw().len());
    let size = stored_size(msg.subject.as_bytes().len(), headers_len, msg.payload.len());
    let config = &data.config;
    if config.max_msg_size > 0
        && (headers_len + msg.payload.len()) as u64 > config.max_msg_size as u64
    {
        return Err(ApiError::new(
            400,
            10054,
            "message size exceeds maximum allowed",
        ));
    }
    if config.discard == Discard::New {
        if config.max_msgs > 0 && data.index.messages() >= config.max_msgs as u64 {
            return Err(ApiError::new(503, 10077, "maximum messages exceeded"));
        }
        if config.max_bytes > 0 && data.index.bytes() + size > config.max_bytes as u64 {
            return Err(ApiError::new(503, 10077, "maximum bytes exceeded"));
        }
        if config.discard_new_per_subject
            && config.max_msgs_per_subject > 0
            && data
                .index
                .subject(msg.subject.as_bytes())
                .is_some_and(|i| i.count() >= config.max_msgs_per_subject as u64)
        {
            return Err(ApiError::new(
                503,
                10077,
                "maximum messages per subject exceeded",
            ));
        }
    }
    let seq = data.index.last_seq() + 1;
    let subject = data.index.intern(&msg.subject);
    // Copies, so the stream never pins the connection's read buffer.
    let headers = headers.map(|h| Headers::from_raw_unchecked(Bytes::copy_from_slice(h.raw())));
    let payload = Bytes::copy_from_slice(&msg.payload);
    data.index.push(
        seq,
        Slot {
            time: now,
            subject: subject.clone(),
            size,
            location: None,
            body: Some(Body {
                headers: headers.clone(),
                payload: payload.clone(),
            }),
        },
    );
    data.cache_body(seq, headers_len + payload.len());
    if let Some(id) = msg_id {
        data.dedup.insert(id.to_owned(), seq, now);
    }
    data.dedup.last_id = msg_id.map(str::to_owned);
    let per_subject = data.config.max_msgs_per_subject;
    if per_subject > 0 {
        while let Some(info) = data
            .index
            .subject(subject.as_bytes())
            .filter(|i| i.count() > per_subject as u64)
        {
            let first = info.first();
            data.remove_one(first);
            removed.push(first);
        }
    }
    records.push(Record::Message(StoredMessage {
        seq,
        time: now,
        subject,
        headers,
        payload,
    }));
    Ok(PubAck {
        stream: stream.to_owned(),
        seq,
        duplicate: false,
    })
}
