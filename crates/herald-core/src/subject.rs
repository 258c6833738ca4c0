//! [`Subject`], [`Pattern`] and [`QueueName`]: the names messages are routed
//! by, and the rules they must follow.
//!
//! Subjects are dot-separated tokens as in NATS (`orders.eu.created`). A
//! [`Pattern`] may use `*` for exactly one token and `>` for one or more
//! trailing tokens; a token that merely contains them (`f*o`, `foo>`) is a
//! literal. All three types are cheap-to-clone newtypes over [`Bytes`].
//!
//! The checked constructors enforce the NATS rules (non-empty tokens, no
//! space, tab, CR, LF or form feed; no wildcard in a publish subject).
//! Listeners whose protocols have their own rules (a Redis channel may be any
//! bytes, even empty) wrap names with [`Subject::from_wire_unchecked`]. Such a
//! subject is matched by patterns only if it obeys the token rules
//! ([`Subject::is_token_subject`]); a `*` or `>` token published that way is
//! a literal token, matched by wildcard patterns as nats-server does.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

/// Which kind of name a [`SubjectError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NameKind {
    /// A publish subject.
    Subject,
    /// A subscription pattern.
    Pattern,
    /// A queue group name.
    QueueName,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Subject => "subject",
            Self::Pattern => "pattern",
            Self::QueueName => "queue name",
        })
    }
}

/// Why a subject, pattern or queue name was refused. The text reads well to
/// a user: `invalid subject "a..b": empty token`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    /// The name is empty.
    #[error("invalid {kind}: empty")]
    Empty {
        /// What was being checked.
        kind: NameKind,
    },
    /// Two dots in a row, or a leading or trailing dot.
    #[error("invalid {kind} {name:?}: empty token")]
    EmptyToken {
        /// What was being checked.
        kind: NameKind,
        /// The name as given (lossy UTF-8, shortened if long).
        name: String,
    },
    /// A space, tab, CR, LF or form feed.
    #[error("invalid {kind} {name:?}: contains whitespace")]
    Whitespace {
        /// What was being checked.
        kind: NameKind,
        /// The name as given (lossy UTF-8, shortened if long).
        name: String,
    },
    /// A `*` or `>` token in a subject that is published to.
    #[error("invalid subject {name:?}: wildcards are only allowed in subscriptions")]
    WildcardInSubject {
        /// The subject as given (lossy UTF-8, shortened if long).
        name: String,
    },
    /// A `>` token that is not the last token of a pattern.
    #[error("invalid pattern {name:?}: '>' must be the last token")]
    MisplacedFullWildcard {
        /// The pattern as given (lossy UTF-8, shortened if long).
        name: String,
    },
    /// Bytes that are not UTF-8 where text is required (deserializing).
    #[error("invalid {kind}: not UTF-8")]
    InvalidUtf8 {
        /// What was being checked.
        kind: NameKind,
    },
}

/// Longest name quoted in an error message, in bytes.
const QUOTE_LIMIT: usize = 128;

/// The name for an error message: lossy UTF-8, cut at [`QUOTE_LIMIT`].
fn quote(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(QUOTE_LIMIT)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if cut.len() < bytes.len() {
        text.push('…');
    }
    text
}

/// The bytes NATS refuses anywhere in a name.
fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0c)
}

/// Checks the rules shared by subjects and patterns: non-empty, no
/// whitespace, no empty token.
fn check_tokens(kind: NameKind, bytes: &[u8]) -> Result<(), SubjectError> {
    if bytes.is_empty() {
        return Err(SubjectError::Empty { kind });
    }
    if bytes.iter().any(|&b| is_whitespace(b)) {
        return Err(SubjectError::Whitespace {
            kind,
            name: quote(bytes),
        });
    }
    if split_tokens(bytes).any(<[u8]>::is_empty) {
        return Err(SubjectError::EmptyToken {
            kind,
            name: quote(bytes),
        });
    }
    Ok(())
}

fn split_tokens(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.split(|&b| b == b'.')
}

/// One token of a pattern, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatternToken<'a> {
    /// Matches exactly this token.
    Literal(&'a [u8]),
    /// `*`: any one token.
    One,
    /// `>` as the last token: one or more tokens.
    Rest,
}

