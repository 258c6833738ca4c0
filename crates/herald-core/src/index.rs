//! [`SubjectIndex`]: which subscriptions match a subject.
//!
//! A trie of tokens, shaped like nats-server's sublist: each level maps
//! literal tokens to child nodes and has one slot each for `*` and `>`; a node
//! holds the plain subscriptions and the queue subscriptions (grouped by queue
//! name) of the patterns that end there. Matching splits the subject into
//! tokens (on the stack for up to 32 tokens), then walks depth-first with an
//! explicit stack in nats-server's order: at each level the `>` child, then
//! the `*` branch, then the literal child. Nothing recurses, however long the
//! subject or pattern.
//!
//! Results are cached per literal subject as shared, read-only
//! [`MatchResult`]s (at most [`CACHE_LIMIT`] subjects; past it half are
//! dropped). A subject is cached the second time it is looked up, not the
//! first: subjects used once (JetStream ack subjects carry a sequence, reply
//! inboxes a token) would otherwise fill the cache and push out the ones
//! publishers repeat, each costing an insert and an eviction. A small table
//! of hashes of recent misses remembers what was seen once. (Results with
//! queue groups are cached at once: their round-robin cursor lives there.) A subscribe patches the cached results its pattern matches (a
//! copy, since publishers may hold the old one); an unsubscribe evicts them.
//! Either bumps a generation counter, so a publisher's own per-connection
//! cache can tell when it is stale.
//!
//! Locking: publishing takes the cache's read lock, and on a miss the trie's
//! read lock, then the cache's write lock just to store the result. A
//! subscribe or unsubscribe holds the trie's write lock for the change and,
//! nested inside it, the cache's write lock for the patch and the generation
//! bump. Because the bump happens under the cache lock, a result computed
//! from the trie before a change is never stored after that change was
//! applied to the cache: the store checks that the generation is still the
//! one read with the trie.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ahash::AHashMap;
use bytes::Bytes;
use parking_lot::RwLock;
use rand::Rng;

use crate::subject::{Pattern, PatternToken, QueueName, Subject};

/// Subjects whose match result is cached, at most.
pub const CACHE_LIMIT: usize = 4096;

/// Hashes of recent cache misses kept to spot a subject's second lookup.
const SEEN_SLOTS: usize = 1024;

/// Subject tokens split on the stack; longer subjects use a `Vec`.
const STACK_TOKENS: usize = 32;

/// Subscriptions in one list before removal uses a position map instead of
/// a scan (small in tests so the map is exercised).
const LINEAR_LIMIT: usize = if cfg!(test) { 4 } else { 32 };

/// The subscriptions matching one subject: each plain subscriber gets a copy
/// of a message, each queue group one copy for one of its members.
#[derive(Debug)]
pub struct MatchResult<T> {
    /// Plain subscribers.
    pub plain: Vec<T>,
    /// Queue groups, one entry per queue name (members found through
    /// different patterns are merged, as nats-server does).
    pub groups: Vec<QueueGroupMatch<T>>,
}

impl<T> MatchResult<T> {
    /// A result with nothing in it.
    pub fn new() -> Self {
        Self {
            plain: Vec::new(),
            groups: Vec::new(),
        }
    }

    /// True when nothing matched.
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.groups.is_empty()
    }

    /// Plain subscribers plus queue groups: how many copies a message makes.
    pub fn len(&self) -> usize {
        self.plain.len() + self.groups.len()
    }
}

impl<T> Default for MatchResult<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The members of one queue group that match a subject, with a round-robin
/// cursor shared by everyone who holds this result.
#[derive(Debug)]
pub struct QueueGroupMatch<T> {
    /// The group's name.
    pub name: QueueName,
    /// Every matching member.
    pub members: Vec<T>,
    cursor: AtomicUsize,
}

impl<T> QueueGroupMatch<T> {
    /// A group whose round-robin starts at a random member.
    pub fn new(name: QueueName, members: Vec<T>) -> Self {
        let start = match members.len() {
            0 => 0,
            n => rand::rng().random_range(0..n),
        };
        Self::with_cursor(name, members, start)
    }

