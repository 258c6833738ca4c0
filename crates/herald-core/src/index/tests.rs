use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use proptest::prelude::*;

use super::*;

fn pattern(s: &str) -> Pattern {
    Pattern::new(s).expect("valid pattern")
}

fn subject(s: &str) -> Subject {
    Subject::new(s).expect("valid subject")
}

fn queue(s: &str) -> QueueName {
    QueueName::new(s).expect("valid queue name")
}

fn unchecked(s: &str) -> Subject {
    Subject::from_wire_unchecked(Bytes::copy_from_slice(s.as_bytes()))
}

/// A result in comparable form: sorted plain keys (duplicates kept) and
/// each group's sorted members by name.
type Shape = (Vec<u64>, BTreeMap<QueueName, Vec<u64>>);

fn shape(result: &MatchResult<u64>) -> Shape {
    let mut plain = result.plain.clone();
    plain.sort_unstable();
    let mut groups = BTreeMap::new();
    for group in &result.groups {
        let mut members = group.members().to_vec();
        members.sort_unstable();
        let previous = groups.insert(group.name.clone(), members);
        assert!(previous.is_none(), "group {} appears twice", group.name);
    }
    (plain, groups)
}

fn plain(index: &SubjectIndex<u64>, s: &str) -> Vec<u64> {
    shape(&index.matches(&subject(s))).0
}

#[test]
fn literal_star_and_full_wildcards() {
    let index = SubjectIndex::new();
    index.insert(&pattern("a.b"), None, 1, 1);
    index.insert(&pattern("a.*"), None, 2, 2);
    index.insert(&pattern("a.>"), None, 3, 3);
    index.insert(&pattern("*.b"), None, 4, 4);
    index.insert(&pattern(">"), None, 5, 5);
    index.insert(&pattern("*.*.c"), None, 6, 6);
    assert_eq!(plain(&index, "a.b"), [1, 2, 3, 4, 5]);
    assert_eq!(plain(&index, "a.c"), [2, 3, 5]);
    assert_eq!(plain(&index, "a.b.c"), [3, 5, 6]);
    assert_eq!(plain(&index, "x.y.z"), [5]);
    assert_eq!(index.len(), 6);
    assert!(!index.is_empty());
}

#[test]
fn full_wildcard_needs_at_least_one_token() {
    let index = SubjectIndex::new();
    index.insert(&pattern("foo.>"), None, 1, 1);
    assert_eq!(plain(&index, "foo"), Vec::<u64>::new());
    assert_eq!(plain(&index, "foo.a"), [1]);
    assert_eq!(plain(&index, "foo.a.b"), [1]);
    assert!(index.matches(&subject("foo")).is_empty());
}

#[test]
fn published_wildcards_are_literal_tokens() {
    let index = SubjectIndex::new();
    index.insert(&pattern("$JS.API.CONSUMER.CREATE.*.>"), None, 1, 1);
    index.insert(&pattern("a.b"), None, 2, 2);
    index.insert(&pattern("a.*"), None, 3, 3);
    let create = unchecked("$JS.API.CONSUMER.CREATE.S.c.orders.>");
    assert_eq!(shape(&index.matches(&create)).0, [1]);
    assert_eq!(shape(&index.matches(&unchecked("a.*"))).0, [3]);
}

#[test]
fn non_token_subjects_match_nothing_and_are_not_cached() {
    let index = SubjectIndex::new();
    index.insert(&pattern(">"), None, 1, 1);
    index.insert(&Pattern::from(unchecked("has space")), None, 2, 2);
    for odd in ["", "has space", "a..b", "a.", ".a"] {
        assert!(index.matches(&unchecked(odd)).is_empty(), "{odd:?}");
    }
    assert_eq!(index.cache_len(), 0);
}

#[test]
fn queue_groups_merge_by_name_across_patterns() {
    let index = SubjectIndex::new();
    let workers = queue("workers");
    let auditors = queue("auditors");
    index.insert(&pattern("jobs.*"), Some(&workers), 1, 1);
    index.insert(&pattern("jobs.>"), Some(&workers), 2, 2);
    index.insert(&pattern("jobs.new"), Some(&workers), 3, 3);
    index.insert(&pattern("jobs.new"), Some(&auditors), 4, 4);
    index.insert(&pattern("jobs.new"), None, 5, 5);
    let result = index.matches(&subject("jobs.new"));
    let (plain, groups) = shape(&result);
    assert_eq!(plain, [5]);
    assert_eq!(groups.get(&workers), Some(&vec![1, 2, 3]));
    assert_eq!(groups.get(&auditors), Some(&vec![4]));
    assert_eq!(result.len(), 3, "one plain subscriber and two groups");
    let (_, groups) = shape(&index.matches(&subject("jobs.new.urgent")));
    assert_eq!(groups.get(&workers), Some(&vec![2]));
    assert_eq!(groups.len(), 1);
}

