use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn slot(subject: &str) -> Slot {
    slot_at(subject, 1)
}

fn slot_at(subject: &str, time: i64) -> Slot {
    Slot {
        time,
        subject: Subject::new(subject).expect("subject"),
        size: 10,
        location: None,
        body: None,
    }
}

fn filter(patterns: &[&str]) -> SubjectFilter {
    SubjectFilter::parse(patterns)
}

#[test]
fn counts_and_trims_as_messages_come_and_go() {
    let mut ix = MessageIndex::new(1);
    assert_eq!((ix.first_seq(), ix.last_seq()), (1, 0));
    for (seq, s) in [(1, "a"), (2, "b"), (3, "a"), (4, "c")] {
        ix.push(seq, slot(s));
    }
    assert_eq!(ix.messages(), 4);
    assert_eq!(ix.bytes(), 40);
    assert_eq!(ix.subject(b"a").map(SubjectInfo::count), Some(2));
    ix.remove(2);
    assert_eq!(ix.first_seq(), 1);
    ix.remove(1);
    assert_eq!(ix.first_seq(), 3, "the front skips the removed middle slot");
    assert_eq!(ix.subject(b"a").map(SubjectInfo::first), Some(3));
    ix.remove(4);
    assert!(ix.subject(b"c").is_none());
    ix.remove(3);
    assert_eq!(ix.messages(), 0);
    assert_eq!((ix.first_seq(), ix.last_seq()), (5, 4));
    ix.push(5, slot("a"));
    assert_eq!(ix.first_seq(), 5);
}

#[test]
fn last_of_subject_follows_removals() {
    let mut ix = MessageIndex::new(1);
    for (seq, s) in [(1, "a"), (2, "b"), (3, "a")] {
        ix.push(seq, slot(s));
    }
    ix.remove(3);
    assert_eq!(ix.subject(b"a").map(SubjectInfo::last), Some(1));
    assert_eq!(ix.next_matching(2, &filter(&["a"])), None);
    assert_eq!(ix.count_from(1, &SubjectFilter::All), 2);
    assert_eq!(ix.seqs_below(3, &SubjectFilter::All), vec![1, 2]);
}

#[test]
fn a_cursor_counts_what_it_has_yet_to_see() {
    let mut ix = MessageIndex::new(1);
    for (seq, s) in [(1, "a"), (2, "b"), (3, "a")] {
        ix.push(seq, slot(s));
    }
    let id = ix.add_cursor(filter(&["a"]), 1);
    assert_eq!(ix.cursor_pending(id), 2);
    assert_eq!(ix.cursor_peek(id), Some(1));
    ix.cursor_take(id, 1);
    assert_eq!(ix.cursor_pending(id), 1);
    // Stepping over `b` on the way to the next `a` costs nothing.
    assert_eq!(ix.cursor_peek(id), Some(3));
    assert_eq!(ix.cursor_next(id), 3);
    ix.push(4, slot("a"));
    ix.push(5, slot("b"));
    assert_eq!(ix.cursor_pending(id), 2, "a new match counts, b does not");
    ix.remove(3);
    assert_eq!(
        ix.cursor_pending(id),
        1,
        "a removal after the cursor counts"
    );
    assert_eq!(ix.cursor_peek(id), Some(4));
    ix.cursor_take(id, 4);
    assert_eq!(ix.cursor_peek(id), None);
    assert_eq!(ix.cursor_next(id), 6, "nothing left: past the end");
    ix.clear(10);
    assert_eq!(ix.cursor_pending(id), 0);
    ix.push(10, slot("a"));
    assert_eq!(ix.cursor_pending(id), 1, "the cursor survives a purge");
    ix.remove_cursor(id);
}

#[test]
fn times_are_found_by_binary_search_across_holes() {
    let mut ix = MessageIndex::new(1);
    for seq in 1..=10 {
        ix.push(seq, slot_at("a", seq as i64 * 10));
    }
    for seq in [4, 5, 6] {
        ix.remove(seq);
    }
    assert_eq!(ix.first_at_or_after(0), Some(1));
    assert_eq!(ix.first_at_or_after(35), Some(7));
    assert_eq!(ix.first_at_or_after(70), Some(7));
    assert_eq!(ix.first_at_or_after(71), Some(8));
    assert_eq!(ix.first_at_or_after(101), None);
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Remove(u64),
    PurgeBelow(u64, Option<usize>),
    Clear,
    Peek,
    Take,
}