    fn with_cursor(name: QueueName, members: Vec<T>, cursor: usize) -> Self {
        Self {
            name,
            members,
            cursor: AtomicUsize::new(cursor),
        }
    }

    /// The next member, round-robin: over `n` picks each of `n` members is
    /// picked exactly once. `None` only for a group without members.
    pub fn pick(&self) -> Option<&T> {
        if self.members.is_empty() {
            return None;
        }
        let turn = self.cursor.fetch_add(1, Ordering::Relaxed);
        self.members.get(turn % self.members.len())
    }

    /// The members in this turn's round-robin order: the first is the one
    /// [`pick`](Self::pick) would give, then the rest in turn. Advances the
    /// rotation by one, as a pick does.
    pub fn in_turn(&self) -> impl Iterator<Item = &T> {
        let n = self.members.len();
        let start = if n == 0 {
            0
        } else {
            self.cursor.fetch_add(1, Ordering::Relaxed) % n
        };
        (0..n).filter_map(move |k| self.members.get((start + k) % n))
    }

    /// Every matching member.
    pub fn members(&self) -> &[T] {
        &self.members
    }
}

/// Subscriptions in one list, found by key for removal.
struct Members<T> {
    items: Vec<(u64, T)>,
    /// Key → index in `items`, kept while the list is long.
    positions: Option<AHashMap<u64, usize>>,
}

impl<T> Members<T> {
    fn new() -> Self {
        Self {
            items: Vec::new(),
            positions: None,
        }
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn values(&self) -> impl Iterator<Item = &T> {
        self.items.iter().map(|(_, value)| value)
    }

    fn position(&self, key: u64) -> Option<usize> {
        match &self.positions {
            Some(positions) => positions.get(&key).copied(),
            None => self.items.iter().position(|(k, _)| *k == key),
        }
    }

    /// Adds `value` under `key`, or replaces the value already there; true
    /// when the key is new.
    fn insert(&mut self, key: u64, value: T) -> bool {
        if let Some(slot) = self.position(key).and_then(|at| self.items.get_mut(at)) {
            slot.1 = value;
            return false;
        }
        self.items.push((key, value));
        match &mut self.positions {
            Some(positions) => {
                positions.insert(key, self.items.len() - 1);
            }
            None if self.items.len() > LINEAR_LIMIT => {
                let positions = self.items.iter().enumerate().map(|(at, (k, _))| (*k, at));
                self.positions = Some(positions.collect());
            }
            None => {}
        }
        true
    }

    fn remove(&mut self, key: u64) -> bool {
        let Some(at) = self.position(key) else {
            return false;
        };
        self.items.swap_remove(at);
        if let Some(positions) = &mut self.positions {
            positions.remove(&key);
            if let Some((moved, _)) = self.items.get(at) {
                positions.insert(*moved, at);
            }
            if self.items.len() <= LINEAR_LIMIT / 2 {
                self.positions = None;
            }
        }
        true
    }
}

/// One level of the trie.
struct Node<T> {
    literal: AHashMap<Bytes, Box<Node<T>>>,
    /// The `*` child.
    one: Option<Box<Node<T>>>,
    /// The `>` child (never has children of its own).
    rest: Option<Box<Node<T>>>,
    plain: Members<T>,
    queues: Vec<(QueueName, Members<T>)>,
}

impl<T> Node<T> {
    fn new() -> Self {
        Self {
            literal: AHashMap::new(),
            one: None,
            rest: None,
            plain: Members::new(),
            queues: Vec::new(),
        }
    }

    fn subscriptions(&self) -> usize {
        self.plain.len() + self.queues.iter().map(|(_, m)| m.len()).sum::<usize>()
    }

    fn children(&self) -> usize {
        self.literal.len() + usize::from(self.one.is_some()) + usize::from(self.rest.is_some())
    }

    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queues.is_empty() && self.children() == 0
    }