#[test]
fn round_robin_is_fair() {
    let group = QueueGroupMatch::new(queue("g"), vec![0usize, 1, 2, 3]);
    let mut counts = [0; 4];
    for _ in 0..4000 {
        let member = *group.pick().expect("a member");
        counts[member] += 1;
    }
    assert_eq!(counts, [1000; 4]);
    let empty: QueueGroupMatch<u8> = QueueGroupMatch::new(queue("g"), Vec::new());
    assert_eq!(empty.pick(), None);
}

#[test]
fn the_cached_result_shares_one_cursor() {
    let index = SubjectIndex::new();
    let g = queue("g");
    for key in 0..3 {
        index.insert(&pattern("work"), Some(&g), key, key);
    }
    let mut counts = [0; 3];
    for _ in 0..300 {
        // A fresh lookup each time, as separate publishers would do.
        let result = index.matches(&subject("work"));
        let member = *result.groups[0].pick().expect("a member");
        counts[member as usize] += 1;
    }
    assert_eq!(counts, [100; 3]);
}

#[test]
fn remove_and_prune() {
    let index = SubjectIndex::new();
    let g = queue("g");
    index.insert(&pattern("a.b.c"), None, 1, 1);
    index.insert(&pattern("a.*.c"), Some(&g), 2, 2);
    index.insert(&pattern("a.>"), None, 3, 3);
    index.insert(&pattern("a"), None, 4, 4);
    assert!(!index.remove(&pattern("a.b.c"), None, 99), "unknown key");
    assert!(!index.remove(&pattern("a.b.c"), Some(&g), 1), "wrong queue");
    assert!(!index.remove(&pattern("a.b.d"), None, 1), "unknown pattern");
    assert!(
        !index.remove(&pattern("a.*.c"), None, 2),
        "queued, not plain"
    );
    assert!(index.remove(&pattern("a.b.c"), None, 1));
    assert!(!index.remove(&pattern("a.b.c"), None, 1), "already gone");
    assert_eq!(plain(&index, "a.b.c"), [3]);
    // `a.b` went with `a.b.c`; `a` stays for its own subscriber and `a.*`.
    {
        let trie = index.trie.read();
        let a = trie.literal.get(&b"a"[..]).expect("a stays");
        assert!(a.literal.is_empty(), "a.b was pruned");
        assert!(a.one.is_some() && a.rest.is_some());
    }
    assert!(index.remove(&pattern("a.*.c"), Some(&g), 2));
    assert!(index.remove(&pattern("a"), None, 4));
    assert!(index.remove(&pattern("a.>"), None, 3));
    assert!(index.trie.read().is_empty(), "everything pruned");
    assert!(index.is_empty());
    assert!(index.patterns().is_empty());
}

#[test]
fn generation_bumps_on_every_change() {
    let index = SubjectIndex::new();
    let g0 = index.generation();
    index.insert(&pattern("a"), None, 1, 1);
    let g1 = index.generation();
    assert_ne!(g0, g1);
    let _ = index.matches(&subject("a"));
    assert_eq!(index.generation(), g1, "matching changes nothing");
    assert!(!index.remove(&pattern("a"), None, 2));
    assert_eq!(index.generation(), g1, "a failed removal changes nothing");
    assert!(index.remove(&pattern("a"), None, 1));
    assert_ne!(index.generation(), g1);
}