/// The name types share accessors and conversions; only validation differs.
macro_rules! name_type {
    ($ty:ident, $kind:expr) => {
        impl $ty {
            /// The name as bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// The name as text, if it is UTF-8.
            pub fn as_str(&self) -> Option<&str> {
                std::str::from_utf8(&self.0).ok()
            }

            /// The underlying shared bytes (a reference-count bump, no copy).
            pub fn to_bytes(&self) -> Bytes {
                self.0.clone()
            }
        }

        impl fmt::Display for $ty {
            /// Lossy UTF-8.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&String::from_utf8_lossy(&self.0))
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut tuple = f.debug_tuple(stringify!($ty));
                match self.as_str() {
                    Some(text) => tuple.field(&text),
                    None => tuple.field(&self.0),
                };
                tuple.finish()
            }
        }

        impl AsRef<[u8]> for $ty {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = SubjectError;

            fn try_from(s: &str) -> Result<Self, SubjectError> {
                Self::new(s)
            }
        }

        impl TryFrom<&String> for $ty {
            type Error = SubjectError;

            fn try_from(s: &String) -> Result<Self, SubjectError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = SubjectError;

            fn try_from(s: String) -> Result<Self, SubjectError> {
                Self::from_bytes(Bytes::from(s))
            }
        }

        impl FromStr for $ty {
            type Err = SubjectError;

            fn from_str(s: &str) -> Result<Self, SubjectError> {
                Self::new(s)
            }
        }

        impl serde::Serialize for $ty {
            /// As a string (lossy UTF-8 for names that are not text).
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self.as_str() {
                    Some(text) => serializer.serialize_str(text),
                    None => serializer.serialize_str(&String::from_utf8_lossy(&self.0)),
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            /// From a string, validated as by the checked constructor.
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;

                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $ty;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "a {} as a string", $kind)
                    }

                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        $ty::new(v).map_err(E::custom)
                    }

                    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<$ty, E> {
                        $ty::try_from(v).map_err(E::custom)
                    }

                    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<$ty, E> {
                        match std::str::from_utf8(v) {
                            Ok(text) => self.visit_str(text),
                            Err(_) => Err(E::custom(SubjectError::InvalidUtf8 { kind: $kind })),
                        }
                    }
                }

                deserializer.deserialize_str(Visitor)
            }
        }
    };
}

/// A literal subject a message is published on, such as `orders.eu.created`.
///
/// Cheap to clone (a shared [`Bytes`]). Ordered, compared and hashed by its
/// bytes; it borrows as `[u8]`, so maps keyed by subject can be searched with
/// a byte slice.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject(Bytes);

name_type!(Subject, NameKind::Subject);

impl Subject {
    /// A publish subject, checked against the NATS rules: non-empty,
    /// dot-separated, non-empty tokens, no whitespace, and no `*` or `>`
    /// token (`f*o` is fine: only whole tokens are wildcards).
    ///
    /// # Errors
    /// A [`SubjectError`] naming the rule broken.
    pub fn new(s: &str) -> Result<Self, SubjectError> {
        Self::check(s.as_bytes())?;
        Ok(Self(Bytes::copy_from_slice(s.as_bytes())))
    }

    /// As [`Subject::new`], for bytes that need not be UTF-8.
    ///
    /// # Errors
    /// A [`SubjectError`] naming the rule broken.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, SubjectError> {
        Self::check(&bytes)?;
        Ok(Self(bytes))
    }

    /// Wraps a name that a protocol adapter has checked by its own rules: a
    /// Redis channel may be any bytes, even empty or with spaces; a
    /// non-pedantic NATS publish may carry `*` and `>` tokens, which are then
    /// literal tokens. See [`Subject::is_token_subject`] for how such a
    /// subject is matched.
    pub fn from_wire_unchecked(bytes: Bytes) -> Self {
        Self(bytes)
    }

    /// An owned copy: a subject parsed from the wire is a view into the
    /// connection's read buffer, which whatever keeps the subject (a cache
    /// key, a queued request, a stored message) must not keep alive.
    pub fn detached(&self) -> Self {
        Self(Bytes::copy_from_slice(&self.0))
    }

    fn check(bytes: &[u8]) -> Result<(), SubjectError> {
        check_tokens(NameKind::Subject, bytes)?;
        if split_tokens(bytes).any(|t| t == b"*" || t == b">") {
            return Err(SubjectError::WildcardInSubject { name: quote(bytes) });
        }
        Ok(())
    }

    /// True when the subject obeys the token rules (non-empty tokens, no
    /// whitespace), so patterns can match it. Subjects from the checked
    /// constructors always do; a `*` or `>` token counts as a literal token
    /// here. A subject that does not is matched by no pattern.
    pub fn is_token_subject(&self) -> bool {
        let mut after_dot = true;
        for &b in self.0.iter() {
            if b == b'.' {
                if after_dot {
                    return false;
                }
                after_dot = true;
            } else if is_whitespace(b) {
                return false;
            } else {
                after_dot = false;
            }
        }
        // Also false for the empty subject and a trailing dot.
        !after_dot
    }

    /// The dot-separated tokens (one empty token for an empty subject).
    pub fn tokens(&self) -> impl Iterator<Item = &[u8]> {
        split_tokens(&self.0)
    }
}