    fn child(&self, token: PatternToken<'_>) -> Option<&Node<T>> {
        match token {
            PatternToken::Literal(token) => self.literal.get(token).map(|node| &**node),
            PatternToken::One => self.one.as_deref(),
            PatternToken::Rest => self.rest.as_deref(),
        }
    }

    fn child_mut(&mut self, token: PatternToken<'_>) -> Option<&mut Node<T>> {
        match token {
            PatternToken::Literal(token) => self.literal.get_mut(token).map(|node| &mut **node),
            PatternToken::One => self.one.as_deref_mut(),
            PatternToken::Rest => self.rest.as_deref_mut(),
        }
    }

    fn child_or_insert(&mut self, token: PatternToken<'_>) -> &mut Node<T> {
        let slot = match token {
            // Copied, so a pattern sliced from a read buffer does not keep
            // the whole buffer alive.
            PatternToken::Literal(token) => {
                return self
                    .literal
                    .entry(Bytes::copy_from_slice(token))
                    .or_insert_with(|| Box::new(Node::new()));
            }
            PatternToken::One => &mut self.one,
            PatternToken::Rest => &mut self.rest,
        };
        slot.get_or_insert_with(|| Box::new(Node::new()))
    }

    fn remove_child(&mut self, token: PatternToken<'_>) {
        match token {
            PatternToken::Literal(token) => {
                self.literal.remove(token);
            }
            PatternToken::One => self.one = None,
            PatternToken::Rest => self.rest = None,
        }
    }

    fn remove_subscription(&mut self, queue: Option<&QueueName>, key: u64) -> bool {
        let Some(name) = queue else {
            return self.plain.remove(key);
        };
        let Some(at) = self.queues.iter().position(|(n, _)| n == name) else {
            return false;
        };
        let Some((_, members)) = self.queues.get_mut(at) else {
            return false;
        };
        let removed = members.remove(key);
        if members.is_empty() {
            self.queues.swap_remove(at);
        }
        removed
    }

    fn take_children(&mut self, into: &mut Vec<Node<T>>) {
        into.extend(self.literal.drain().map(|(_, node)| *node));
        into.extend(self.one.take().map(|node| *node));
        into.extend(self.rest.take().map(|node| *node));
    }
}

impl<T> Drop for Node<T> {
    /// Drops the subtree without recursing, however deep a pattern made it.
    fn drop(&mut self) {
        let mut pending = Vec::new();
        self.take_children(&mut pending);
        while let Some(mut node) = pending.pop() {
            node.take_children(&mut pending);
        }
    }
}

/// Gathers a match result while walking the trie, merging queue groups of
/// the same name.
struct Collector<'a, T> {
    plain: Vec<T>,
    groups: Vec<(&'a QueueName, Vec<T>)>,
}

impl<'a, T: Clone> Collector<'a, T> {
    fn add(&mut self, node: &'a Node<T>) {
        self.plain.extend(node.plain.values().cloned());
        for (name, members) in &node.queues {
            let values = members.values().cloned();
            match self.groups.iter_mut().find(|(n, _)| *n == name) {
                Some((_, group)) => group.extend(values),
                None => self.groups.push((name, values.collect())),
            }
        }
    }

    fn finish(self) -> MatchResult<T> {
        MatchResult {
            plain: self.plain,
            groups: self
                .groups
                .into_iter()
                .map(|(name, members)| QueueGroupMatch::new(name.clone(), members))
                .collect(),
        }
    }
}

