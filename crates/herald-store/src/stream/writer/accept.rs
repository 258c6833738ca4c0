//! The checks a publish passes before a stream stores it, in nats-server's
//! order: expected stream, expected last subject sequence, expected last
//! sequence, duplicates, expected last message id, rollup, size and limits.
//! A rollup (`Nats-Rollup: sub|all`) then removes every earlier message of
//! its subject (or of the stream) once it is stored.

use bytes::Bytes;
use herald_core::{Headers, Message};

use super::super::{Body, Slot, StreamData, SubjectFilter, schedule, ttl};
use super::{
    EXPECTED_LAST_MSG_ID, EXPECTED_LAST_SEQ, EXPECTED_LAST_SUBJECT_SEQ,
    EXPECTED_LAST_SUBJECT_SEQ_SUBJECT, EXPECTED_STREAM, MSG_ID, ROLLUP,
};
use crate::PubAck;
use crate::api_error::ApiError;
use crate::config::Discard;
use crate::record::{Record, StoredMessage, stored_size};

/// Who a message comes from: a client, or the stream itself (a subject
/// delete marker, a schedule's message), which may say what clients may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Author {
    Client,
    Stream,
}

/// Checks one publish and, if it is accepted, adds it to the index and its
/// record to `records`.
pub(super) fn store_one(
    data: &mut StreamData,
    stream: &str,
    msg: &Message,
    now: i64,
    (records, removed): (&mut Vec<Record>, &mut Vec<u64>),
    from: Author,
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
    // A valid TTL on a stream without TTLs is refused here; an invalid one
    // after the rollup check (nats-server's order).
    let ttl = header(ttl::TTL_HEADER).map(ttl::parse);
    if let Some(Ok(Some(_))) = &ttl
        && !data.config.allow_msg_ttl
    {
        return Err(ttl::disabled());
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
    // Most messages carry no schedule header: one scan to skip the checks.
    let scheduling = headers.is_some_and(schedule::mentioned);
    let new_schedule = match scheduling {
        true => schedule::check(msg, &data.config)?,
        false => None,
    };
    let ends_schedule = match scheduling {
        true => {
            schedule::check_scheduler(msg, data.config.allow_msg_schedules, from == Author::Stream)?
        }
        false => None,
    };
    // `Nats-Schedule-Next: purge` ends the schedule on `Nats-Scheduler`,
    // which must be one if that subject holds anything.
    let ended = match ends_schedule {
        Some(scheduler) => match data.index.subject(scheduler.as_bytes()).map(|i| i.last()) {
            Some(last) if data.schedules.is_schedule(last) => Some(last),
            Some(_) => return Err(schedule::invalid_scheduler()),
            None => None,
        },
        None => None,
    };
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
    let rollup = match header(ROLLUP) {
        // A schedule replaces its subject's earlier schedule.
        None if new_schedule.is_some() => Some(Rollup::Subject),
        None => None,
        Some(_) if !data.config.allow_rollup_hdrs || data.config.deny_purge => {
            return Err(rollup_failed("rollup not permitted".to_owned()));
        }
        Some("sub") => Some(Rollup::Subject),
        Some("all") => Some(Rollup::All),
        Some(other) => return Err(rollup_failed(format!("rollup value invalid: {other:?}"))),
    };
    let mut ttl = ttl.transpose()?.flatten();
    // Below the markers' own TTL a TTL is raised to it, the header rewritten.
    let floor = data.config.subject_delete_marker_ttl.as_secs();
    let mut raised_headers = None;
    if let Some(ttl::MessageTtl::After(d)) = ttl
        && floor > 0
        && data.config.max_msgs_per_subject != 1
        && d.as_secs() < floor
    {
        ttl = Some(ttl::MessageTtl::After(std::time::Duration::from_secs(
            floor,
        )));
        raised_headers = headers.and_then(|h| ttl::with_ttl(h, floor));
    }
    if new_schedule.is_some() && header(ROLLUP).is_none() {
        let base = raised_headers.as_ref().or(headers);
        raised_headers = base.map(schedule_rollup);
    }
    let headers = raised_headers.as_ref().or(headers);
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
        // A rollup replaces what the subject holds: no per-subject refusal.
        if config.discard_new_per_subject
            && rollup.is_none()
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
    if let Some(ttl) = ttl {
        data.expiries.add(seq, now, ttl);
    }
    if !data.config.subject_delete_marker_ttl.is_zero() && ttl::is_marker(headers.as_ref()) {
        data.expiries.mark(seq);
    }
    if let Some(new) = new_schedule {
        new.arm(&mut data.schedules, seq, now, now);
    }
    if let Some(schedule) = ended
        && data.index.get(schedule).is_some()
    {
        data.remove_one(schedule);
        removed.push(schedule);
    }
    if let Some(id) = msg_id {
        data.dedup.insert(id.to_owned(), seq, now);
    }
    data.dedup.last_id = msg_id.map(str::to_owned);
    match rollup {
        Some(Rollup::Subject) => {
            while let Some(info) = data
                .index
                .subject(subject.as_bytes())
                .filter(|i| i.first() < seq)
            {
                let first = info.first();
                data.remove_one(first);
                removed.push(first);
            }
        }
        Some(Rollup::All) => {
            for earlier in data.index.seqs_below(seq, &SubjectFilter::of(None)) {
                data.remove_one(earlier);
                removed.push(earlier);
            }
        }
        None => {}
    }
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

/// What a `Nats-Rollup` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rollup {
    /// Keep only the new message on its subject.
    Subject,
    /// Keep only the new message in the stream.
    All,
}

/// nats-server's `JSStreamRollupFailedErrF`.
fn rollup_failed(description: String) -> ApiError {
    ApiError::new(500, 10111, description)
}

/// A schedule's headers with the `Nats-Rollup: sub` nats-server appends,
/// the client's lines kept byte for byte.
fn schedule_rollup(headers: &Headers) -> Headers {
    let raw: &[u8] = headers.raw();
    let body = raw.strip_suffix(b"\r\n").unwrap_or(raw);
    let mut out = Vec::with_capacity(raw.len() + 20);
    out.extend_from_slice(body);
    out.extend_from_slice(b"Nats-Rollup: sub\r\n\r\n");
    Headers::from_raw_unchecked(Bytes::from(out))
}
