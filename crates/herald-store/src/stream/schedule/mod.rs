//! Message schedules (nats-server 2.12+, ADR-51) on streams with
//! `allow_msg_schedules`: a message carrying `Nats-Schedule` is a schedule,
//! one per subject; when it fires, the writer stores a message built from it
//! on its `Nats-Schedule-Target`, through the same checks as any publish.
//! `@at` schedules go once their message is stored (`Nats-Schedule-Next:
//! purge`); repeating ones are re-armed.

mod pattern;

use std::collections::BTreeSet;

use ahash::AHashMap;
use herald_core::{Headers, Message, Pattern as SubjectPattern, Subject};

use crate::api_error::ApiError;
use crate::config::StreamConfig;
use pattern::Pattern;

/// The schedule (pattern) header.
pub(crate) const SCHEDULE: &str = "Nats-Schedule";
const TARGET: &str = "Nats-Schedule-Target";
const SCHEDULE_TTL: &str = "Nats-Schedule-TTL";
const SOURCE: &str = "Nats-Schedule-Source";
const TIME_ZONE: &str = "Nats-Schedule-Time-Zone";
const SCHEDULE_ROLLUP: &str = "Nats-Schedule-Rollup";
/// On a produced message: the schedule's subject.
pub(crate) const SCHEDULER: &str = "Nats-Scheduler";
/// On a produced message: `purge` (the schedule is done) or the next fire time.
pub(crate) const NEXT: &str = "Nats-Schedule-Next";

fn error(err_code: u16, description: &str) -> ApiError {
    ApiError::new(400, err_code, description)
}

/// nats-server's `JSMessageSchedulesSchedulerInvalidErr`.
pub(crate) fn invalid_scheduler() -> ApiError {
    error(10212, "message schedules invalid scheduler")
}

/// Whether a header block may concern schedules (one scan; the checks
/// look at it only then).
pub(crate) fn mentioned(headers: &Headers) -> bool {
    headers.raw().windows(10).any(|w| w == b"Nats-Sched")
}

/// The schedules of a stream, by fire time.
#[derive(Debug, Default)]
pub(crate) struct Schedules {
    due: BTreeSet<(i64, u64)>,
    armed: AHashMap<u64, Armed>,
}

#[derive(Debug)]
struct Armed {
    pattern: Pattern,
    at: i64,
}

impl Schedules {
    /// Arms the schedule stored at `seq` (at `stored`) with `pattern`.
    fn arm(&mut self, seq: u64, pattern: Pattern, stored: i64, now: i64) {
        self.forget(seq);
        if let Some(at) = pattern.first(stored, now) {
            self.due.insert((at, seq));
            self.armed.insert(seq, Armed { pattern, at });
        }
    }

    /// Whether `seq` is an armed schedule.
    pub(crate) fn is_schedule(&self, seq: u64) -> bool {
        !self.armed.is_empty() && self.armed.contains_key(&seq)
    }

    /// Disarms `seq` (its message went).
    pub(crate) fn forget(&mut self, seq: u64) {
        if let Some(armed) = self.armed.remove(&seq) {
            self.due.remove(&(armed.at, seq));
        }
    }

    /// Forgets every schedule (a full purge).
    pub(crate) fn clear(&mut self) {
        self.due.clear();
        self.armed.clear();
    }

    /// When the first schedule is due.
    pub(crate) fn next_due(&self) -> Option<i64> {
        self.due.first().map(|&(at, _)| at)
    }

    /// The schedules due at `now`: (schedule seq, the time it was due).
    pub(crate) fn take_due(&mut self, now: i64) -> Vec<(u64, i64)> {
        let mut out = Vec::new();
        while let Some(&(at, seq)) = self.due.first() {
            if at > now {
                break;
            }
            self.due.pop_first();
            out.push((seq, at));
        }
        out
    }

    /// Re-arms a repeating schedule for `at` (from [`next`](Self::next)).
    pub(crate) fn rearm(&mut self, seq: u64, at: i64) {
        if let Some(armed) = self.armed.get_mut(&seq) {
            armed.at = at;
            self.due.insert((at, seq));
        }
    }

    /// The next fire of `seq` after one at `fired` (`None` for a one-shot),
    /// with its text as `Nats-Schedule-Next` writes it.
    pub(crate) fn next(&self, seq: u64, fired: i64, now: i64) -> Option<(i64, String)> {
        let pattern = &self.armed.get(&seq)?.pattern;
        pattern.next(fired, now).map(|at| (at, pattern.text(at)))
    }
}

/// A checked schedule message, to arm once it is stored.
#[derive(Debug)]
pub(crate) struct NewSchedule {
    pattern: Pattern,
}

impl NewSchedule {
    /// Arms it: it was stored as `seq` at `stored`.
    pub(crate) fn arm(self, schedules: &mut Schedules, seq: u64, stored: i64, now: i64) {
        schedules.arm(seq, self.pattern, stored, now);
    }
}