/// Walks the trie for a subject's tokens.
fn collect<T: Clone>(root: &Node<T>, tokens: &[&[u8]]) -> MatchResult<T> {
    let mut out = Collector {
        plain: Vec::new(),
        groups: Vec::new(),
    };
    // Depth-first with an explicit stack, in nats-server's order: at each
    // level the `>` node, then the whole `*` branch, then the literal child.
    // Clients see this order in their MSG stream, so it is kept exactly.
    let mut stack: Vec<(&Node<T>, usize)> = vec![(root, 0)];
    while let Some((node, at)) = stack.pop() {
        let Some(token) = tokens.get(at) else {
            out.add(node);
            continue;
        };
        if let Some(rest) = &node.rest {
            out.add(rest);
        }
        // Pushed first, walked last.
        if let Some(child) = node.literal.get(*token) {
            stack.push((child, at + 1));
        }
        if let Some(one) = &node.one {
            stack.push((one, at + 1));
        }
    }
    out.finish()
}

/// Splits `subject` into tokens, on the stack when there are few, and runs
/// `f` on them.
fn with_tokens<R>(subject: &Subject, f: impl FnOnce(&[&[u8]]) -> R) -> R {
    let mut stack: [&[u8]; STACK_TOKENS] = [&[]; STACK_TOKENS];
    let mut count = 0;
    for token in subject.tokens() {
        match stack.get_mut(count) {
            Some(slot) => *slot = token,
            None => return f(&subject.tokens().collect::<Vec<_>>()),
        }
        count += 1;
    }
    f(&stack[..count])
}

/// A cached result that also includes `value`, subscribed on a pattern the
/// cached subject matches.
fn with_added<T: Clone>(
    old: &MatchResult<T>,
    queue: Option<&QueueName>,
    value: &T,
) -> MatchResult<T> {
    let mut plain = old.plain.clone();
    // Groups are rebuilt (the cursor is not `Clone`); each keeps its turn.
    let mut groups: Vec<QueueGroupMatch<T>> = old
        .groups
        .iter()
        .map(|g| {
            let cursor = g.cursor.load(Ordering::Relaxed);
            QueueGroupMatch::with_cursor(g.name.clone(), g.members.clone(), cursor)
        })
        .collect();
    match queue {
        None => plain.push(value.clone()),
        Some(name) => match groups.iter_mut().find(|g| &g.name == name) {
            Some(group) => group.members.push(value.clone()),
            None => groups.push(QueueGroupMatch::new(name.clone(), vec![value.clone()])),
        },
    }
    MatchResult { plain, groups }
}

type Cache<T> = AHashMap<Subject, Arc<MatchResult<T>>>;

/// The routing table: subscriptions by pattern, and which of them match a
/// subject. `T` is the subscriber handle (in the broker an
/// `Arc<Subscriber>`); each subscription is identified by a caller-chosen
/// `u64` key, unique per subscription. See the module docs for the design.
pub struct SubjectIndex<T> {
    trie: RwLock<Node<T>>,
    cache: RwLock<Cache<T>>,
    generation: AtomicU64,
    len: AtomicUsize,
    /// Shared by every subject that matches nothing.
    empty: Arc<MatchResult<T>>,
    /// Hashes of subjects that missed the cache once, in sets of two (see
    /// `seen_before`).
    seen: Box<[AtomicU64]>,
    hasher: ahash::RandomState,
    /// Inserts, removals, lookups and cache hits since creation (`/subsz`).
    counters: Counters,
}

/// [`SubjectIndex`]'s counters, on cache lines of their own: lookups count
/// from every publisher's thread, and must not make the generation every
/// publish reads bounce between cores.
#[derive(Default)]
#[repr(align(128))]
struct Counters {
    inserts: AtomicU64,
    removes: AtomicU64,
    lookups: AtomicU64,
    hits: AtomicU64,
}

/// What the index has done, as nats-server's `/subsz` reports its sublist.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RoutingStats {
    /// Subscriptions in the index.
    pub subscriptions: usize,
    /// Subjects with a cached result.
    pub cached: usize,
    /// Subscriptions inserted since start.
    pub inserts: u64,
    /// Subscriptions removed since start.
    pub removes: u64,
    /// Subject lookups (publishers' own route caches answer most publishes
    /// before they get here).
    pub lookups: u64,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// The most receivers (plain subscriptions and queue groups) of a cached subject.
    pub max_fanout: usize,
    /// Their average over the cached subjects.
    pub avg_fanout: f64,
}

