//! Time as streams keep it: nanoseconds since the Unix epoch (UTC), shown as
//! RFC 3339 with up to nine fraction digits and a `Z`, as JetStream clients
//! parse it.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, in nanoseconds since the epoch.
pub fn now_nanos() -> i64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

/// RFC 3339 text for `nanos` since the epoch; 0 is Go's zero time
/// `0001-01-01T00:00:00Z`, which clients read as "never".
pub fn rfc3339(nanos: i64) -> String {
    if nanos == 0 {
        return ZERO_TIME.to_owned();
    }
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ZERO_TIME.to_owned())
}

/// Parses RFC 3339 text into nanoseconds since the epoch; Go's zero time is 0.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    if text == ZERO_TIME {
        return Some(0);
    }
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos()).ok()
}

/// Go's zero `time.Time` as JSON.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_nanoseconds() {
        let t = 1_714_557_600_123_456_789;
        let text = rfc3339(t);
        assert_eq!(text, "2024-05-01T10:00:00.123456789Z");
        assert_eq!(parse_rfc3339(&text), Some(t));
        assert_eq!(rfc3339(0), ZERO_TIME);
        assert_eq!(parse_rfc3339(ZERO_TIME), Some(0));
        assert_eq!(
            parse_rfc3339("2024-05-01T12:00:00+02:00"),
            Some(1_714_557_600_000_000_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
