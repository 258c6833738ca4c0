//! MQTT topics ↔ herald subjects, mapped as nats-server maps them (`server/mqtt.go`,
//! `mqttToNATSSubjectConversion` and `natsSubjectToMQTTTopic`; the project's `mqtt.md` §11).
//!
//! Subjects are `.`-separated, non-empty tokens, so besides `/` → `.`, `+` → `*` and `#` → `>`
//! the mapping has to carry what subjects cannot hold:
//!
//! | MQTT | subject | why |
//! |---|---|---|
//! | `/` between two non-empty levels | `.` | level separator |
//! | `.` inside a level | `//` | `.` is the subject separator |
//! | `/` at the start | `/.` | the empty first level becomes the token `/` |
//! | `/` before another `/` or at the end | `./` | an empty level becomes the token `/` |
//!
//! So `foo.bar/baz` → `foo//bar.baz`, `/foo` → `/.foo`, `foo//bar` → `foo./.bar` and `/` →
//! `/./`. Every level becomes exactly one token, and the reverse mapping undoes it.
//!
//! Two choices go beyond nats-server, which does not guard them: a level that is exactly `*`
//! or `>` is refused ([`TopicError::SubjectWildcardLevel`]), since as a token it would be a
//! subject wildcard (`a/*` would otherwise publish to every `a.<x>` subscriber); and
//! [`subject_to_topic`] fails instead of producing a topic MQTT forbids. As in nats-server,
//! whitespace and DEL are refused ([`TopicError::UnsupportedCharacter`]).
//!
//! MQTT's `#` also matches its parent level (`a/#` matches `a`) while `>` needs at least one
//! more token: a listener subscribes to [`parent_subject`] as well, as nats-server does.

use super::topic::{TopicError, TopicFilter, TopicName};

/// Maps a topic name to the subject it is published on.
///
/// # Errors
///
/// [`TopicError::Empty`] for an empty topic (an unresolved Topic Alias),
/// [`TopicError::UnsupportedCharacter`] for whitespace or DEL, and
/// [`TopicError::SubjectWildcardLevel`] for a level that is exactly `*` or `>`.
pub fn topic_to_subject(topic: &TopicName) -> Result<String, TopicError> {
    convert(topic.as_str())
}

/// Maps a topic filter to the subject pattern it subscribes to: `+` → `*`, `#` → `>`. For a
/// shared subscription only [`TopicFilter::filter`] is mapped; the share group is the
/// listener's queue group.
///
/// # Errors
///
/// As [`topic_to_subject`].
pub fn filter_to_subject(filter: &TopicFilter) -> Result<String, TopicError> {
    convert(filter.filter())
}

/// The extra pattern a filter ending in `#` needs, because `#` also matches the parent level:
/// for `a.>` (from `a/#`) it is `a`. `None` for any other pattern, `>` included (it already
/// matches every subject).
#[must_use]
pub fn parent_subject(pattern: &str) -> Option<&str> {
    pattern
        .strip_suffix(".>")
        .filter(|parent| !parent.is_empty())
}

/// Maps a subject back to the topic name an MQTT subscriber receives: `.` → `/`, `//` → `.`,
/// `/.` → `/`, and a `/` before anything else (or last) is dropped, as nats-server does for
/// subjects that did not come from MQTT.
///
/// # Errors
///
/// [`TopicError::InvalidUtf8`], or the topic would be invalid: [`TopicError::Empty`],
/// [`TopicError::TooLong`], [`TopicError::NullCharacter`] or [`TopicError::WildcardInName`]
/// (a subject such as `a.+` from another protocol cannot be delivered to MQTT).
pub fn subject_to_topic(subject: &[u8]) -> Result<String, TopicError> {
    if std::str::from_utf8(subject).is_err() {
        return Err(TopicError::InvalidUtf8);
    }
    let mut topic = Vec::with_capacity(subject.len());
    let mut i = 0;
    while let Some(&byte) = subject.get(i) {
        match (byte, subject.get(i + 1)) {
            (b'/', Some(b'.')) => {
                topic.push(b'/');
                i += 1;
            }
            (b'/', Some(b'/')) => {
                topic.push(b'.');
                i += 1;
            }
            (b'/', _) => {}
            (b'.', _) => topic.push(b'/'),
            _ => topic.push(byte),
        }
        i += 1;
    }
    // Only ASCII bytes were replaced or dropped, so the text is still UTF-8.
    let topic = String::from_utf8(topic).map_err(|_| TopicError::InvalidUtf8)?;
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    TopicName::new(&topic)?;
    Ok(topic)
}