const SUBJECTS: [&str; 6] = ["a", "b", "c.x", "c.y", "d.x.1", "d.y.2"];

const FILTERS: [&[&str]; 7] = [
    &[],
    &["a"],
    &["a", "b"],
    &["c.*"],
    &["c.x", "d.>"],
    &["*.x", "a"],
    &[">"],
];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..SUBJECTS.len()).prop_map(Op::Push),
        2 => (0u64..40).prop_map(Op::Remove),
        1 => (0u64..40, proptest::option::of(0..FILTERS.len()))
            .prop_map(|(below, f)| Op::PurgeBelow(below, f)),
        1 => Just(Op::Clear),
        2 => Just(Op::Peek),
        2 => Just(Op::Take),
    ]
}

proptest! {
    /// The index answers every question as a plain map of the live
    /// messages does, and a cursor's pending count stays exact.
    #[test]
    fn index_agrees_with_a_plain_map(ops in proptest::collection::vec(op(), 1..120), which in 0..FILTERS.len()) {
        let mut ix = MessageIndex::new(1);
        let mut live: BTreeMap<u64, &str> = BTreeMap::new();
        let mut next = 1u64;
        let cursor_filter = filter(FILTERS[which]);
        let id = ix.add_cursor(cursor_filter.clone(), 1);
        let mut peeked: Option<u64> = None;
        let subject = |s: &str| Subject::new(s).expect("subject");
        for op in ops {
            match op {
                Op::Push(s) => {
                    ix.push(next, slot_at(SUBJECTS[s], next as i64));
                    live.insert(next, SUBJECTS[s]);
                    next += 1;
                }
                Op::Remove(seq) => {
                    prop_assert_eq!(ix.remove(seq).is_some(), live.remove(&seq).is_some());
                    peeked = None;
                }
                Op::PurgeBelow(below, f) => {
                    let f = f.map_or(SubjectFilter::All, |f| filter(FILTERS[f]));
                    for seq in ix.seqs_below(below, &f) {
                        ix.remove(seq);
                        live.remove(&seq);
                    }
                    peeked = None;
                }
                Op::Clear => {
                    ix.clear(next);
                    live.clear();
                    peeked = None;
                }
                Op::Peek => peeked = ix.cursor_peek(id),
                Op::Take => {
                    if let Some(seq) = peeked.take() {
                        ix.cursor_take(id, seq);
                    }
                }
            }
            let cursor = ix.cursor_next(id);
            let expected_pending = live
                .range(cursor..)
                .filter(|(_, s)| cursor_filter.matches(&subject(s)))
                .count() as u64;
            prop_assert_eq!(ix.cursor_pending(id), expected_pending);
            prop_assert_eq!(ix.messages(), live.len() as u64);
            prop_assert_eq!(ix.first_seq(), live.keys().next().copied().unwrap_or(next));
            for f in FILTERS {
                let f = filter(f);
                let selected: Vec<u64> = live
                    .iter()
                    .filter(|(_, s)| f.matches(&subject(s)))
                    .map(|(seq, _)| *seq)
                    .collect();
                for from in [0, 3, 10, 25] {
                    prop_assert_eq!(
                        ix.next_matching(from, &f),
                        selected.iter().copied().find(|&s| s >= from)
                    );
                    prop_assert_eq!(
                        ix.count_from(from, &f),
                        selected.iter().filter(|&&s| s >= from).count() as u64
                    );
                    prop_assert_eq!(
                        ix.seqs_below(from, &f),
                        selected.iter().copied().filter(|&s| s < from).collect::<Vec<_>>()
                    );
                }
                prop_assert_eq!(ix.last_matching(&f), selected.last().copied());
                for n in [1, 2, 5] {
                    prop_assert_eq!(
                        ix.nth_last_matching(n, &f),
                        selected.iter().rev().nth(n as usize - 1).copied()
                    );
                }
            }
            for s in SUBJECTS {
                let seqs: Vec<u64> = live.iter().filter(|(_, x)| **x == s).map(|(q, _)| *q).collect();
                let info = ix.subject(s.as_bytes());
                prop_assert_eq!(info.map(SubjectInfo::count).unwrap_or(0), seqs.len() as u64);
                prop_assert_eq!(info.map(SubjectInfo::first), seqs.first().copied());
                prop_assert_eq!(info.map(SubjectInfo::last), seqs.last().copied());
            }
            for time in [0i64, 5, 17, 1000] {
                prop_assert_eq!(
                    ix.first_at_or_after(time),
                    live.keys().copied().find(|&seq| seq as i64 >= time)
                );
            }
        }
    }
}