#[test]
fn cache_follows_inserts_and_removals() {
    let index = SubjectIndex::new();
    index.insert(&pattern("a.b"), None, 1, 1);
    let _ = index.matches(&subject("a.b"));
    let _ = index.matches(&subject("x.y"));
    assert_eq!(index.cache_len(), 0, "a subject seen once is not cached");
    let before = index.matches(&subject("a.b"));
    let _ = index.matches(&subject("x.y"));
    assert_eq!(index.cache_len(), 2);
    assert!(
        Arc::ptr_eq(&before, &index.matches(&subject("a.b"))),
        "a cache hit"
    );

    index.insert(&pattern("a.*"), None, 2, 2);
    assert_eq!(plain(&index, "a.b"), [1, 2], "patched");
    assert_eq!(
        shape(&before).0,
        [1],
        "a result already handed out stays as it was"
    );
    assert_eq!(index.cache_len(), 2, "patching keeps the entries");
    index.insert(&pattern("a.b"), Some(&queue("q")), 3, 3);
    assert_eq!(shape(&index.matches(&subject("a.b"))).1.len(), 1);

    assert!(index.remove(&pattern("a.*"), None, 2));
    assert_eq!(plain(&index, "a.b"), [1]);
    assert!(index.remove(&pattern("a.b"), None, 1));
    assert!(index.remove(&pattern("a.b"), Some(&queue("q")), 3));
    assert!(index.matches(&subject("a.b")).is_empty());
    assert!(index.matches(&subject("x.y")).is_empty());
}

#[test]
fn literal_prefixes() {
    assert_eq!(literal_prefix(&pattern("orders.eu.*")), b"orders.eu.");
    assert_eq!(literal_prefix(&pattern("orders.*.x")), b"orders.");
    assert_eq!(literal_prefix(&pattern("a.>")), b"a.");
    assert_eq!(literal_prefix(&pattern("*.a")), b"");
    assert_eq!(literal_prefix(&pattern(">")), b"");
    // All literal: the whole pattern.
    assert_eq!(literal_prefix(&pattern("a.b")), b"a.b");
}

#[test]
fn inserting_a_key_again_replaces_its_value() {
    let index = SubjectIndex::new();
    index.insert(&pattern("a"), None, 1, 10);
    let _ = index.matches(&subject("a"));
    index.insert(&pattern("a"), None, 1, 11);
    assert_eq!(index.len(), 1);
    assert_eq!(plain(&index, "a"), [11]);
}

#[test]
fn cache_stays_bounded() {
    let index = SubjectIndex::new();
    index.insert(&pattern(">"), None, 1, 1);
    for i in 0..(CACHE_LIMIT * 3) {
        let s = subject(&format!("s.{i}"));
        let _ = index.matches(&s);
        let _ = index.matches(&s);
        assert!(index.cache_len() <= CACHE_LIMIT);
    }
    assert!(index.cache_len() >= CACHE_LIMIT / 2);
}

#[test]
fn patterns_and_counts() {
    let index = SubjectIndex::new();
    let g = queue("g");
    index.insert(&pattern("a.*"), None, 1, 1);
    index.insert(&pattern("a.*"), Some(&g), 2, 2);
    index.insert(&pattern("a.>"), None, 3, 3);
    index.insert(&pattern("b"), None, 4, 4);
    index.insert(&pattern("b"), None, 5, 5);
    index.insert(&Pattern::from(unchecked("x.>.y")), None, 6, 6);
    let mut patterns = index.patterns();
    patterns.sort();
    let want: Vec<(Pattern, usize)> = vec![
        (pattern("a.*"), 2),
        (pattern("a.>"), 1),
        (pattern("b"), 2),
        (Pattern::from(unchecked("x.>.y")), 1),
    ];
    assert_eq!(patterns, want);
    assert_eq!(index.count_for(&pattern("a.*")), 2);
    assert_eq!(index.count_for(&pattern("a")), 0);
    assert_eq!(index.count_for(&pattern("c.d")), 0);
    assert_eq!(index.count_for(&Pattern::from(unchecked("x.>.y"))), 1);
}

#[test]
fn long_subjects_and_deep_patterns() {
    let index = SubjectIndex::new();
    let long = vec!["t"; 100].join(".");
    index.insert(&pattern(&long), None, 1, 1);
    index.insert(&pattern("t.*.>"), None, 2, 2);
    assert_eq!(plain(&index, &long), [1, 2]);
    // Far deeper than any stack would take by recursion.
    let deep = vec!["d"; 200_000].join(".");
    index.insert(&pattern(&deep), None, 3, 3);
    assert_eq!(plain(&index, &deep), [3]);
    assert_eq!(index.count_for(&pattern(&deep)), 1);
    assert_eq!(index.patterns().len(), 3);
    assert!(index.remove(&pattern(&deep), None, 3));
    index.insert(&pattern(&deep), None, 4, 4);
    drop(index);
}

