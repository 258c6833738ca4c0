//! Schedule patterns as nats-server 2.14 reads `Nats-Schedule`: `@at
//! <RFC 3339>`, `@every <duration>`, the predefined `@hourly`…`@yearly`, and
//! six-field cron (`sec min hour dom month dow`), evaluated in the schedule's
//! time zone (`Nats-Schedule-Time-Zone`, UTC by default).

use std::time::Duration;

use jiff::tz::TimeZone;
use time::{Date, Month, PrimitiveDateTime, Time};

/// Cron searches give up past this many years (the pattern is invalid then).
const SEARCH_YEARS: i32 = 5;

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// Once, at this time (ns since the epoch).
    At(i64),
    /// Every so long, on whole seconds.
    Every(Duration),
    /// On the seconds a cron expression selects.
    Cron(Box<Cron>),
}

impl Pattern {
    /// Parses a `Nats-Schedule` value; `None` if it is not a valid pattern.
    /// A time zone may only come with cron and predefined patterns.
    pub(crate) fn parse(raw: &str, zone: Option<&str>) -> Option<Pattern> {
        let has_zone = zone.is_some();
        if let Some(at) = raw.strip_prefix("@at ") {
            if has_zone || !at.contains('T') || at.contains(['t', 'z']) {
                return None;
            }
            return crate::time::parse_rfc3339(at).map(Pattern::At);
        }
        if let Some(every) = raw.strip_prefix("@every ") {
            let d = super::super::ttl::go_duration(every)?;
            if has_zone || d < Duration::from_secs(1) || every.starts_with(['-', '+', ' ']) {
                return None;
            }
            return Some(Pattern::Every(d));
        }
        let cron = match raw {
            "@yearly" | "@annually" => "0 0 0 1 1 *",
            "@monthly" => "0 0 0 1 * *",
            "@weekly" => "0 0 0 * * 0",
            "@daily" | "@midnight" => "0 0 0 * * *",
            "@hourly" => "0 0 * * * *",
            other if other.starts_with('@') => return None,
            other => other,
        };
        let zone = match zone {
            Some(name) => time_zone(name)?,
            None => TimeZone::UTC,
        };
        let cron = Cron::parse(cron, zone)?;
        // A cron that never fires (the 30th of February) is invalid.
        cron.next_after(crate::time::now_nanos() / 1_000_000_000)?;
        Some(Pattern::Cron(Box::new(cron)))
    }

    /// The first fire time (ns) of a schedule stored at `stored`, at `now`.
    pub(crate) fn first(&self, stored: i64, now: i64) -> Option<i64> {
        match self {
            Pattern::At(at) => Some(*at),
            _ => self.next(stored, now),
        }
    }

    /// The fire after one at `previous` (ns), never in the past of `now`:
    /// missed fires collapse into one. `None` for `@at` (it fires once).
    pub(crate) fn next(&self, previous: i64, now: i64) -> Option<i64> {
        match self {
            Pattern::At(_) => None,
            Pattern::Every(d) => {
                let step = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
                let next = round_to_second(previous).saturating_add(step);
                Some(if next < now {
                    round_to_second(now).saturating_add(step)
                } else {
                    next
                })
            }
            Pattern::Cron(cron) => {
                let second = |ns: i64| round_to_second(ns) / 1_000_000_000;
                let next = cron.next_after(second(previous))?;
                let next = if next * 1_000_000_000 < now {
                    cron.next_after(second(now))?
                } else {
                    next
                };
                Some(next * 1_000_000_000)
            }
        }
    }
}

impl Pattern {
    /// A fire time as `Nats-Schedule-Next` gives it: RFC 3339 in whole
    /// seconds, with the schedule's zone offset (`Z` at offset zero).
    pub(crate) fn text(&self, nanos: i64) -> String {
        let seconds = nanos.div_euclid(1_000_000_000);
        if let Pattern::Cron(cron) = self
            && let Ok(at) = jiff::Timestamp::from_second(seconds)
        {
            let offset = cron.zone.to_offset(at);
            if !offset.is_zero() {
                return at.display_with_offset(offset).to_string();
            }
        }
        crate::time::rfc3339(seconds * 1_000_000_000)
    }
}

/// A time zone by its IANA name (`Local`: the server's), as
/// `Nats-Schedule-Time-Zone` names it.
pub(crate) fn time_zone(name: &str) -> Option<TimeZone> {
    match name {
        "" => None,
        "Local" => Some(TimeZone::system()),
        name => TimeZone::get(name).ok(),
    }
}

/// Rounds ns to the nearest whole second (half away from zero), as Go's
/// `Time.Round(time.Second)`.
fn round_to_second(ns: i64) -> i64 {
    (ns + 500_000_000).div_euclid(1_000_000_000) * 1_000_000_000
}

