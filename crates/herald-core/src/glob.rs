//! Redis glob matching, for `PSUBSCRIBE` patterns and `PUBSUB CHANNELS`.
//!
//! [`glob_match`] behaves as Redis's `stringmatchlen` (case-sensitive), quirks
//! included, so a Redis client sees the same pattern subscriptions match here
//! as on redis-server:
//!
//! | pattern | matches |
//! | --- | --- |
//! | `*` | any run of bytes, even none; but no pattern except the empty one matches an empty text |
//! | `?` | one byte |
//! | `[abc]`, `[^abc]` | one byte in / not in the set; `^` only right after `[` |
//! | `[a-z]` | a range, inclusive; `[z-a]` is the same range |
//! | `\x` | a literal `x`, also inside a class |
//!
//! `[]` never matches; `[^]` matches any one byte; a `]` right after `[`
//! closes the class; a class left open runs to the end of the pattern, while
//! a pattern ending in a bare `[` matches nothing; a leading `-` in a class is
//! literal, a trailing one starts a range up to `]`; a trailing lone `\` is a
//! literal backslash.
//!
//! Redis recurses once per `*` and caps the nesting at 1000; it also stops as
//! soon as the text after a `*` cannot match anywhere, which keeps
//! pathological patterns cheap. Both properties hold here without recursion:
//! once a `*` has been passed, only the latest `*` ever needs to take more of
//! the text (a classic single backtrack point), and passing a 1001st `*` that
//! is not the pattern's last byte fails the match, as Redis's cap does.
//! Bytes compare as unsigned values; Redis compares C `char`s, which are
//! signed on x86, so ranges that span bytes of 0x80 and above may differ
//! there.

/// How many `*` groups Redis follows before it gives up on a pattern.
const MAX_STARS: usize = 1000;

/// Whether `text` matches the Redis glob `pattern`, byte by byte.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    if text.is_empty() {
        // Redis's loop never starts on an empty text.
        return pattern.is_empty();
    }
    let mut p = 0;
    let mut t = 0;
    // The latest `*`: where the pattern after it starts, and the text
    // position it was last tried at.
    let mut star: Option<(usize, usize)> = None;
    let mut stars = 0;
    loop {
        let step = if p == pattern.len() {
            // Pattern used up with text left over.
            Step::Fail
        } else {
            match pattern[p] {
                b'*' => {
                    while pattern.get(p + 1) == Some(&b'*') {
                        p += 1;
                    }
                    if p + 1 == pattern.len() {
                        return true;
                    }
                    stars += 1;
                    if stars > MAX_STARS {
                        return false;
                    }
                    p += 1;
                    star = Some((p, t));
                    continue;
                }
                b'?' => Step::Next(p + 1),
                b'[' => class(pattern, p + 1, text[t]),
                b'\\' if p + 1 < pattern.len() => literal(pattern[p + 1], text[t], p + 2),
                byte => literal(byte, text[t], p + 1),
            }
        };
        match step {
            Step::Next(next) => {
                p = next;
                t += 1;
                if t == text.len() {
                    while pattern.get(p) == Some(&b'*') {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    // Pattern left over: let the latest `*` take more text.
                    if !retry(&mut star, &mut p, &mut t, text.len()) {
                        return false;
                    }
                }
            }
            Step::Fail => {
                if !retry(&mut star, &mut p, &mut t, text.len()) {
                    return false;
                }
            }
        }
    }
}

/// The outcome of matching one pattern element against one byte.
enum Step {
    /// It matched; the pattern continues at this index.
    Next(usize),
    /// It did not.
    Fail,
}

fn literal(want: u8, got: u8, next: usize) -> Step {
    if want == got {
        Step::Next(next)
    } else {
        Step::Fail
    }
}

