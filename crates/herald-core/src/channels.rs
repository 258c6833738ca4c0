//! Redis's namespaces beside the subject trie: exact channels, shard
//! channels, and glob patterns.
//!
//! Each table is a copy-on-write snapshot behind a lock: publishing takes the
//! read lock only to clone an `Arc`, then delivers without holding it (a
//! delivery may remove a subscription, which takes the write lock). An empty
//! table costs a publish one atomic load. Globs are matched one by one
//! against each published subject, as Redis itself does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ahash::AHashMap;
use bytes::Bytes;
use parking_lot::RwLock;

use crate::sink::Subscriber;

/// One name's subscribers, shared with publishers that looked them up.
pub(crate) type Subs = Arc<[Arc<Subscriber>]>;

/// Subscriptions keyed by an exact name.
#[derive(Debug, Default)]
pub struct ExactTable {
    map: RwLock<AHashMap<Bytes, Subs>>,
    len: AtomicUsize,
    /// Changes on every insert and removal, so publishers can cache lookups.
    generation: AtomicU64,
}

impl ExactTable {
    /// Adds `sub` under `name`.
    pub(crate) fn insert(&self, name: &Bytes, sub: Arc<Subscriber>) {
        let mut map = self.map.write();
        let entry = map
            .entry(name.clone())
            .or_insert_with(|| Arc::from(Vec::new()));
        let mut list = entry.to_vec();
        list.push(sub);
        *entry = Arc::from(list);
        self.len.fetch_add(1, Ordering::Release);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Removes `sub` from under `name`.
    pub(crate) fn remove(&self, name: &[u8], sub: &Subscriber) -> bool {
        let mut map = self.map.write();
        let Some(entry) = map.get_mut(name) else {
            return false;
        };
        let before = entry.len();
        let list: Vec<_> = entry
            .iter()
            .filter(|s| s.id() != sub.id())
            .cloned()
            .collect();
        let removed = list.len() != before;
        if list.is_empty() {
            map.remove(name);
        } else {
            *entry = Arc::from(list);
        }
        if removed {
            self.len.fetch_sub(1, Ordering::Release);
            self.generation.fetch_add(1, Ordering::Release);
        }
        removed
    }

    /// A counter that changes with every insert and removal: a lookup made
    /// after reading generation `g` stays current while it is still `g`.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The subscribers of `name` (a snapshot).
    pub(crate) fn get(&self, name: &[u8]) -> Option<Subs> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.map.read().get(name).cloned()
    }

    /// Subscriptions in the table.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// True when the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Subscriptions under exactly `name`.
    pub fn count(&self, name: &[u8]) -> usize {
        self.map.read().get(name).map_or(0, |l| l.len())
    }

    /// Every name with at least one subscription.
    pub fn names(&self) -> Vec<Bytes> {
        self.map.read().keys().cloned().collect()
    }
}

/// Subscriptions by Redis glob pattern.
#[derive(Debug, Default)]
pub struct GlobTable {
    list: RwLock<Subs>,
    len: AtomicUsize,
}

impl GlobTable {
    /// Adds `sub` (its interest is the glob).
    pub(crate) fn insert(&self, sub: Arc<Subscriber>) {
        let mut list = self.list.write();
        let mut next = list.to_vec();
        next.push(sub);
        *list = Arc::from(next);
        self.len.fetch_add(1, Ordering::Release);
    }

    /// Removes `sub`.
    pub(crate) fn remove(&self, sub: &Subscriber) -> bool {
        let mut list = self.list.write();
        let next: Vec<_> = list
            .iter()
            .filter(|s| s.id() != sub.id())
            .cloned()
            .collect();
        let removed = next.len() != list.len();
        *list = Arc::from(next);
        if removed {
            self.len.fetch_sub(1, Ordering::Release);
        }
        removed
    }

    /// Every glob subscription (a snapshot), or `None` when there are none.
    pub(crate) fn snapshot(&self) -> Option<Subs> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        Some(self.list.read().clone())
    }

    /// Distinct glob patterns with at least one subscription (`PUBSUB NUMPAT`).
    pub fn distinct(&self) -> usize {
        let list = self.list.read();
        let mut names: Vec<&[u8]> = list.iter().map(|s| s.interest().as_bytes()).collect();
        names.sort_unstable();
        names.dedup();
        names.len()
    }
}
