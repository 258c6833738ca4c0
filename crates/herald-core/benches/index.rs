//! Subject index lookups: a warm cache, cache misses among 10,000 patterns,
//! a wide wildcard fan-in, and subscribe/unsubscribe churn with a warm cache.
//!
//! Run with `cargo bench -p herald-core --bench index`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use herald_core::{Pattern, QueueName, Subject, SubjectIndex};

fn pattern(s: &str) -> Pattern {
    Pattern::new(s).expect("valid pattern")
}

fn subject(s: &str) -> Subject {
    Subject::new(s).expect("valid subject")
}

/// `n` subscriptions spread over literal, `*` and `>` patterns in the
/// `orders.<region>.<event>` space, a few of them in a queue group.
fn populated(n: u64) -> SubjectIndex<u64> {
    let index = SubjectIndex::new();
    let workers = QueueName::new("workers").expect("valid queue name");
    for key in 0..n {
        let region = key % 50;
        let p = match key % 10 {
            0 => format!("orders.r{region}.*"),
            1 => format!("orders.*.e{key}"),
            2 => format!("orders.r{region}.>"),
            _ => format!("orders.r{region}.e{key}"),
        };
        let queue = (key % 7 == 0).then_some(&workers);
        index.insert(&pattern(&p), queue, key, key);
    }
    index
}

fn warm_cache(c: &mut Criterion) {
    let index = populated(100);
    let hot = subject("orders.r3.e3");
    assert!(!index.matches(&hot).is_empty());
    c.bench_function("index/match/warm_100_patterns", |b| {
        b.iter(|| black_box(index.matches(black_box(&hot))));
    });
}

fn ten_thousand(c: &mut Criterion) {
    let index = populated(10_000);
    let hot = subject("orders.r7.e1007");
    let _ = index.matches(&hot);
    c.bench_function("index/match/warm_10k_patterns", |b| {
        b.iter(|| black_box(index.matches(black_box(&hot))));
    });
    // Far more distinct subjects than the cache holds, so nearly every
    // lookup walks the trie and stores its result.
    let subjects: Vec<Subject> = (0..100_000u64)
        .map(|i| subject(&format!("orders.r{}.e{}", i % 50, i)))
        .collect();
    let mut next = 0;
    c.bench_function("index/match/miss_10k_patterns", |b| {
        b.iter(|| {
            next = (next + 1) % subjects.len();
            black_box(index.matches(&subjects[next]))
        });
    });
}

fn wide_wildcard(c: &mut Criterion) {
    let index = SubjectIndex::new();
    for key in 0..1000 {
        index.insert(&pattern("metrics.*.cpu"), None, key, key);
    }
    let hot = subject("metrics.host1.cpu");
    assert_eq!(index.matches(&hot).plain.len(), 1000);
    c.bench_function("index/match/wide_1000_star_warm", |b| {
        b.iter(|| black_box(index.matches(black_box(&hot))));
    });
    let subjects: Vec<Subject> = (0..100_000u64)
        .map(|i| subject(&format!("metrics.host{i}.cpu")))
        .collect();
    let mut next = 0;
    c.bench_function("index/match/wide_1000_star_miss", |b| {
        b.iter(|| {
            next = (next + 1) % subjects.len();
            black_box(index.matches(&subjects[next]))
        });
    });
}

fn churn(c: &mut Criterion) {
    // A request/reply pattern: subscribe a fresh inbox, unsubscribe it, with
    // 10,000 patterns installed and a full cache to keep up to date.
    let index = populated(10_000);
    for i in 0..4000u64 {
        let _ = index.matches(&subject(&format!("orders.r{}.e{}", i % 50, i)));
    }
    let mut key = 1_000_000u64;
    c.bench_function("index/churn/literal_inbox", |b| {
        b.iter_batched(
            || {
                key += 1;
                (pattern(&format!("_INBOX.{key}")), key)
            },
            |(inbox, key)| {
                index.insert(&inbox, None, key, key);
                index.remove(&inbox, None, key)
            },
            BatchSize::SmallInput,
        );
    });
    c.bench_function("index/churn/wildcard", |b| {
        b.iter_batched(
            || {
                key += 1;
                (pattern("orders.r3.*"), key)
            },
            |(p, key)| {
                index.insert(&p, None, key, key);
                index.remove(&p, None, key)
            },
            BatchSize::SmallInput,
        );
    });
}

criterion_group!(benches, warm_cache, ten_thousand, wide_wildcard, churn);
criterion_main!(benches);