impl<T: Clone + Send + Sync + 'static> Default for SubjectIndex<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Send + Sync + 'static> SubjectIndex<T> {
    /// An empty index.
    pub fn new() -> Self {
        Self {
            trie: RwLock::new(Node::new()),
            cache: RwLock::new(AHashMap::new()),
            generation: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            empty: Arc::new(MatchResult::new()),
            seen: (0..SEEN_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hasher: ahash::RandomState::new(),
            counters: Counters::default(),
        }
    }

    /// Adds subscription `key` on `pattern`, in queue group `queue` if one
    /// is given. Inserting a key already present on the same pattern and
    /// queue replaces its value.
    pub fn insert(&self, pattern: &Pattern, queue: Option<&QueueName>, key: u64, value: T) {
        self.counters.inserts.fetch_add(1, Ordering::Relaxed);
        let mut trie = self.trie.write();
        let mut node = &mut *trie;
        for token in pattern.classified() {
            node = node.child_or_insert(token);
        }
        let added = match queue {
            None => node.plain.insert(key, value.clone()),
            Some(name) => match node.queues.iter_mut().find(|(n, _)| n == name) {
                Some((_, members)) => members.insert(key, value.clone()),
                None => {
                    let mut members = Members::new();
                    members.insert(key, value.clone());
                    node.queues.push((name.clone(), members));
                    true
                }
            },
        };
        if added {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        let mut cache = self.cache.write();
        if added {
            patch(&mut cache, pattern, |old| {
                Arc::new(with_added(old, queue, &value))
            });
        } else {
            // A replaced value: the cached copies hold the old one.
            evict(&mut cache, pattern);
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Removes subscription `key` from `pattern` (and `queue`); false if it
    /// was not there. Nodes left empty are pruned.
    pub fn remove(&self, pattern: &Pattern, queue: Option<&QueueName>, key: u64) -> bool {
        let tokens: Vec<PatternToken<'_>> = pattern.classified().collect();
        let mut trie = self.trie.write();
        let mut node = &mut *trie;
        for token in &tokens {
            node = match node.child_mut(*token) {
                Some(child) => child,
                None => return false,
            };
        }
        if !node.remove_subscription(queue, key) {
            return false;
        }
        prune(&mut trie, &tokens);
        self.len.fetch_sub(1, Ordering::Relaxed);
        self.counters.removes.fetch_add(1, Ordering::Relaxed);
        let mut cache = self.cache.write();
        evict(&mut cache, pattern);
        self.generation.fetch_add(1, Ordering::Release);
        true
    }

    /// The subscriptions matching `subject`, from the cache when it can. A
    /// subject that does not obey the token rules
    /// ([`Subject::is_token_subject`]) matches nothing here.
    pub fn matches(&self, subject: &Subject) -> Arc<MatchResult<T>> {
        self.lookup(subject).0
    }

    /// [`matches`](Self::matches), and whether the subject is worth caching
    /// by the caller too: it is in this cache, or has just been looked up a
    /// second time (a subject seen once is likely never seen again).
    pub fn lookup(&self, subject: &Subject) -> (Arc<MatchResult<T>>, bool) {
        self.counters.lookups.fetch_add(1, Ordering::Relaxed);
        if let Some(hit) = self.cache.read().get(subject) {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            return (Arc::clone(hit), true);
        }
        if !subject.is_token_subject() {
            return (Arc::clone(&self.empty), false);
        }
        let (generation, result) = self.compute(subject);
        // Queue groups take turns through the cached result's cursor, so a
        // result with groups is cached at once: every lookup shares it.
        let again = self.seen_before(subject) || !result.groups.is_empty();
        if again {
            self.store(subject, generation, &result);
        }
        (result, again)
    }

    /// Whether `subject` missed the cache recently already; remembers it.
    /// The table is two-way set-associative: a set holds the last two
    /// subjects that missed in it, so two subjects published in turn that
    /// land in one set are still each seen again.
    fn seen_before(&self, subject: &Subject) -> bool {
        let hash = self.hasher.hash_one(subject.as_bytes());
        let set = usize::try_from((hash >> 32) % (SEEN_SLOTS as u64 / 2)).unwrap_or(0) * 2;
        // Never 0, the empty entry.
        let tag = hash | 1;
        let (newest, older) = (&self.seen[set], &self.seen[set + 1]);
        if newest.load(Ordering::Relaxed) == tag || older.load(Ordering::Relaxed) == tag {
            return true;
        }
        older.store(newest.swap(tag, Ordering::Relaxed), Ordering::Relaxed);
        false
    }

    /// Walks the trie for `subject`; returns the result with the generation
    /// it belongs to.
    fn compute(&self, subject: &Subject) -> (u64, Arc<MatchResult<T>>) {
        let trie = self.trie.read();
        let generation = self.generation.load(Ordering::Acquire);
        let result = with_tokens(subject, |tokens| collect(&trie, tokens));
        drop(trie);
        if result.is_empty() {
            (generation, Arc::clone(&self.empty))
        } else {
            (generation, Arc::new(result))
        }
    }

    /// Caches `result`, unless the index changed since `generation`: the
    /// change may have patched the cache already, so a result computed
    /// before it must not go in after it.
    fn store(&self, subject: &Subject, generation: u64, result: &Arc<MatchResult<T>>) {
        let mut cache = self.cache.write();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if cache.len() >= CACHE_LIMIT {
            trim(&mut cache);
        }
        // A copy of the name: the subject may be a slice of a large read
        // buffer that the cache should not keep alive.
        let key = subject.detached();
        cache.insert(key, Arc::clone(result));
    }

    /// A counter that changes on every insert and removal: a result obtained
    /// from [`SubjectIndex::matches`] after reading generation `g` is current
    /// for as long as the generation is still `g`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Number of subscriptions.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// True when there is no subscription.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every distinct pattern with its number of subscriptions (plain and
    /// queue), in no particular order.
    pub fn patterns(&self) -> Vec<(Pattern, usize)> {
        let trie = self.trie.read();
        let mut out = Vec::new();
        let mut pending: Vec<(&Node<T>, Vec<u8>)> = Vec::new();
        push_children(&trie, &[], &mut pending);
        while let Some((node, path)) = pending.pop() {
            let count = node.subscriptions();
            if count > 0 {
                out.push((Pattern::from_trusted(Bytes::copy_from_slice(&path)), count));
            }
            push_children(node, &path, &mut pending);
        }
        out
    }

    /// Subscriptions (plain and queue) on exactly `pattern`.
    pub fn count_for(&self, pattern: &Pattern) -> usize {
        let trie = self.trie.read();
        let mut node = &*trie;
        for token in pattern.classified() {
            node = match node.child(token) {
                Some(child) => child,
                None => return 0,
            };
        }
        node.subscriptions()
    }

    /// Subjects with a cached result now (for tests and metrics).
    pub fn cache_len(&self) -> usize {
        self.cache.read().len()
    }

    /// Counts and fan-out, for monitoring.
    pub fn routing_stats(&self) -> RoutingStats {
        let cache = self.cache.read();
        let fanouts = cache.values().map(|r| r.plain.len() + r.groups.len());
        let (max_fanout, sum) = fanouts.fold((0, 0), |(max, sum), n| (max.max(n), sum + n));
        RoutingStats {
            subscriptions: self.len(),
            cached: cache.len(),
            inserts: self.counters.inserts.load(Ordering::Relaxed),
            removes: self.counters.removes.load(Ordering::Relaxed),
            lookups: self.counters.lookups.load(Ordering::Relaxed),
            hits: self.counters.hits.load(Ordering::Relaxed),
            max_fanout,
            avg_fanout: if cache.is_empty() {
                0.0
            } else {
                sum as f64 / cache.len() as f64
            },
        }
    }
}

impl<T> std::fmt::Debug for SubjectIndex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectIndex")
            .field("len", &self.len.load(Ordering::Relaxed))
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .field("cached", &self.cache.read().len())
            .finish_non_exhaustive()
    }
}

/// Queues `node`'s children for a walk, each with its pattern text.
fn push_children<'a, T>(node: &'a Node<T>, path: &[u8], into: &mut Vec<(&'a Node<T>, Vec<u8>)>) {
    let join = |token: &[u8]| {
        let mut joined = Vec::with_capacity(path.len() + 1 + token.len());
        joined.extend_from_slice(path);
        if !path.is_empty() {
            joined.push(b'.');
        }
        joined.extend_from_slice(token);
        joined
    };
    for (token, child) in &node.literal {
        into.push((child, join(token)));
    }
    if let Some(one) = &node.one {
        into.push((one, join(b"*")));
    }
    if let Some(rest) = &node.rest {
        into.push((rest, join(b">")));
    }
}

/// After a removal from the node at the end of `tokens`: cuts off the chain
/// of nodes that hold nothing but the path to it, if it is now empty.
fn prune<T>(root: &mut Node<T>, tokens: &[PatternToken<'_>]) {
    // The deepest node on the path that must stay (the root, or one with
    // subscriptions or another child); the cut is just below it.
    let mut keep = 0;
    let mut node = &*root;
    for (depth, token) in tokens.iter().enumerate() {
        if depth > 0 && (node.subscriptions() > 0 || node.children() > 1) {
            keep = depth;
        }
        node = match node.child(*token) {
            Some(child) => child,
            None => return,
        };
    }
    if !node.is_empty() {
        return;
    }
    let Some(cut) = tokens.get(keep) else {
        return;
    };
    let mut node = root;
    for token in &tokens[..keep] {
        node = match node.child_mut(*token) {
            Some(child) => child,
            None => return,
        };
    }
    node.remove_child(*cut);
}

/// Replaces each cached result for a subject `pattern` matches with `update`
/// of it.
fn patch<T>(
    cache: &mut Cache<T>,
    pattern: &Pattern,
    update: impl Fn(&MatchResult<T>) -> Arc<MatchResult<T>>,
) {
    if pattern.is_literal() {
        // Only the subject with the pattern's own bytes can match.
        if let Some(result) = cache.get_mut(pattern.as_bytes()) {
            *result = update(result);
        }
        return;
    }
    let prefix = literal_prefix(pattern);
    for (subject, result) in cache.iter_mut() {
        if subject.as_bytes().starts_with(prefix) && pattern.matches(subject) {
            *result = update(result);
        }
    }
}

/// Drops the cached results of every subject `pattern` matches.
fn evict<T>(cache: &mut Cache<T>, pattern: &Pattern) {
    if pattern.is_literal() {
        cache.remove(pattern.as_bytes());
    } else {
        let prefix = literal_prefix(pattern);
        cache.retain(|subject, _| {
            !(subject.as_bytes().starts_with(prefix) && pattern.matches(subject))
        });
    }
}

/// What every subject `pattern` matches starts with: its leading literal
/// tokens, each with the dot after it. A quick filter before the full match
/// when a change walks the whole cache.
fn literal_prefix(pattern: &Pattern) -> &[u8] {
    let mut len = 0;
    for token in pattern.classified() {
        match token {
            PatternToken::Literal(literal) => len += literal.len() + 1,
            PatternToken::One | PatternToken::Rest => break,
        }
    }
    // All literal: the count ran one dot past the end; the whole pattern.
    pattern.as_bytes().get(..len).unwrap_or(pattern.as_bytes())
}

/// Drops every other cached result: one pass per [`CACHE_LIMIT`] / 2 new
/// entries, so the cost per miss stays constant.
fn trim<T>(cache: &mut Cache<T>) {
    let mut keep = false;
    cache.retain(|_, _| {
        keep = !keep;
        keep
    });
}

#[cfg(test)]
#[path = "index/tests.rs"]
mod tests;