/// A six-field cron expression: the allowed values of each field as bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cron {
    /// The zone whose wall clock the fields read.
    zone: TimeZone,
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Day of month or day of week was a plain `*`/`?`: then both must match
    /// (else either may, as Vixie cron).
    any_day: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Cron {
    fn parse(text: &str, zone: TimeZone) -> Option<Cron> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [sec, min, hour, dom, month, dow] = fields.as_slice() else {
            return None;
        };
        let (days, dom_star) = field(dom, 1, 31, &[])?;
        let (weekdays, dow_star) = field(dow, 0, 6, &WEEKDAYS)?;
        Some(Cron {
            zone,
            seconds: field(sec, 0, 59, &[])?.0,
            minutes: field(min, 0, 59, &[])?.0,
            hours: field(hour, 0, 23, &[])?.0,
            days,
            months: field(month, 1, 12, &MONTHS)?.0,
            weekdays,
            any_day: dom_star || dow_star,
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().number_days_from_sunday()) != 0;
        if self.any_day { dom && dow } else { dom || dow }
    }

    /// The first second after `after` (seconds since the epoch, UTC) the
    /// expression selects, within five years.
    fn next_after(&self, after: i64) -> Option<i64> {
        let start = jiff::Timestamp::from_second(after.checked_add(1)?)
            .ok()?
            .to_zoned(self.zone.clone())
            .datetime();
        let month = Month::try_from(u8::try_from(start.month()).ok()?).ok()?;
        let day = u8::try_from(start.day()).ok()?;
        let mut date = Date::from_calendar_date(i32::from(start.year()), month, day).ok()?;
        let mut from = Some(
            Time::from_hms(
                u8::try_from(start.hour()).ok()?,
                u8::try_from(start.minute()).ok()?,
                u8::try_from(start.second()).ok()?,
            )
            .ok()?,
        );
        let limit = date.year() + SEARCH_YEARS;
        while date.year() <= limit {
            if self.months & (1 << u8::from(date.month())) == 0 {
                // To the first day of the next month.
                let (year, month) = match date.month() {
                    Month::December => (date.year() + 1, Month::January),
                    m => (date.year(), m.next()),
                };
                date = Date::from_calendar_date(year, month, 1).ok()?;
                from = None;
                continue;
            }
            let mut first = from.unwrap_or(Time::MIDNIGHT);
            while self.day_matches(date)
                && let Some(time) = self.time_on_or_after(first)
            {
                let wall = PrimitiveDateTime::new(date, time);
                let at = self.instant(wall)?;
                if at > after {
                    return Some(at);
                }
                // A wall time a clock going back repeats: the next one.
                if (time.hour(), time.minute(), time.second()) == (23, 59, 59) {
                    break;
                }
                first = (wall + time::Duration::SECOND).time();
            }
            date = date.next_day()?;
            from = None;
        }
        None
    }

    /// The instant (seconds since the epoch) of a wall time in the zone; a
    /// time a clock change skips counts as the instant after the gap.
    fn instant(&self, wall: PrimitiveDateTime) -> Option<i64> {
        let civil = jiff::civil::DateTime::new(
            i16::try_from(wall.year()).ok()?,
            i8::try_from(u8::from(wall.month())).ok()?,
            i8::try_from(wall.day()).ok()?,
            i8::try_from(wall.hour()).ok()?,
            i8::try_from(wall.minute()).ok()?,
            i8::try_from(wall.second()).ok()?,
            0,
        )
        .ok()?;
        Some(
            civil
                .to_zoned(self.zone.clone())
                .ok()?
                .timestamp()
                .as_second(),
        )
    }

    /// The first selected time of day at or after `from`.
    fn time_on_or_after(&self, from: Time) -> Option<Time> {
        for hour in from.hour()..24 {
            if self.hours & (1 << hour) == 0 {
                continue;
            }
            let first_minute = if hour == from.hour() {
                from.minute()
            } else {
                0
            };
            for minute in first_minute..60 {
                if self.minutes & (1 << minute) == 0 {
                    continue;
                }
                let first_second = if hour == from.hour() && minute == from.minute() {
                    from.second()
                } else {
                    0
                };
                if let Some(second) = (first_second..60).find(|&s| self.seconds & (1 << s) != 0) {
                    return Time::from_hms(hour, minute, second).ok();
                }
            }
        }
        None
    }
}

/// One cron field: its allowed values as bits, and whether it was a plain
/// `*` or `?` (no step).
fn field(text: &str, min: u8, max: u8, names: &[&str]) -> Option<(u64, bool)> {
    let mut bits = 0u64;
    let mut star = false;
    for item in text.split(',').filter(|i| !i.is_empty()) {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u8 = step.parse().ok().filter(|s| *s > 0)?;
                (range, Some(step))
            }
            None => (item, None),
        };
        let (low, high) = if range == "*" || range == "?" {
            if step.is_none() {
                star = true;
            }
            (min, max)
        } else if let Some((low, high)) = range.split_once('-') {
            (value(low, min, max, names)?, value(high, min, max, names)?)
        } else {
            let low = value(range, min, max, names)?;
            (low, if step.is_some() { max } else { low })
        };
        if low > high {
            return None;
        }
        let step = step.unwrap_or(1);
        let mut v = low;
        while v <= high {
            bits |= 1 << v;
            v = v.checked_add(step)?;
        }
    }
    (bits != 0).then_some((bits, star))
}