/// Matches `byte` against the class whose body starts at `start` (just after
/// the `[`), in the order Redis reads it.
fn class(pattern: &[u8], start: usize, byte: u8) -> Step {
    let mut i = start;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut found = false;
    // Index just past the class.
    let next = loop {
        match pattern.get(i) {
            // Open class: it ends with the pattern.
            None => break pattern.len(),
            Some(b'\\') if i + 1 < pattern.len() => {
                i += 1;
                found |= pattern[i] == byte;
            }
            Some(b']') => break i + 1,
            Some(&low) if i + 2 < pattern.len() && pattern[i + 1] == b'-' => {
                let high = pattern[i + 2];
                let (low, high) = if low <= high {
                    (low, high)
                } else {
                    (high, low)
                };
                found |= (low..=high).contains(&byte);
                i += 2;
            }
            Some(&member) => found |= member == byte,
        }
        i += 1;
    };
    if found != negate {
        Step::Next(next)
    } else {
        Step::Fail
    }
}

/// Lets the latest `*` take one more byte and restarts after it; false when
/// there is no `*` or it has tried every position (then, as in Redis, no
/// earlier `*` can help either).
fn retry(star: &mut Option<(usize, usize)>, p: &mut usize, t: &mut usize, len: usize) -> bool {
    let Some((after, tried)) = *star else {
        return false;
    };
    // Redis tries the text after a `*` only while some of it is left.
    if tried + 1 >= len {
        return false;
    }
    *star = Some((after, tried + 1));
    *p = after;
    *t = tried + 1;
    true
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        glob_match(pattern.as_bytes(), text.as_bytes())
    }

    /// A line-by-line Rust port of Redis's recursive `stringmatchlen_impl`
    /// (case-sensitive), the oracle for the iterative matcher. Out-of-range
    /// reads see the NUL that terminates a Redis string.
    fn redis(pattern: &[u8], text: &[u8]) -> bool {
        let mut skip = false;
        redis_impl(pattern, text, &mut skip, 0)
    }

    fn redis_impl(pat: &[u8], text: &[u8], skip: &mut bool, nesting: usize) -> bool {
        if nesting > 1000 {
            return false;
        }
        let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
        let (mut p, mut plen) = (0usize, pat.len());
        let (mut s, mut slen) = (0usize, text.len());
        while plen > 0 && slen > 0 {
            match pat[p] {
                b'*' => {
                    while plen > 0 && at(pat, p + 1) == b'*' {
                        p += 1;
                        plen -= 1;
                    }
                    if plen == 1 {
                        return true;
                    }
                    while slen > 0 {
                        if redis_impl(&pat[p + 1..], &text[s..], skip, nesting + 1) {
                            return true;
                        }
                        if *skip {
                            return false;
                        }
                        s += 1;
                        slen -= 1;
                    }
                    *skip = true;
                    return false;
                }
                b'?' => {
                    s += 1;
                    slen -= 1;
                }
                b'[' => {
                    p += 1;
                    plen -= 1;
                    let not = at(pat, p) == b'^';
                    if not {
                        p += 1;
                        plen -= 1;
                    }
                    let mut matched = false;
                    loop {
                        if at(pat, p) == b'\\' && plen >= 2 {
                            p += 1;
                            plen -= 1;
                            if pat[p] == text[s] {
                                matched = true;
                            }
                        } else if at(pat, p) == b']' {
                            break;
                        } else if plen == 0 {
                            p -= 1;
                            plen += 1;
                            break;
                        } else if plen >= 3 && pat[p + 1] == b'-' {
                            let (mut start, mut end) = (pat[p], pat[p + 2]);
                            if start > end {
                                std::mem::swap(&mut start, &mut end);
                            }
                            p += 2;
                            plen -= 2;
                            if text[s] >= start && text[s] <= end {
                                matched = true;
                            }
                        } else if pat[p] == text[s] {
                            matched = true;
                        }
                        p += 1;
                        plen -= 1;
                    }
                    if not {
                        matched = !matched;
                    }
                    if !matched {
                        return false;
                    }
                    s += 1;
                    slen -= 1;
                }
                c => {
                    let c = if c == b'\\' && plen >= 2 {
                        p += 1;
                        plen -= 1;
                        pat[p]
                    } else {
                        c
                    };
                    if c != text[s] {
                        return false;
                    }
                    s += 1;
                    slen -= 1;
                }
            }
            p += 1;
            plen -= 1;
            if slen == 0 {
                while at(pat, p) == b'*' {
                    p += 1;
                    plen -= 1;
                }
                break;
            }
        }
        plen == 0 && slen == 0
    }

    /// Textbook glob (no classes, no escapes) by dynamic programming, with
    /// Redis's one exception: only the empty pattern matches an empty text.
    fn dp(pattern: &[u8], text: &[u8]) -> bool {
        if text.is_empty() {
            return pattern.is_empty();
        }
        // ok[j]: pattern[..i] matches text[..j].
        let mut ok = vec![false; text.len() + 1];
        ok[0] = true;
        for &c in pattern {
            let mut next = vec![false; text.len() + 1];
            match c {
                b'*' => {
                    let mut any = false;
                    for j in 0..=text.len() {
                        any |= ok[j];
                        next[j] = any;
                    }
                }
                _ => {
                    for j in 1..=text.len() {
                        next[j] = ok[j - 1] && (c == b'?' || c == text[j - 1]);
                    }
                }
            }
            ok = next;
        }
        ok[text.len()]
    }

    #[test]
    fn basics() {
        assert!(m("news.*", "news.tech"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(!m("abc", "ab"));
        assert!(!m("ab", "abc"));
        assert!(m("a.b", "a.b"), "no special meaning for dots");
        assert!(!m("A", "a"), "case-sensitive");
    }

    #[test]
    fn star_never_matches_the_empty_text() {
        assert!(!m("*", ""));
        assert!(!m("**", ""));
        assert!(m("*", "x"));
        assert!(m("a*", "a"));
        assert!(m("a**b", "ab"));
        assert!(m("*a*", "a"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("*.*", "a.b"));
    }

    #[test]
    fn class_edge_cases() {
        // `[]` never matches; `[^]` matches any one byte.
        assert!(!m("[]", "]"));
        assert!(!m("[]", "a"));
        assert!(!m("a[]", "a"));
        assert!(m("[^]", "a"));
        assert!(m("[^]", "]"));
        assert!(!m("[^]", "ab"));
        assert!(m("x[^]y", "x-y"));
        // `]` right after `[` closes the class: `[]a]` is `[]` then `a]`.
        assert!(!m("[]a]", "a"));
        assert!(m(r"[\]]", "]"));
        // Reversed ranges are swapped.
        assert!(m("[z-a]", "m"));
        assert!(!m("[z-a]", "A"));
        // Escapes inside a class.
        assert!(m(r"[\-]", "-"));
        assert!(m(r"[\^]", "^"));
        assert!(m(r"[\\]", "\\"));
        assert!(m(r"[a\-z]", "-"));
        assert!(!m(r"[a\-z]", "m"));
    }

    #[test]
    fn open_class_runs_to_the_end() {
        assert!(m("a[b", "ab"));
        assert!(!m("a[b", "ac"));
        assert!(m("a[bc", "ac"));
        assert!(m("a[^", "ax"), "open negated empty class: any byte");
        // A bare `[` at the end matches nothing.
        assert!(!m("a[", "a"));
        assert!(!m("a[", "a["));
        assert!(!m("a[", "ab"));
        assert!(!m("[", "["));
        // An escape as the last byte of an open class is a literal backslash.
        assert!(m("[\\", "\\"));
    }

    #[test]
    fn dashes() {
        // Leading `-` is literal.
        assert!(m("[-z]", "-"));
        assert!(m("[-z]", "z"));
        assert!(!m("[-z]", "m"));
        // Trailing `-` starts a range up to `]` (`]`..`a`), so no `-`, and
        // the class is left open.
        assert!(!m("[a-]", "-"));
        assert!(m("[a-]", "a"));
        assert!(m("[a-]", "_"));
        assert!(m("[a-]", "]"));
        assert!(!m("[a-]", "b"));
        assert!(m("[a-]x", "a"), "the `x` is inside the open class");
    }

    #[test]
    fn escapes() {
        assert!(m(r"\*", "*"));
        assert!(!m(r"\*", "a"));
        assert!(m(r"a\?", "a?"));
        assert!(!m(r"a\?", "ab"));
        assert!(m(r"\[a]", "[a]"));
        // A trailing lone backslash matches a backslash.
        assert!(m("a\\", "a\\"));
        assert!(!m("a\\", "a"));
        assert!(m("\\", "\\"));
    }

    #[test]
    fn binary_bytes() {
        assert!(glob_match(b"\x00*\xff", b"\x00abc\xff"));
        assert!(glob_match(b"[\x80-\xff]", b"\x90"));
        assert!(!glob_match(b"[\x80-\xff]", b"a"));
        assert!(glob_match(b"?", b"\xff"));
    }

    #[test]
    fn pathological_patterns_stay_cheap() {
        let text = "a".repeat(10_000);
        let pattern = format!("{}b", "a*".repeat(500));
        let started = std::time::Instant::now();
        assert!(!m(&pattern, &text));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(m(&format!("{}a", "*a".repeat(999)), &"a".repeat(2000)));
    }

    #[test]
    fn star_nesting_is_capped_as_in_redis() {
        let text = "a".repeat(1200);
        // 1000 star groups are followed, a 1001st (not last) is not.
        let thousand = "*a".repeat(1000);
        assert!(m(&thousand, &text));
        assert_eq!(
            m(&thousand, &text),
            redis(thousand.as_bytes(), text.as_bytes())
        );
        let over = "*a".repeat(1001);
        assert!(!m(&over, &text));
        assert_eq!(m(&over, &text), redis(over.as_bytes(), text.as_bytes()));
        // ... unless it is the pattern's last byte.
        let trailing = format!("{}*", "*a".repeat(1000));
        assert!(m(&trailing, &text));
        assert_eq!(
            m(&trailing, &text),
            redis(trailing.as_bytes(), text.as_bytes())
        );
    }

    #[test]
    fn port_agrees_on_the_documented_cases() {
        let cases = [
            ("*", ""),
            ("a*", "a"),
            ("a**b", "ab"),
            ("[]", "a"),
            ("[^]", "a"),
            ("a[b", "ab"),
            ("a[", "ab"),
            ("[-z]", "-"),
            ("[a-]", "-"),
            ("a\\", "a\\"),
        ];
        for (p, t) in cases {
            assert_eq!(m(p, t), redis(p.as_bytes(), t.as_bytes()), "{p:?} ~ {t:?}");
        }
    }

    fn glob_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(b"ab*?[]^-\\".to_vec()), 0..12)
    }

    fn text_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(b"ab-]^\\*".to_vec()), 0..10)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The iterative matcher agrees with the port of Redis's recursive one
        /// on patterns made of the special bytes.
        #[test]
        fn agrees_with_redis(pattern in glob_bytes(), text in text_bytes()) {
            prop_assert_eq!(glob_match(&pattern, &text), redis(&pattern, &text));
        }

        /// Without classes and escapes it is the textbook glob.
        #[test]
        fn agrees_with_textbook_glob(
            pattern in prop::collection::vec(prop::sample::select(b"ab*?".to_vec()), 0..10),
            text in prop::collection::vec(prop::sample::select(b"ab".to_vec()), 0..10),
        ) {
            prop_assert_eq!(glob_match(&pattern, &text), dp(&pattern, &text));
        }

        /// Any bytes: no panic, and the same answer as Redis.
        #[test]
        fn never_panics(pattern in prop::collection::vec(any::<u8>(), 0..24), text in prop::collection::vec(any::<u8>(), 0..24)) {
            prop_assert_eq!(glob_match(&pattern, &text), redis(&pattern, &text));
        }
    }
}
