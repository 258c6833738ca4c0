//! Topic names and topic filters, and the rules they follow (v3 and v5 §4.7, v5 §4.8.2).
//!
//! Both are UTF-8 strings of at most 65,535 bytes without U+0000; `/` separates levels, and
//! empty levels are legal (`/a`, `a//b`, `a/`). A [`TopicName`] (what `PUBLISH`, a Will and a
//! Response Topic name) has no wildcards. A [`TopicFilter`] (what `SUBSCRIBE` and
//! `UNSUBSCRIBE` carry) may use `+` for one whole level and `#` for a whole last level, and
//! may be a shared subscription, `$share/<group>/<filter>`.
//!
//! Shared subscriptions are recognised in both versions: MQTT 5 defines them, and brokers
//! commonly accept the same syntax from 3.1.1 clients.

use std::fmt;

use bytes::Bytes;

/// Longest topic name or filter: the length prefix of a UTF-8 string is two bytes.
pub const MAX_TOPIC_LEN: usize = u16::MAX as usize;

/// The prefix of a shared subscription's filter.
const SHARE_PREFIX: &str = "$share/";

/// Why a topic name or filter is invalid, or cannot be mapped to a subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic or filter is empty (topic names may be empty only in an MQTT 5 `PUBLISH`
    /// with a Topic Alias).
    #[error("empty topic")]
    Empty,
    /// Longer than 65,535 bytes.
    #[error("topic longer than 65535 bytes")]
    TooLong,
    /// Contains U+0000.
    #[error("topic contains U+0000")]
    NullCharacter,
    /// Not valid UTF-8 (only possible when mapping a subject back to a topic).
    #[error("topic is not valid UTF-8")]
    InvalidUtf8,
    /// A `+` or `#` in a topic name.
    #[error("wildcard in a topic name")]
    WildcardInName,
    /// A `+` that is not a whole level, or a `#` that is not the whole last level.
    #[error("wildcard that is not a whole level (or '#' not last)")]
    MisplacedWildcard,
    /// `$share/` not followed by a share name of at least one character without `+` or `#`,
    /// a `/` and a non-empty filter.
    #[error("invalid shared subscription")]
    InvalidShare,
    /// A character the subject mapping cannot carry: space, tab, CR, LF, form feed or DEL
    /// (nats-server rejects them, as they would break the NATS text protocol).
    #[error("character {0:?} not supported in a subject")]
    UnsupportedCharacter(char),
    /// A level that is exactly `*` or `>`: as a subject token it would be a wildcard.
    #[error("level {0:?} would be a subject wildcard")]
    SubjectWildcardLevel(char),
}

/// Checks what topic names and filters share: length, U+0000, non-empty.
fn check_common(topic: &str) -> Result<(), TopicError> {
    if topic.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    if topic.contains('\0') {
        return Err(TopicError::NullCharacter);
    }
    Ok(())
}

/// Checks a topic name, allowing it to be empty (the MQTT 5 Topic Alias case).
fn check_name(topic: &str) -> Result<(), TopicError> {
    check_common(topic)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks the wildcard placement of a non-shared filter (non-empty).
fn check_filter_levels(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        let misplaced = match level {
            "+" => false,
            "#" => !last,
            _ => level.contains(['+', '#']),
        };
        if misplaced {
            return Err(TopicError::MisplacedWildcard);
        }
    }
    Ok(())
}

/// A valid topic name: UTF-8, at most 65,535 bytes, no U+0000, no `+` or `#`.
///
/// It may be empty: an MQTT 5 `PUBLISH` that uses a Topic Alias sends an empty topic. The
/// decoder rejects an empty topic everywhere else. The text is held as [`Bytes`], so a
/// decoded topic is a slice of the packet, not a copy.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TopicName(Bytes);

impl TopicName {
    /// A topic name, checked.
    ///
    /// # Errors
    ///
    /// [`TopicError::TooLong`], [`TopicError::NullCharacter`] or
    /// [`TopicError::WildcardInName`].
    pub fn new(topic: &str) -> Result<Self, TopicError> {
        check_name(topic)?;
        Ok(Self(Bytes::copy_from_slice(topic.as_bytes())))
    }