impl Borrow<[u8]> for Subject {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

/// A subscription pattern: dot-separated tokens where `*` matches exactly one
/// token and `>`, only as the last token, matches one or more tokens.
/// `foo.>` matches `foo.a` and `foo.a.b` but not `foo`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pattern(Bytes);

name_type!(Pattern, NameKind::Pattern);

impl Pattern {
    /// A pattern, checked: non-empty tokens, no whitespace, `>` only as the
    /// last token.
    ///
    /// # Errors
    /// A [`SubjectError`] naming the rule broken.
    pub fn new(s: &str) -> Result<Self, SubjectError> {
        Self::check(s.as_bytes())?;
        Ok(Self(Bytes::copy_from_slice(s.as_bytes())))
    }

    /// As [`Pattern::new`], for bytes that need not be UTF-8. The bytes are
    /// copied: a pattern lives as long as its subscription, and should not
    /// keep alive the read buffer it was sliced from.
    ///
    /// # Errors
    /// A [`SubjectError`] naming the rule broken.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, SubjectError> {
        Self::check(&bytes)?;
        Ok(Self(Bytes::copy_from_slice(&bytes)))
    }

    /// Wraps bytes known to form a pattern (rebuilt from the index's trie).
    pub(crate) fn from_trusted(bytes: Bytes) -> Self {
        Self(bytes)
    }

    fn check(bytes: &[u8]) -> Result<(), SubjectError> {
        check_tokens(NameKind::Pattern, bytes)?;
        let mut tokens = split_tokens(bytes).peekable();
        while let Some(token) = tokens.next() {
            if token == b">" && tokens.peek().is_some() {
                return Err(SubjectError::MisplacedFullWildcard { name: quote(bytes) });
            }
        }
        Ok(())
    }

    /// The dot-separated tokens, wildcards included as `*` and `>`.
    pub fn tokens(&self) -> impl Iterator<Item = &[u8]> {
        split_tokens(&self.0)
    }

    /// The tokens, classified. A `>` that is not last (possible only in a
    /// pattern made from an unchecked subject) is a literal; the index and
    /// [`Pattern::matches`] both read tokens through here, so they agree.
    pub(crate) fn classified(&self) -> impl Iterator<Item = PatternToken<'_>> {
        let mut tokens = self.tokens().peekable();
        std::iter::from_fn(move || {
            let token = tokens.next()?;
            Some(match token {
                b"*" => PatternToken::One,
                b">" if tokens.peek().is_none() => PatternToken::Rest,
                literal => PatternToken::Literal(literal),
            })
        })
    }

    /// True when the pattern has no wildcard token, so it matches only the
    /// subject with the same bytes.
    pub fn is_literal(&self) -> bool {
        self.classified()
            .all(|t| matches!(t, PatternToken::Literal(_)))
    }

    /// Whether `subject` matches this pattern: the plain, obviously correct
    /// matcher (the index is tested against it; it also serves one-off checks
    /// such as permissions). A subject that is not a token subject
    /// ([`Subject::is_token_subject`]) matches no pattern.
    pub fn matches(&self, subject: &Subject) -> bool {
        if !subject.is_token_subject() {
            return false;
        }
        let mut tokens = subject.tokens();
        for expected in self.classified() {
            match (expected, tokens.next()) {
                (_, None) => return false,
                (PatternToken::Rest, Some(_)) => return true,
                (PatternToken::One, Some(_)) => {}
                (PatternToken::Literal(want), Some(got)) => {
                    if want != got {
                        return false;
                    }
                }
            }
        }
        tokens.next().is_none()
    }

    /// Whether every subject `other` matches is also matched by `self`.
    pub fn contains(&self, other: &Pattern) -> bool {
        let outer: Vec<PatternToken<'_>> = self.classified().collect();
        let inner: Vec<PatternToken<'_>> = other.classified().collect();
        for (i, o) in outer.iter().enumerate() {
            match (o, inner.get(i)) {
                (PatternToken::Rest, Some(_)) => return true,
                (_, None) | (_, Some(PatternToken::Rest)) => return false,
                (PatternToken::One, Some(_)) => {}
                (PatternToken::Literal(want), Some(PatternToken::Literal(got))) if want == got => {}
                (PatternToken::Literal(_), Some(_)) => return false,
            }
        }
        outer.len() == inner.len()
    }

    /// Whether some subject matches both patterns.
    pub fn overlaps(&self, other: &Pattern) -> bool {
        let a: Vec<PatternToken<'_>> = self.classified().collect();
        let b: Vec<PatternToken<'_>> = other.classified().collect();
        for i in 0.. {
            match (a.get(i), b.get(i)) {
                (Some(PatternToken::Rest), Some(_)) | (Some(_), Some(PatternToken::Rest)) => {
                    return true;
                }
                (Some(PatternToken::Literal(x)), Some(PatternToken::Literal(y))) if x != y => {
                    return false;
                }
                (Some(_), Some(_)) => {}
                (None, None) => return true,
                _ => return false,
            }
        }
        false
    }
}