/// The forward mapping shared by topics and filters (wildcards were checked by their types).
fn convert(mqtt: &str) -> Result<String, TopicError> {
    if mqtt.is_empty() {
        return Err(TopicError::Empty);
    }
    if let Some(level) = mqtt.split('/').find(|level| matches!(*level, "*" | ">")) {
        let wildcard = if level == "*" { '*' } else { '>' };
        return Err(TopicError::SubjectWildcardLevel(wildcard));
    }
    let bytes = mqtt.as_bytes();
    let mut subject = String::with_capacity(mqtt.len() + 8);
    for (i, c) in mqtt.char_indices() {
        match c {
            '/' => {
                if i == 0 || subject.ends_with('.') {
                    subject.push_str("/.");
                } else if matches!(bytes.get(i + 1), None | Some(b'/')) {
                    subject.push_str("./");
                } else {
                    subject.push('.');
                }
            }
            ' ' | '\t' | '\n' | '\r' | '\x0c' | '\x7f' => {
                return Err(TopicError::UnsupportedCharacter(c));
            }
            '.' => subject.push_str("//"),
            '+' => subject.push('*'),
            '#' => subject.push('>'),
            _ => subject.push(c),
        }
    }
    // A trailing empty level after an empty level: `//` → `/.` + `/.` + `/`.
    if subject.ends_with('.') {
        subject.push('/');
    }
    Ok(subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(s: &str) -> Result<String, TopicError> {
        topic_to_subject(&TopicName::new(s).expect("valid topic"))
    }

    fn filter(s: &str) -> Result<String, TopicError> {
        filter_to_subject(&TopicFilter::new(s).expect("valid filter"))
    }

    #[test]
    fn examples_from_the_reference() {
        let cases = [
            ("foo/bar", "foo.bar"),
            ("foo.bar/baz", "foo//bar.baz"),
            ("/foo", "/.foo"),
            ("foo/", "foo./"),
            ("foo//bar", "foo./.bar"),
            ("/", "/./"),
            ("foo", "foo"),
        ];
        for (mqtt, subject) in cases {
            assert_eq!(topic(mqtt).as_deref(), Ok(subject), "{mqtt}");
            assert_eq!(subject_to_topic(subject.as_bytes()).as_deref(), Ok(mqtt));
        }
        assert_eq!(filter("a/+/c").as_deref(), Ok("a.*.c"));
        assert_eq!(filter("a/#").as_deref(), Ok("a.>"));
        assert_eq!(filter("#").as_deref(), Ok(">"));
        assert_eq!(filter("+").as_deref(), Ok("*"));
    }

    #[test]
    fn empty_levels_each_become_one_token() {
        let cases = [
            ("//", "/././"),
            ("a//", "a././"),
            ("//a", "/./.a"),
            ("a///b", "a././.b"),
            ("./.", "//.//"),
            ("./", "//./"),
            ("/.", "/.//"),
            ("x.//y", "x//./.y"),
        ];
        for (mqtt, subject) in cases {
            assert_eq!(topic(mqtt).as_deref(), Ok(subject), "{mqtt}");
            assert_eq!(subject_to_topic(subject.as_bytes()).as_deref(), Ok(mqtt));
            assert_eq!(subject.split('.').count(), mqtt.split('/').count());
        }
        assert_eq!(filter("//#").as_deref(), Ok("/./.>"));
        assert_eq!(filter("+/").as_deref(), Ok("*./"));
    }

    #[test]
    fn shared_filters_map_their_filter_only() {
        assert_eq!(filter("$share/g/a/b").as_deref(), Ok("a.b"));
        assert_eq!(filter("$share/g/#").as_deref(), Ok(">"));
    }

    #[test]
    fn refusals() {
        for (mqtt, c) in [
            ("a b", ' '),
            ("a\tb", '\t'),
            ("a\n", '\n'),
            ("\x7f", '\x7f'),
        ] {
            assert_eq!(topic(mqtt), Err(TopicError::UnsupportedCharacter(c)));
        }
        assert_eq!(topic("a/\r/b"), Err(TopicError::UnsupportedCharacter('\r')));
        assert_eq!(topic("a/*"), Err(TopicError::SubjectWildcardLevel('*')));
        assert_eq!(topic(">/a"), Err(TopicError::SubjectWildcardLevel('>')));
        assert_eq!(filter("+/*"), Err(TopicError::SubjectWildcardLevel('*')));
        assert_eq!(topic(""), Err(TopicError::Empty));
        // Inside a level they are literal characters, as in a subject token.
        assert_eq!(topic("a*/b>").as_deref(), Ok("a*.b>"));
        assert_eq!(topic("é/ü").as_deref(), Ok("é.ü"));
    }

    #[test]
    fn subjects_from_other_protocols() {
        assert_eq!(subject_to_topic(b"orders.eu").as_deref(), Ok("orders/eu"));
        // A `/` before anything but `.` or `/` is dropped, as nats-server does.
        assert_eq!(subject_to_topic(b"a/b.c").as_deref(), Ok("ab/c"));
        assert_eq!(subject_to_topic(b"a.b/").as_deref(), Ok("a/b"));
        assert_eq!(subject_to_topic(b"a.+"), Err(TopicError::WildcardInName));
        assert_eq!(subject_to_topic(b"x.#"), Err(TopicError::WildcardInName));
        assert_eq!(subject_to_topic(b"/"), Err(TopicError::Empty));
        assert_eq!(subject_to_topic(b""), Err(TopicError::Empty));
        assert_eq!(subject_to_topic(b"a\xff"), Err(TopicError::InvalidUtf8));
        assert_eq!(subject_to_topic(b"a\0"), Err(TopicError::NullCharacter));
        assert_eq!(subject_to_topic("é.ü".as_bytes()).as_deref(), Ok("é/ü"));
    }

    #[test]
    fn parents_of_multi_level_patterns() {
        assert_eq!(parent_subject("a.>"), Some("a"));
        assert_eq!(parent_subject("a.*.>"), Some("a.*"));
        assert_eq!(parent_subject("foo./.>"), Some("foo./"));
        assert_eq!(parent_subject(">"), None);
        assert_eq!(parent_subject("a.b"), None);
        assert_eq!(parent_subject(".>"), None);
    }
}