    /// A topic name from bytes, checked (UTF-8 included); no copy.
    ///
    /// # Errors
    ///
    /// As [`TopicName::new`], plus [`TopicError::InvalidUtf8`].
    pub fn from_bytes(bytes: Bytes) -> Result<Self, TopicError> {
        let text = std::str::from_utf8(&bytes).map_err(|_| TopicError::InvalidUtf8)?;
        check_name(text)?;
        Ok(Self(bytes))
    }

    /// A topic name from bytes the decoder already checked for UTF-8, U+0000 and length,
    /// so only the wildcards are left to check.
    pub(super) fn from_checked_string(bytes: Bytes) -> Result<Self, TopicError> {
        if memchr::memchr2(b'+', b'#', &bytes).is_some() {
            return Err(TopicError::WildcardInName);
        }
        Ok(Self(bytes))
    }

    /// The topic as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a TopicName is checked to be UTF-8 when built")
    }

    /// The topic's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The topic's bytes, without a copy.
    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Whether the topic is empty (only legal with an MQTT 5 Topic Alias).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<&str> for TopicName {
    type Error = TopicError;

    fn try_from(topic: &str) -> Result<Self, TopicError> {
        Self::new(topic)
    }
}

/// Checks a filter; returns where the selecting filter starts (after `$share/<group>/`).
fn check_filter(filter: &str) -> Result<usize, TopicError> {
    check_common(filter)?;
    match filter.strip_prefix(SHARE_PREFIX) {
        Some(rest) => {
            let (group, inner) = rest.split_once('/').ok_or(TopicError::InvalidShare)?;
            if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
                return Err(TopicError::InvalidShare);
            }
            check_filter_levels(inner)?;
            Ok(filter.len() - inner.len())
        }
        None => check_filter_levels(filter).map(|()| 0),
    }
}

/// A valid topic filter, possibly a shared subscription `$share/<group>/<filter>`.
///
/// [`TopicFilter::as_str`] is the whole filter as the client sent it (what `UNSUBSCRIBE`
/// compares against); [`TopicFilter::filter`] and [`TopicFilter::share_group`] are its parts.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter {
    text: String,
    /// For a shared subscription, the byte offset of the filter after the group.
    filter_start: usize,
}

impl TopicFilter {
    /// A topic filter, checked: non-empty, at most 65,535 bytes, no U+0000, `+` only as a
    /// whole level, `#` only as the whole last level; a `$share/` prefix must be followed by
    /// a group name of at least one character without `+` or `#`, a `/` and a valid filter.
    ///
    /// # Errors
    ///
    /// [`TopicError::Empty`], [`TopicError::TooLong`], [`TopicError::NullCharacter`],
    /// [`TopicError::MisplacedWildcard`] or [`TopicError::InvalidShare`].
    pub fn new(filter: &str) -> Result<Self, TopicError> {
        Self::try_from(filter.to_owned())
    }

    /// The whole filter, `$share/<group>/` prefix included.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The filter that selects topics: the whole filter, or for a shared subscription the
    /// part after `$share/<group>/`.
    #[must_use]
    pub fn filter(&self) -> &str {
        &self.text[self.filter_start..]
    }

    /// The share group of a shared subscription.
    #[must_use]
    pub fn share_group(&self) -> Option<&str> {
        let group_end = self.filter_start.checked_sub(1)?;
        self.text.get(SHARE_PREFIX.len()..group_end)
    }

    /// Whether this is a shared subscription.
    #[must_use]
    pub fn is_shared(&self) -> bool {
        self.filter_start > 0
    }

    /// Whether [`TopicFilter::filter`] uses `+` or `#`.
    #[must_use]
    pub fn has_wildcards(&self) -> bool {
        self.filter().contains(['+', '#'])
    }

    /// Whether the filter's first level is `+` or `#`: such a filter must not match topic
    /// names starting with `$` (v3 [MQTT-4.7.2-1]), so `#` does not receive `$SYS/x`.
    #[must_use]
    pub fn starts_with_wildcard(&self) -> bool {
        self.filter().starts_with(['+', '#'])
    }
}

impl fmt::Debug for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<&str> for TopicFilter {
    type Error = TopicError;

    fn try_from(filter: &str) -> Result<Self, TopicError> {
        Self::new(filter)
    }
}

/// Checks the filter and keeps the string, without a copy.
impl TryFrom<String> for TopicFilter {
    type Error = TopicError;

