//! A connection's subscriptions of one kind (channels, patterns or shard
//! channels), by name, remembering the order they were made in: an
//! `UNSUBSCRIBE` or `PUNSUBSCRIBE` without arguments confirms them in that
//! order, as redis-server 7.0 does for patterns (a hash order would differ
//! from run to run).

use std::sync::Arc;

use ahash::AHashMap;
use bytes::Bytes;
use herald_core::Subscriber;

#[derive(Debug, Default)]
pub(super) struct SubscriptionSet {
    /// Name → (when it was made, its broker subscription).
    by_name: AHashMap<Bytes, (u64, Arc<Subscriber>)>,
    made: u64,
}

impl SubscriptionSet {
    pub(super) fn len(&self) -> usize {
        self.by_name.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub(super) fn contains(&self, name: &[u8]) -> bool {
        self.by_name.contains_key(name)
    }

    pub(super) fn insert(&mut self, name: Bytes, sub: Arc<Subscriber>) {
        self.made += 1;
        self.by_name.insert(name, (self.made, sub));
    }

    /// Every subscription, in no particular order.
    pub(super) fn subscribers(&self) -> impl Iterator<Item = &Arc<Subscriber>> {
        self.by_name.values().map(|(_, sub)| sub)
    }

    pub(super) fn remove(&mut self, name: &[u8]) -> Option<Arc<Subscriber>> {
        self.by_name.remove(name).map(|(_, sub)| sub)
    }

    /// Every subscription, oldest first; the set is left empty.
    pub(super) fn drain_in_order(&mut self) -> Vec<(Bytes, Arc<Subscriber>)> {
        let mut all: Vec<(u64, Bytes, Arc<Subscriber>)> = self
            .by_name
            .drain()
            .map(|(name, (made, sub))| (made, name, sub))
            .collect();
        all.sort_unstable_by_key(|(made, ..)| *made);
        all.into_iter().map(|(_, name, sub)| (name, sub)).collect()
    }
}