/// A million messages on 100,000 subjects: what a consumer does per message
/// (peek, take, its pending count), a purge of one subject, and the lookups
/// by subject walk a handful of slots, not the stream.
#[test]
fn consumer_operations_do_not_walk_a_large_stream() {
    const MESSAGES: u64 = 1_000_000;
    const SUBJECTS: u64 = 100_000;
    let mut ix = MessageIndex::new(1);
    let names: Vec<Subject> = (0..SUBJECTS)
        .map(|i| Subject::new(&format!("s.{i}")).expect("subject"))
        .collect();
    for seq in 1..=MESSAGES {
        let subject = ix.intern(&names[(seq % SUBJECTS) as usize]);
        ix.push(
            seq,
            Slot {
                time: seq as i64,
                subject,
                size: 16,
                location: None,
                body: None,
            },
        );
    }
    let walked = |ix: &MessageIndex| ix.walked.get();
    for filter in [filter(&[]), filter(&["s.7"]), filter(&["s.7", "s.8"])] {
        // Creating a cursor at the start counts by subject, not by slot.
        let before = walked(&ix);
        let id = ix.add_cursor(filter.clone(), 1);
        let expected = ix.cursor_pending(id);
        assert!(walked(&ix) - before < 100, "{filter:?}: creation walked");
        let before = walked(&ix);
        let mut delivered = 0;
        while delivered < 1000
            && let Some(seq) = ix.cursor_peek(id)
        {
            ix.cursor_take(id, seq);
            delivered += 1;
        }
        assert_eq!(delivered, expected.min(1000));
        assert_eq!(ix.cursor_pending(id), expected - delivered);
        let per_message = (walked(&ix) - before) / delivered;
        assert!(
            per_message <= 2,
            "{filter:?}: {per_message} slots per delivery"
        );
        ix.remove_cursor(id);
    }
    // A wildcard over every subject walks the slots it delivers, once.
    let id = ix.add_cursor(filter(&["s.*"]), 1);
    let before = walked(&ix);
    for _ in 0..1000 {
        let seq = ix.cursor_peek(id).expect("a message");
        ix.cursor_take(id, seq);
    }
    assert!((walked(&ix) - before) / 1000 <= 2);
    // A sparse wildcard steps over what it skips once, not per delivery.
    let sparse = ix.add_cursor(filter(&["*.99999", "s.12345"]), 1);
    let before = walked(&ix);
    let mut delivered = 0;
    while let Some(seq) = ix.cursor_peek(sparse) {
        ix.cursor_take(sparse, seq);
        delivered += 1;
    }
    assert_eq!(delivered, 20);
    assert!(
        walked(&ix) - before <= MESSAGES + 100,
        "each slot walked once"
    );
    // Lookups and a purge by subject.
    let before = walked(&ix);
    assert_eq!(ix.last_matching(&filter(&["s.5"])), Some(900_005));
    assert_eq!(ix.count_from(500_000, &filter(&["s.5"])), 5);
    let gone = ix.seqs_below(u64::MAX, &filter(&["s.5"]));
    assert_eq!(gone.len(), 10);
    for seq in gone {
        ix.remove(seq);
    }
    assert_eq!(ix.nth_last_matching(2, &filter(&["s.6"])), Some(800_006));
    assert!(ix.subject(b"s.5").is_none());
    assert!(walked(&ix) - before < 100, "by subject, not by slot");
    ix.remove_cursor(id);
    ix.remove_cursor(sparse);
}
