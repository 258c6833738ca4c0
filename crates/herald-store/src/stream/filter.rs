//! Which subjects a consumer, a purge or a read selects, in the form the
//! message index answers fastest: everything, a few literal subjects (looked
//! up in the per-subject table), or patterns with wildcards.

use bytes::Bytes;
use herald_core::{Pattern, Subject};

/// A compiled subject filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SubjectFilter {
    /// Every subject.
    All,
    /// These literal subjects (no duplicates).
    Literals(Vec<Bytes>),
    /// Any of these patterns, at least one of them with a wildcard.
    Patterns(Vec<Pattern>),
}

impl SubjectFilter {
    /// The filter selecting what any of `patterns` matches (everything when
    /// there are none, as a consumer without filters).
    pub(crate) fn new(patterns: &[Pattern]) -> Self {
        if patterns.is_empty() || patterns.iter().any(|p| p.as_bytes() == b">") {
            return Self::All;
        }
        if patterns.iter().all(Pattern::is_literal) {
            let mut literals: Vec<Bytes> = patterns
                .iter()
                .map(|p| Bytes::copy_from_slice(p.as_bytes()))
                .collect();
            literals.sort();
            literals.dedup();
            return Self::Literals(literals);
        }
        Self::Patterns(patterns.to_vec())
    }

    /// The filter of one optional pattern (`None`: everything).
    pub(crate) fn of(pattern: Option<&Pattern>) -> Self {
        match pattern {
            Some(p) => Self::new(std::slice::from_ref(p)),
            None => Self::All,
        }
    }

    /// The filter of `patterns` written out (tests).
    #[cfg(test)]
    pub(crate) fn parse(patterns: &[&str]) -> Self {
        let patterns: Vec<Pattern> = patterns
            .iter()
            .map(|p| Pattern::new(p).expect("pattern"))
            .collect();
        Self::new(&patterns)
    }

    /// Whether `subject` is selected.
    pub(crate) fn matches(&self, subject: &Subject) -> bool {
        match self {
            Self::All => true,
            Self::Literals(literals) => literals.iter().any(|l| l[..] == *subject.as_bytes()),
            Self::Patterns(patterns) => patterns.iter().any(|p| p.matches(subject)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(patterns: &[&str]) -> SubjectFilter {
        SubjectFilter::parse(patterns)
    }

    #[test]
    fn compiles_to_the_cheapest_form() {
        assert_eq!(filter(&[]), SubjectFilter::All);
        assert_eq!(filter(&["a", ">"]), SubjectFilter::All);
        assert_eq!(
            filter(&["b", "a", "b"]),
            SubjectFilter::Literals(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")])
        );
        assert!(matches!(filter(&["a", "b.*"]), SubjectFilter::Patterns(_)));
    }

    #[test]
    fn matches_what_its_patterns_match() {
        let subject = |s: &str| Subject::new(s).expect("subject");
        let f = filter(&["a.b", "c.*"]);
        assert!(f.matches(&subject("a.b")));
        assert!(f.matches(&subject("c.d")));
        assert!(!f.matches(&subject("c.d.e")));
        assert!(filter(&["x"]).matches(&subject("x")));
        assert!(!filter(&["x"]).matches(&subject("x.y")));
    }
}