    fn try_from(text: String) -> Result<Self, TopicError> {
        let filter_start = check_filter(&text)?;
        Ok(Self { text, filter_start })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        for ok in [
            "a",
            "a/b",
            "/a",
            "a//b",
            "a/",
            "/",
            "sport/tennis",
            "a b",
            "$SYS/x",
            "",
        ] {
            let topic = TopicName::new(ok).expect(ok);
            assert_eq!(topic.as_str(), ok);
            assert_eq!(topic.len(), ok.len());
        }
        assert!(TopicName::new("").expect("empty").is_empty());
        assert_eq!(TopicName::new("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(TopicName::new("a#"), Err(TopicError::WildcardInName));
        assert_eq!(TopicName::new("a\0b"), Err(TopicError::NullCharacter));
        let long = "x".repeat(MAX_TOPIC_LEN + 1);
        assert_eq!(TopicName::new(&long), Err(TopicError::TooLong));
        assert!(TopicName::new(&long[1..]).is_ok());
        assert_eq!(
            TopicName::from_bytes(Bytes::from_static(b"a\xff")),
            Err(TopicError::InvalidUtf8)
        );
        // Surrogates cannot even be encoded in UTF-8: Rust rejects the bytes.
        assert_eq!(
            TopicName::from_bytes(Bytes::from_static(b"\xed\xa0\x80")),
            Err(TopicError::InvalidUtf8)
        );
    }

    #[test]
    fn filters_from_the_spec() {
        for ok in [
            "#",
            "+",
            "a/#",
            "a/+",
            "+/b",
            "a/+/b",
            "+/+",
            "/+",
            "sport/tennis/#",
            "a//#",
            "/",
            "a/+/#",
            "$SYS/#",
            "a b/+",
        ] {
            let filter = TopicFilter::new(ok).expect(ok);
            assert_eq!(filter.as_str(), ok);
            assert_eq!(filter.filter(), ok);
            assert_eq!(filter.share_group(), None);
            assert!(!filter.is_shared());
        }
        for bad in ["a+", "a/b+", "+a", "a#", "a/#/b", "#/a", "##", "a/++"] {
            assert_eq!(
                TopicFilter::new(bad),
                Err(TopicError::MisplacedWildcard),
                "{bad}"
            );
        }
        assert_eq!(TopicFilter::new(""), Err(TopicError::Empty));
        assert_eq!(TopicFilter::new("a\0"), Err(TopicError::NullCharacter));
        assert!(TopicFilter::new("a/+").expect("valid").has_wildcards());
        assert!(!TopicFilter::new("a/b").expect("valid").has_wildcards());
        assert!(TopicFilter::new("#").expect("valid").starts_with_wildcard());
        assert!(
            TopicFilter::new("+/x")
                .expect("valid")
                .starts_with_wildcard()
        );
        assert!(
            !TopicFilter::new("$SYS/#")
                .expect("valid")
                .starts_with_wildcard()
        );
        assert!(
            !TopicFilter::new("a/+")
                .expect("valid")
                .starts_with_wildcard()
        );
    }

    #[test]
    fn shared_subscriptions() {
        let shared = TopicFilter::new("$share/group/a/+/c").expect("valid");
        assert!(shared.is_shared());
        assert_eq!(shared.share_group(), Some("group"));
        assert_eq!(shared.filter(), "a/+/c");
        assert_eq!(shared.as_str(), "$share/group/a/+/c");
        assert!(shared.has_wildcards());
        let hash = TopicFilter::new("$share/g/#").expect("valid");
        assert_eq!((hash.share_group(), hash.filter()), (Some("g"), "#"));
        let slash = TopicFilter::new("$share/g//").expect("valid");
        assert_eq!(slash.filter(), "/");
        for bad in [
            "$share/",
            "$share/g",
            "$share/g/",
            "$share//a",
            "$share/g+/a",
            "$share/#/a",
        ] {
            assert_eq!(
                TopicFilter::new(bad),
                Err(TopicError::InvalidShare),
                "{bad}"
            );
        }
        assert_eq!(
            TopicFilter::new("$share/g/a#"),
            Err(TopicError::MisplacedWildcard)
        );
        // Without the slash it is an ordinary filter.
        assert!(!TopicFilter::new("$share").expect("valid").is_shared());
        assert!(
            !TopicFilter::new("$sharegroup/a")
                .expect("valid")
                .is_shared()
        );
    }
}