/// Checks a publish's schedule headers in nats-server's order. Returns the
/// schedule to arm (for a schedule message), or an error; `Ok(None)` for a
/// message that is no schedule.
pub(crate) fn check(msg: &Message, config: &StreamConfig) -> Result<Option<NewSchedule>, ApiError> {
    let Some(headers) = msg.headers.as_ref() else {
        return Ok(None);
    };
    let raw = headers.get(SCHEDULE).filter(|p| !p.is_empty());
    let zone = headers.get(TIME_ZONE);
    if (raw.is_some() || zone.is_some()) && !config.allow_msg_schedules {
        return Err(error(10188, "message schedules is disabled"));
    }
    if let Some(zone) = zone
        && pattern::time_zone(zone).is_none()
    {
        return Err(error(10223, "message schedules time zone is invalid"));
    }
    let Some(raw) = raw else {
        return Ok(None);
    };
    let pattern = Pattern::parse(raw, zone)
        .ok_or_else(|| error(10189, "message schedules pattern is invalid"))?;
    if let Some(ttl) = headers.get(SCHEDULE_TTL) {
        match super::ttl::parse(ttl) {
            Ok(Some(_)) if !config.allow_msg_ttl => return Err(super::ttl::disabled()),
            Ok(Some(_)) => {}
            _ => return Err(error(10191, "message schedules invalid per-message TTL")),
        }
    }
    if headers.get(SCHEDULE_ROLLUP).is_some_and(|r| r != "sub") {
        return Err(error(10192, "message schedules invalid rollup"));
    }
    let invalid_target = || error(10190, "message schedules target is invalid");
    let subjects: Vec<SubjectPattern> = config.patterns();
    let target = headers
        .get(TARGET)
        .and_then(literal)
        .filter(|t| t != &msg.subject)
        .ok_or_else(invalid_target)?;
    if let Some(source) = headers.get(SOURCE) {
        let valid = literal(source).is_some_and(|s| {
            s != msg.subject && s != target && subjects.iter().any(|p| p.matches(&s))
        });
        if !valid {
            return Err(error(10203, "message schedules source is invalid"));
        }
    }
    if !subjects.iter().any(|p| p.matches(&target)) {
        return Err(invalid_target());
    }
    if headers.get("Nats-Rollup").is_some_and(|r| r != "sub") {
        return Err(error(10192, "message schedules invalid rollup"));
    }
    Ok(Some(NewSchedule { pattern }))
}

/// A literal publish subject, or `None`.
fn literal(text: &str) -> Option<Subject> {
    if text.contains(['*', '>']) {
        return None;
    }
    Subject::new(text).ok().filter(Subject::is_token_subject)
}

/// A message's `Nats-Scheduler` and `Nats-Schedule-Next`, checked: the
/// schedule subject whose schedule it ends (`purge`), if any.
pub(crate) fn check_scheduler(
    msg: &Message,
    allowed: bool,
    produced: bool,
) -> Result<Option<Subject>, ApiError> {
    let Some(headers) = msg.headers.as_ref() else {
        return Ok(None);
    };
    let (scheduler, next) = (headers.get(SCHEDULER), headers.get(NEXT));
    let invalid = invalid_scheduler;
    match (scheduler, next) {
        (None, None) => Ok(None),
        (Some(_), None) | (None, Some(_)) => Err(invalid()),
        (Some(_), Some(_)) if !allowed => Err(error(10188, "message schedules is disabled")),
        (Some(scheduler), Some(next)) => {
            let subject = literal(scheduler)
                .filter(|s| s != &msg.subject)
                .ok_or_else(invalid)?;
            match next {
                "purge" => Ok(Some(subject)),
                // A repeating schedule's produced message: it stays.
                _ if produced => Ok(None),
                _ => Err(invalid()),
            }
        }
    }
}

/// The message a schedule produces when it fires: the schedule's (or its
/// source's) headers and body, without the schedule's own headers, plus
/// `Nats-Scheduler`, `Nats-Schedule-Next` and the requested TTL and rollup.
pub(crate) fn produced(
    schedule: &Message,
    source: Option<&Message>,
    next: Option<String>,
) -> Option<Message> {
    let headers = schedule.headers.as_ref()?;
    let target = literal(headers.get(TARGET)?)?;
    let body = source.unwrap_or(schedule);
    let mut builder = Headers::builder();
    if let Some(h) = &body.headers {
        for (name, value) in h.iter() {
            let dropped = name == SCHEDULE
                || name.starts_with("Nats-Schedule-")
                || name.starts_with("Nats-Expected-")
                || matches!(name, "Nats-Msg-Id" | "Nats-TTL" | "Nats-Rollup");
            if !dropped {
                builder = builder.insert(name, value).ok()?;
            }
        }
    }
    builder = builder.insert(SCHEDULER, schedule.subject.as_str()?).ok()?;
    let next = next.unwrap_or_else(|| "purge".to_owned());
    builder = builder.insert(NEXT, &next).ok()?;
    if let Some(ttl) = headers.get(SCHEDULE_TTL) {
        builder = builder.insert("Nats-TTL", ttl).ok()?;
    }
    if headers.get(SCHEDULE_ROLLUP).is_some() {
        builder = builder.insert("Nats-Rollup", "sub").ok()?;
    }
    let mut msg = Message::new(target, body.payload.clone());
    msg.headers = Some(builder.build());
    Some(msg)
}

/// The subject a schedule takes its body from (`Nats-Schedule-Source`).
pub(crate) fn source_of(schedule: &Message) -> Option<Subject> {
    literal(schedule.headers.as_ref()?.get(SOURCE)?)
}

/// Whether stored headers make a schedule message (recovery re-arms these).
pub(crate) fn pattern_of(headers: Option<&Headers>) -> Option<&str> {
    headers?.get(SCHEDULE).filter(|p| !p.is_empty())
}

/// Re-arms the schedule stored at `seq` after a restart.
pub(crate) fn rearm_recovered(
    schedules: &mut Schedules,
    seq: u64,
    raw: &str,
    zone: Option<&str>,
    stored: i64,
    now: i64,
) {
    if let Some(pattern) = Pattern::parse(raw, zone) {
        schedules.arm(seq, pattern, stored, now);
    }
}

/// The time zone a schedule's headers name (for recovery's parse).
pub(crate) fn zone_of(headers: Option<&Headers>) -> Option<&str> {
    headers?.get(TIME_ZONE)
}