impl From<Subject> for Pattern {
    /// The pattern with the subject's bytes: for a checked subject, one that
    /// matches only that subject. (A `*` or `>` token of an unchecked subject
    /// becomes a wildcard here.)
    fn from(subject: Subject) -> Self {
        Self(subject.0)
    }
}

/// The name of a queue group: non-empty, no whitespace.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(Bytes);

name_type!(QueueName, NameKind::QueueName);

impl QueueName {
    /// A queue group name, checked: non-empty, no whitespace.
    ///
    /// # Errors
    /// A [`SubjectError`] naming the rule broken.
    pub fn new(s: &str) -> Result<Self, SubjectError> {
        Self::check(s.as_bytes())?;
        Ok(Self(Bytes::copy_from_slice(s.as_bytes())))
    }

    /// As [`QueueName::new`], for bytes that need not be UTF-8. The bytes are
    /// copied, as by [`Pattern::from_bytes`].
    ///
    /// # Errors
    /// A [`SubjectError`] naming the rule broken.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, SubjectError> {
        Self::check(&bytes)?;
        Ok(Self(Bytes::copy_from_slice(&bytes)))
    }

    fn check(bytes: &[u8]) -> Result<(), SubjectError> {
        let kind = NameKind::QueueName;
        if bytes.is_empty() {
            return Err(SubjectError::Empty { kind });
        }
        if bytes.iter().any(|&b| is_whitespace(b)) {
            return Err(SubjectError::Whitespace {
                kind,
                name: quote(bytes),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn subject(s: &str) -> Subject {
        Subject::new(s).expect("valid subject")
    }

    fn pattern(s: &str) -> Pattern {
        Pattern::new(s).expect("valid pattern")
    }

    fn unchecked(s: &'static str) -> Subject {
        Subject::from_wire_unchecked(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn subjects_follow_the_nats_rules() {
        for good in ["a", "orders.eu.created", "f*o.ba>r", "$JS.API.INFO", "ü.x"] {
            assert!(Subject::new(good).is_ok(), "{good:?} must be accepted");
        }
        let cases = [
            (
                "",
                SubjectError::Empty {
                    kind: NameKind::Subject,
                },
            ),
            ("a..b", empty_token(NameKind::Subject, "a..b")),
            (".a", empty_token(NameKind::Subject, ".a")),
            ("a.", empty_token(NameKind::Subject, "a.")),
            ("a. b", whitespace(NameKind::Subject, "a. b")),
            ("a\tb", whitespace(NameKind::Subject, "a\tb")),
            ("a\rb", whitespace(NameKind::Subject, "a\rb")),
            ("a\nb", whitespace(NameKind::Subject, "a\nb")),
            ("a\x0cb", whitespace(NameKind::Subject, "a\x0cb")),
            (
                "a.*",
                SubjectError::WildcardInSubject { name: "a.*".into() },
            ),
            (">", SubjectError::WildcardInSubject { name: ">".into() }),
        ];
        for (bad, want) in cases {
            assert_eq!(Subject::new(bad), Err(want.clone()), "{bad:?}");
            let from_bytes = Subject::from_bytes(Bytes::copy_from_slice(bad.as_bytes()));
            assert_eq!(from_bytes, Err(want), "{bad:?} as bytes");
        }
    }

    fn empty_token(kind: NameKind, name: &str) -> SubjectError {
        SubjectError::EmptyToken {
            kind,
            name: name.into(),
        }
    }

    fn whitespace(kind: NameKind, name: &str) -> SubjectError {
        SubjectError::Whitespace {
            kind,
            name: name.into(),
        }
    }

    #[test]
    fn errors_read_well() {
        let text = |r: Result<Subject, SubjectError>| r.expect_err("invalid").to_string();
        assert_eq!(
            text(Subject::new("a..b")),
            r#"invalid subject "a..b": empty token"#
        );
        assert_eq!(text(Subject::new("")), "invalid subject: empty");
        assert_eq!(
            text(Subject::new("a b")),
            r#"invalid subject "a b": contains whitespace"#
        );
        assert_eq!(
            text(Subject::new("a.*")),
            r#"invalid subject "a.*": wildcards are only allowed in subscriptions"#
        );
        assert_eq!(
            Pattern::new("a.>.b").expect_err("misplaced").to_string(),
            r#"invalid pattern "a.>.b": '>' must be the last token"#
        );
        assert_eq!(
            QueueName::new("").expect_err("empty").to_string(),
            "invalid queue name: empty"
        );
        let long = "x ".repeat(200);
        let message = text(Subject::new(&long));
        assert!(message.len() < 200, "long names are shortened: {message}");
    }

    #[test]
    fn from_bytes_accepts_any_bytes_but_whitespace() {
        let raw = Subject::from_bytes(Bytes::from_static(b"a.\xff\x00.b")).expect("valid");
        assert_eq!(raw.as_str(), None);
        assert_eq!(raw.tokens().count(), 3);
        assert_eq!(format!("{raw:?}"), r#"Subject(b"a.\xff\0.b")"#);
        assert_eq!(raw.to_string(), "a.\u{fffd}\0.b");
    }

    #[test]
    fn token_subjects() {
        assert!(subject("a.b").is_token_subject());
        assert!(
            unchecked("a.*.>").is_token_subject(),
            "published wildcards are literal tokens"
        );
        for odd in ["", ".", "a..b", ".a", "a.", "a b", "has space", "\t"] {
            assert!(!unchecked(odd).is_token_subject(), "{odd:?}");
        }
    }

    #[test]
    fn patterns_follow_the_wildcard_rules() {
        for good in ["a", "a.*", "a.>", "*.b.>", ">", "*", "*.*", "foo>.x", "f*o"] {
            assert!(Pattern::new(good).is_ok(), "{good:?} must be accepted");
        }
        for bad in ["", "a.>.b", ">.a", "a..b", "a b", "a.", ".a"] {
            assert!(Pattern::new(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(pattern("a.b").is_literal());
        assert!(pattern("f*o.b>").is_literal());
        assert!(!pattern("a.*").is_literal());
        assert!(!pattern("a.>").is_literal());
    }

    #[test]
    fn naive_matching() {
        let cases = [
            ("a.b", "a.b", true),
            ("a.b", "a.c", false),
            ("a.b", "a.b.c", false),
            ("a.*", "a.b", true),
            ("a.*", "a", false),
            ("a.*", "a.b.c", false),
            ("*.b", "x.b", true),
            ("*", "a", true),
            ("*", "a.b", false),
            ("a.>", "a.b", true),
            ("a.>", "a.b.c", true),
            ("a.>", "a", false),
            (">", "a", true),
            (">", "a.b.c", true),
            ("*.>", "a", false),
            ("*.>", "a.b", true),
            ("f*o", "foo", false),
            ("f*o", "f*o", true),
        ];
        for (p, s, want) in cases {
            assert_eq!(pattern(p).matches(&subject(s)), want, "{p} ~ {s}");
        }
        // Wildcards published as literal tokens (non-pedantic NATS).
        assert!(
            pattern("$JS.API.CONSUMER.CREATE.*.>")
                .matches(&unchecked("$JS.API.CONSUMER.CREATE.S.c.orders.>"))
        );
        assert!(pattern("a.*").matches(&unchecked("a.*")));
        assert!(!pattern("a.b").matches(&unchecked("a.*")));
        // Non-token subjects match nothing, not even `>`.
        for odd in ["", "has space", "a..b"] {
            assert!(!pattern(">").matches(&unchecked(odd)), "{odd:?}");
        }
    }

    #[test]
    fn subject_converts_into_a_literal_pattern() {
        let p = Pattern::from(subject("_INBOX.abc"));
        assert!(p.is_literal());
        assert!(p.matches(&subject("_INBOX.abc")));
        assert!(!p.matches(&subject("_INBOX.abd")));
        // A misplaced `>` from an unchecked subject stays a literal token.
        let odd = Pattern::from(unchecked("a.>.b"));
        assert!(odd.is_literal());
        assert!(odd.matches(&unchecked("a.>.b")));
        assert!(!odd.matches(&subject("a.x.b")));
    }

    #[test]
    fn queue_names() {
        assert!(QueueName::new("workers").is_ok());
        assert!(QueueName::new("a.b").is_ok());
        assert_eq!(
            QueueName::new(""),
            Err(SubjectError::Empty {
                kind: NameKind::QueueName
            })
        );
        assert!(QueueName::new("a b").is_err());
        let q: QueueName = "g".try_into().expect("valid");
        assert_eq!(q.as_str(), Some("g"));
    }

    #[test]
    fn conversions() {
        let s: Subject = "a.b".parse().expect("valid");
        assert_eq!(Subject::try_from(String::from("a.b")), Ok(s.clone()));
        assert_eq!(Subject::try_from(&String::from("a.b")), Ok(s.clone()));
        assert_eq!(s.as_str(), Some("a.b"));
        assert_eq!(s.to_bytes(), Bytes::from_static(b"a.b"));
        assert_eq!(format!("{s} {s:?}"), r#"a.b Subject("a.b")"#);
        assert!(subject("a.a") < subject("a.b"));
        let mut map = std::collections::HashMap::new();
        map.insert(s.clone(), 1);
        assert_eq!(map.get(&b"a.b"[..]), Some(&1), "borrows as bytes");
        let p: Pattern = "a.*".parse().expect("valid");
        assert_eq!(format!("{p:?}"), r#"Pattern("a.*")"#);
        assert!("a.>.b".parse::<Pattern>().is_err());
    }

    #[test]
    fn serde_as_strings_validated() {
        let s: Subject = serde_json::from_str(r#""a.b""#).expect("valid");
        assert_eq!(s, subject("a.b"));
        assert_eq!(serde_json::to_string(&s).expect("serialize"), r#""a.b""#);
        assert!(serde_json::from_str::<Subject>(r#""a..b""#).is_err());
        assert!(serde_json::from_str::<Subject>(r#""a.*""#).is_err());
        assert!(serde_json::from_str::<Subject>("17").is_err());
        let p: Pattern = serde_json::from_str(r#""a.>""#).expect("valid");
        assert_eq!(p, pattern("a.>"));
        assert!(serde_json::from_str::<Pattern>(r#""a.>.b""#).is_err());
        let q: QueueName = serde_json::from_str(r#""workers""#).expect("valid");
        assert_eq!(
            serde_json::to_string(&q).expect("serialize"),
            r#""workers""#
        );
        let err = serde_json::from_str::<QueueName>(r#""a b""#).expect_err("invalid");
        assert!(err.to_string().contains("contains whitespace"), "{err}");
    }

    fn token() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "*", ">", "", " ", "x y", "f*o"]).prop_map(String::from)
    }

    proptest! {
        /// The checked constructors accept exactly the token subjects without
        /// wildcard tokens; patterns exactly those with `>` last.
        #[test]
        fn constructors_agree_with_the_rules(tokens in prop::collection::vec(token(), 1..5)) {
            let text = tokens.join(".");
            let token_shaped = unchecked_owned(&text).is_token_subject();
            let has_wildcard = tokens.iter().any(|t| t == "*" || t == ">");
            prop_assert_eq!(Subject::new(&text).is_ok(), token_shaped && !has_wildcard);
            let misplaced = tokens[..tokens.len() - 1].iter().any(|t| t == ">");
            prop_assert_eq!(Pattern::new(&text).is_ok(), token_shaped && !misplaced);
            if let Ok(p) = Pattern::new(&text) {
                prop_assert_eq!(p.is_literal(), !has_wildcard);
            }
        }
    }

    fn unchecked_owned(s: &str) -> Subject {
        Subject::from_wire_unchecked(Bytes::copy_from_slice(s.as_bytes()))
    }
}