#[test]
fn many_members_on_one_node() {
    let index = SubjectIndex::new();
    let g = queue("g");
    for key in 0..100 {
        index.insert(&pattern("busy"), None, key, key);
        index.insert(&pattern("busy"), Some(&g), 1000 + key, 1000 + key);
    }
    for key in (0..100).step_by(3) {
        assert!(index.remove(&pattern("busy"), None, key));
        assert!(index.remove(&pattern("busy"), Some(&g), 1000 + key));
    }
    let want: Vec<u64> = (0..100).filter(|k| k % 3 != 0).collect();
    let (plain, groups) = shape(&index.matches(&subject("busy")));
    assert_eq!(plain, want);
    let members: Vec<u64> = want.iter().map(|k| k + 1000).collect();
    assert_eq!(groups.get(&g), Some(&members));
    for key in want {
        assert!(index.remove(&pattern("busy"), None, key));
        assert!(!index.remove(&pattern("busy"), None, key));
    }
}

/// The race the generation check exists for, step by step: a lookup reads
/// the trie, a subscribe lands (and patches the cache), then the lookup
/// tries to cache what it read.
#[test]
fn a_result_computed_before_a_change_is_not_cached_after_it() {
    let index = SubjectIndex::new();
    index.insert(&pattern("a.*"), None, 1, 1);
    let s = subject("a.b");
    let (generation, stale) = index.compute(&s);
    index.insert(&pattern("a.b"), None, 2, 2);
    index.store(&s, generation, &stale);
    assert_eq!(plain(&index, "a.b"), [1, 2]);
    let (generation, stale) = index.compute(&s);
    assert!(index.remove(&pattern("a.*"), None, 1));
    index.store(&s, generation, &stale);
    assert_eq!(plain(&index, "a.b"), [2]);
}

/// A subscriber added while others publish is seen by every lookup that
/// starts after its insert returned, and a removed one by none: no stale
/// result computed before a change may be cached after it.
#[test]
fn concurrent_lookups_never_cache_stale_results() {
    let index = Arc::new(SubjectIndex::new());
    index.insert(&pattern("hot.*"), None, 0, 0);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let index = Arc::clone(&index);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let hot = subject("hot.x");
                while !stop.load(Ordering::Relaxed) {
                    let _ = index.matches(&hot);
                }
            })
        })
        .collect();
    let hot = subject("hot.x");
    for round in 1..2000u64 {
        let p = if round % 2 == 0 {
            pattern("hot.x")
        } else {
            pattern("hot.>")
        };
        index.insert(&p, None, round, round);
        assert!(
            index.matches(&hot).plain.contains(&round),
            "round {round}: added"
        );
        assert!(index.remove(&p, None, round));
        assert!(
            !index.matches(&hot).plain.contains(&round),
            "round {round}: removed"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().expect("reader thread");
    }
}

/// One step of a random workload.
#[derive(Debug, Clone)]
enum Op {
    Insert(Pattern, Option<QueueName>),
    /// Removes the n-th live subscription (modulo how many there are).
    Remove(usize),
    Match(Subject),
}

fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "c", "*", ">"])
}

fn pattern_strategy() -> impl Strategy<Value = Pattern> {
    prop::collection::vec(token(), 1..5).prop_filter_map("'>' only last", |tokens| {
        Pattern::new(&tokens.join(".")).ok()
    })
}

fn subject_strategy() -> impl Strategy<Value = Subject> {
    // Mostly plain tokens; sometimes a published `*` or `>` literal.
    let token = prop::sample::select(vec!["a", "b", "c", "a", "b", "c", "*", ">"]);
    prop::collection::vec(token, 1..6).prop_map(|tokens| unchecked(&tokens.join(".")))
}

fn queue_strategy() -> impl Strategy<Value = Option<QueueName>> {
    prop::sample::select(vec![None, None, Some("q1"), Some("q2")]).prop_map(|name| name.map(queue))
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (pattern_strategy(), queue_strategy()).prop_map(|(p, q)| Op::Insert(p, q)),
        2 => any::<usize>().prop_map(Op::Remove),
        4 => subject_strategy().prop_map(Op::Match),
    ]
}

/// What the naive matcher says `subject` should match.
fn oracle(live: &[(Pattern, Option<QueueName>, u64)], subject: &Subject) -> Shape {
    let mut plain = Vec::new();
    let mut groups: BTreeMap<QueueName, Vec<u64>> = BTreeMap::new();
    for (p, q, key) in live {
        if !p.matches(subject) {
            continue;
        }
        match q {
            None => plain.push(*key),
            Some(name) => groups.entry(name.clone()).or_default().push(*key),
        }
    }
    plain.sort_unstable();
    for members in groups.values_mut() {
        members.sort_unstable();
    }
    (plain, groups)
}