fn value(text: &str, min: u8, max: u8, names: &[&str]) -> Option<u8> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        // Months are named from 1, weekdays from 0.
        return u8::try_from(i).ok().map(|i| i + min);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|v| (min..=max).contains(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        crate::time::parse_rfc3339(text).unwrap() / 1_000_000_000
    }

    #[test]
    fn patterns_parse_as_nats_server_reads_them() {
        assert!(matches!(
            Pattern::parse("@at 2030-01-01T00:00:00Z", None),
            Some(Pattern::At(_))
        ));
        assert_eq!(
            Pattern::parse("@every 1m30s", None),
            Some(Pattern::Every(Duration::from_secs(90)))
        );
        for bad in [
            "@at 2030-01-01t00:00:00z",
            "@at 1700000000",
            "@AT 2030-01-01T00:00:00Z",
            "@every 500ms",
            "@every 5",
            "@every  1s",
            "@every 1H",
            "@reboot",
            "@HOURLY",
            "* * * * *",
            "* * * * * * *",
            "0 0 0 30 2 *",
            "60 * * * * *",
            "* * * * * 7",
            "5-1 * * * * *",
            "*/0 * * * * *",
        ] {
            assert_eq!(Pattern::parse(bad, None), None, "{bad:?}");
        }
        assert_eq!(
            Pattern::parse("@every 1s", Some("UTC")),
            None,
            "no zone with @every"
        );
        assert!(Pattern::parse("0 30 9 * * mon-fri", None).is_some());
        assert!(Pattern::parse("@hourly", Some("Asia/Tokyo")).is_some());
    }

    #[test]
    fn cron_finds_the_next_second() {
        let cron = Cron::parse("*/3 * * * * *", TimeZone::UTC).unwrap();
        assert_eq!(
            cron.next_after(at("2026-12-07T17:36:39Z")),
            Some(at("2026-12-07T17:36:42Z"))
        );
        let weekdays = Cron::parse("0 30 9 * * mon-fri", TimeZone::UTC).unwrap();
        // Saturday the 5th of December 2026: next Monday.
        assert_eq!(
            weekdays.next_after(at("2026-12-05T10:00:00Z")),
            Some(at("2026-12-07T09:30:00Z"))
        );
        // Day of month or day of week (neither is *): the 1st or any Sunday.
        let either = Cron::parse("0 0 0 1 * sun", TimeZone::UTC).unwrap();
        assert_eq!(
            either.next_after(at("2026-12-01T12:00:00Z")),
            Some(at("2026-12-06T00:00:00Z"))
        );
        let yearly = Cron::parse("0 0 0 1 1 *", TimeZone::UTC).unwrap();
        assert_eq!(
            yearly.next_after(at("2026-12-07T00:00:00Z")),
            Some(at("2027-01-01T00:00:00Z"))
        );
        let leap = Cron::parse("0 0 0 29 feb *", TimeZone::UTC).unwrap();
        assert_eq!(
            leap.next_after(at("2026-01-01T00:00:00Z")),
            Some(at("2028-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn cron_reads_the_zones_wall_clock() {
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        let nine = Cron::parse("0 0 9 * * *", tokyo).unwrap();
        // 09:00 in Tokyo is 00:00 UTC.
        assert_eq!(
            nine.next_after(at("2026-12-07T01:00:00Z")),
            Some(at("2026-12-08T00:00:00Z"))
        );
        let p = Pattern::parse("0 0 9 * * *", Some("Asia/Tokyo")).unwrap();
        assert_eq!(
            p.text(at("2026-12-08T00:00:00Z") * 1_000_000_000),
            "2026-12-08T09:00:00+09:00"
        );
        // Paris skips 02:30 on 2027-03-28: the instant after the gap.
        let paris = Cron::parse("0 30 2 * * *", TimeZone::get("Europe/Paris").unwrap()).unwrap();
        assert_eq!(
            paris.next_after(at("2027-03-27T12:00:00Z")),
            Some(at("2027-03-28T01:30:00Z"))
        );
        assert!(time_zone("Mars/Olympus").is_none());
    }

    #[test]
    fn every_counts_from_the_rounded_store_time() {
        let p = Pattern::Every(Duration::from_secs(1));
        let stored = at("2026-12-07T17:36:11Z") * 1_000_000_000 + 593_000_000;
        assert_eq!(
            p.first(stored, stored),
            Some(at("2026-12-07T17:36:13Z") * 1_000_000_000)
        );
        let late = at("2026-12-07T18:00:00Z") * 1_000_000_000;
        assert_eq!(
            p.next(stored, late),
            Some(late + 1_000_000_000),
            "missed fires collapse"
        );
    }
}