/// The uncached answer, straight from the trie.
fn uncached(index: &SubjectIndex<u64>, subject: &Subject) -> Shape {
    if !subject.is_token_subject() {
        return Default::default();
    }
    let trie = index.trie.read();
    shape(&with_tokens(subject, |tokens| collect(&trie, tokens)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Through any mix of inserts, removals and (caching) lookups, the index
    /// answers as the naive matcher does, cached or not.
    #[test]
    fn agrees_with_the_naive_matcher(ops in prop::collection::vec(op_strategy(), 1..60)) {
        let index = SubjectIndex::new();
        let mut live: Vec<(Pattern, Option<QueueName>, u64)> = Vec::new();
        for (key, op) in (0u64..).zip(ops) {
            match op {
                Op::Insert(p, q) => {
                    index.insert(&p, q.as_ref(), key, key);
                    live.push((p, q, key));
                }
                Op::Remove(n) => {
                    if live.is_empty() {
                        continue;
                    }
                    let (p, q, key) = live.swap_remove(n % live.len());
                    prop_assert!(index.remove(&p, q.as_ref(), key));
                    prop_assert!(!index.remove(&p, q.as_ref(), key));
                }
                Op::Match(s) => {
                    let want = oracle(&live, &s);
                    prop_assert_eq!(&shape(&index.matches(&s)), &want, "cold or patched: {}", s);
                    prop_assert_eq!(&shape(&index.matches(&s)), &want, "warm: {}", s);
                    prop_assert_eq!(&uncached(&index, &s), &want, "uncached: {}", s);
                }
            }
            prop_assert_eq!(index.len(), live.len());
        }
        // Every live pattern is listed with its count.
        let mut counts: BTreeMap<Pattern, usize> = BTreeMap::new();
        for (p, _, _) in &live {
            *counts.entry(p.clone()).or_default() += 1;
        }
        let listed: BTreeMap<Pattern, usize> = index.patterns().into_iter().collect();
        prop_assert_eq!(&listed, &counts);
        for (p, n) in &counts {
            prop_assert_eq!(index.count_for(p), *n);
        }
        // Removing everything prunes the trie to nothing.
        for (p, q, key) in live.drain(..) {
            prop_assert!(index.remove(&p, q.as_ref(), key));
        }
        prop_assert!(index.trie.read().is_empty());
        prop_assert!(index.is_empty());
    }

    /// A batch of patterns against every subject, cold then warm.
    #[test]
    fn batch_agrees_cold_and_warm(
        subs in prop::collection::vec((pattern_strategy(), queue_strategy()), 0..30),
        subjects in prop::collection::vec(subject_strategy(), 1..20),
    ) {
        let index = SubjectIndex::new();
        let live: Vec<_> = (0u64..).zip(subs).map(|(key, (p, q))| (p, q, key)).collect();
        for (p, q, key) in &live {
            index.insert(p, q.as_ref(), *key, *key);
        }
        for pass in ["cold", "warm"] {
            for s in &subjects {
                prop_assert_eq!(shape(&index.matches(s)), oracle(&live, s), "{} {}", pass, s);
            }
        }
    }
}

#[test]
fn match_order_follows_nats_server() {
    // nats-server collects, level by level: the `>` node, the `*` branch,
    // then the literal child. Clients see that order in their MSG stream.
    let index = SubjectIndex::new();
    index.insert(&Pattern::new("a.*").expect("p"), None, 1, 1);
    index.insert(&Pattern::new("a.>").expect("p"), None, 2, 2);
    index.insert(&Pattern::new("*.b.c").expect("p"), None, 3, 3);
    let ab = Subject::new("a.b").expect("s");
    let abc = Subject::new("a.b.c").expect("s");
    assert_eq!(index.matches(&ab).plain, [2, 1]);
    assert_eq!(index.matches(&abc).plain, [3, 2]);
}

#[test]
fn subjects_looked_up_in_turn_are_both_cached() {
    let index = SubjectIndex::new();
    index.insert(&pattern(">"), None, 1, 1);
    // Many pairs, so some share a set of the seen-once table.
    for i in 0..2000 {
        let (a, b) = (subject(&format!("a.{i}")), subject(&format!("b.{i}")));
        assert!(!index.lookup(&a).1, "first lookup of a is not cached");
        assert!(!index.lookup(&b).1, "first lookup of b is not cached");
        assert!(index.lookup(&a).1, "a again: cached");
        assert!(index.lookup(&b).1, "b again: cached");
    }
}
