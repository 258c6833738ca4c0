//! The store: every stream under the data directory, their consumers, and
//! the broker subscriptions that route acks and flow-control replies to them.
//!
//! Layout: `<dir>/streams/<stream>/stream.json` (config, creation time),
//! `<dir>/streams/<stream>/log/` (segments), and for durable consumers
//! `<dir>/streams/<stream>/consumers/<consumer>/{consumer.json,state.json}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use herald_core::{
    Broker, DeliveryCtx, Message, Pattern, Sink, Subject, SubscribeSpec, Subscriber,
};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::api_error::ApiError;
use crate::config::{NameKind, Retention, StorageType, StreamConfig, validate_name};
use crate::consumer::ack::{parse_ack, parse_ack_subject};
use crate::consumer::{self, Consumer, Event, Stop};
use crate::consumer_config::ConsumerConfig;
use crate::info::{ConsumerInfo, StreamInfo};
use crate::stream::Stream;
use crate::time::{now_nanos, rfc3339};

mod replicated;

/// When stored messages are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// fsync before every publish ack (publishes stored together share one
    /// fsync). Survives power loss.
    #[default]
    Always,
    /// fsync at most this often. Survives a process crash (the data is in
    /// the kernel before the ack); power loss may take the last interval.
    Interval(#[serde(with = "humantime_serde")] Duration),
}

/// How a consumer create request treats an existing consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CreateAction {
    /// Create, or update if it exists.
    #[default]
    CreateOrUpdate,
    /// Create; fail if it exists with a different config.
    Create,
    /// Update; fail if it does not exist.
    Update,
}

/// Numbers for account info.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes in memory streams.
    pub memory: u64,
    /// Bytes in file streams.
    pub storage: u64,
    /// Streams.
    pub streams: u64,
    /// Consumers.
    pub consumers: u64,
}

/// Every stream and consumer; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<StoreInner>,
}

#[derive(Debug)]
struct StoreInner {
    dir: PathBuf,
    broker: Broker,
    sync: SyncPolicy,
    streams: RwLock<BTreeMap<String, StreamEntry>>,
    subs: parking_lot::Mutex<Vec<Arc<Subscriber>>>,
}

#[derive(Debug)]
struct StreamEntry {
    stream: Stream,
    consumers: BTreeMap<String, Consumer>,
}

impl Store {
    /// Opens the store in `dir` (created if missing), recovering every
    /// stream and durable consumer. Must be called inside a Tokio runtime:
    /// consumers run as tasks.
    pub fn open(
        dir: impl Into<PathBuf>,
        broker: Broker,
        sync: SyncPolicy,
    ) -> Result<Store, StoreError> {
        let dir = dir.into();
        let streams_dir = dir.join("streams");
        std::fs::create_dir_all(&streams_dir)
            .map_err(|e| StoreError::io("create", &streams_dir, e))?;
        let store = Store {
            inner: Arc::new(StoreInner {
                dir,
                broker: broker.clone(),
                sync,
                streams: RwLock::new(BTreeMap::new()),
                subs: parking_lot::Mutex::new(Vec::new()),
            }),
        };
        replicated::finish_installs(&streams_dir)?;
        let mut names: Vec<PathBuf> = std::fs::read_dir(&streams_dir)
            .map_err(|e| StoreError::io("read", &streams_dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            // (Names starting with a dot are an install's, never a stream's.)
            .filter(|p| p.join("stream.json").exists() && !replicated::is_staging(p))
            .collect();
        names.sort();
        for path in names {
            let stream = Stream::open(path.clone(), broker.clone(), sync)?;
            let name = stream.name().to_owned();
            store.inner.streams.write().insert(
                name.clone(),
                StreamEntry {
                    stream: stream.clone(),
                    consumers: BTreeMap::new(),
                },
            );
            store.load_consumers(&stream, &path.join("consumers"))?;
        }
        for pattern in ["$JS.ACK.>", "$JS.FC.>"] {
            let Ok(pattern) = Pattern::new(pattern) else {
                continue;
            };
            let spec = SubscribeSpec::internal(pattern, broker.new_conn_id());
            let sink = Arc::new(RoutingSink {
                store: Arc::downgrade(&store.inner),
            });
            store
                .inner
                .subs
                .lock()
                .push(broker.subscribe_sink(spec, sink));
        }
        Ok(store)
    }

    fn load_consumers(&self, stream: &Stream, dir: &Path) -> Result<(), StoreError> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(());
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if !path.join("consumer.json").exists() {
                continue;
            }
            match consumer::load(&path) {
                Ok((meta, saved)) => {
                    let name = meta
                        .config
                        .name
                        .clone()
                        .or(meta.config.durable_name.clone())
                        .unwrap_or_default();
                    let c = Consumer::start(
                        stream.clone(),
                        name.clone(),
                        meta.config,
                        meta.created,
                        saved,
                        self.on_gone(),
                    )?;
                    self.add_consumer(stream.name(), name, c);
                }
                Err(e) => tracing::error!(
                    stream = stream.name(),
                    "skipping consumer {}: {e}",
                    path.display()
                ),
            }
        }
        Ok(())
    }

    fn on_gone(&self) -> consumer::OnGone {
        let store = Arc::downgrade(&self.inner);
        Arc::new(move |stream: &str, consumer: &str| {
            if let Some(inner) = store.upgrade() {
                let _ = Store { inner }.delete_consumer(stream, consumer);
            }
        })
    }

    /// The broker the store captures from and delivers to.
    pub fn broker(&self) -> &Broker {
        &self.inner.broker
    }

    /// Creates a stream; an existing one with the same config is success.
    /// Returns its info and whether it was created now.
    pub fn create_stream(&self, config: StreamConfig) -> Result<(StreamInfo, bool), ApiError> {
        if config.num_replicas > 1 {
            return Err(ApiError::not_clustered());
        }
        self.create_replica(config)
    }

    /// Creates a stream whose config may ask for several replicas: this
    /// node's replica of it, which follows until its consensus group makes
    /// it the leader. The cluster calls this once placement is agreed.
    pub fn create_replica(&self, mut config: StreamConfig) -> Result<(StreamInfo, bool), ApiError> {
        config.normalize()?;
        let mut streams = self.inner.streams.write();
        if let Some(entry) = streams.get(&config.name) {
            if entry.stream.config() == config {
                drop(streams);
                return Ok((self.stream_info(&config.name)?, false));
            }
            return Err(ApiError::new(
                400,
                10058,
                "stream name already in use with a different configuration",
            ));
        }
        check_overlap(&streams, &config)?;
        let dir = self.inner.dir.join("streams").join(&config.name);
        let name = config.name.clone();
        let stream = Stream::create(dir, config, self.inner.broker.clone(), self.inner.sync)?;
        streams.insert(
            name.clone(),
            StreamEntry {
                stream,
                consumers: BTreeMap::new(),
            },
        );
        drop(streams);
        Ok((self.stream_info(&name)?, true))
    }

    /// Updates a stream's configuration (a replicated stream's through its group).
    pub fn update_stream(&self, mut config: StreamConfig) -> Result<StreamInfo, ApiError> {
        config.normalize()?;
        let replicas = self
            .stream(&config.name)
            .map(|s| s.config().num_replicas)
            .ok();
        if config.num_replicas > 1 && replicas.is_some_and(|r| r != config.num_replicas) {
            return Err(ApiError::not_clustered());
        }
        if replicas.is_some_and(|r| r > 1) {
            return Err(ApiError::new(
                500,
                10011,
                "a replicated stream's configuration changes through its cluster group",
            ));
        }
        let entry = self.check_update(&config)?;
        entry.update(config)?;
        let name = entry.name().to_owned();
        self.stream_info(&name)
    }

    /// Checks an update of a replicated stream's configuration as this node
    /// sees it (the change, the other streams' subjects) before its group
    /// decides it; the normalised config.
    ///
    /// # Errors
    /// What [`update_stream`](Self::update_stream) would refuse, and a
    /// change of `num_replicas`.
    pub fn check_replicated_update(
        &self,
        mut config: StreamConfig,
    ) -> Result<StreamConfig, ApiError> {
        config.normalize()?;
        let stream = self.check_update(&config)?;
        if stream.config().num_replicas != config.num_replicas {
            return Err(ApiError::new(
                500,
                10011,
                "herald does not change a stream's num_replicas",
            ));
        }
        Ok(config)
    }

    /// The stream `config` updates, if the update is allowed.
    fn check_update(&self, config: &StreamConfig) -> Result<Stream, ApiError> {
        let streams = self.inner.streams.read();
        let entry = streams
            .get(&config.name)
            .ok_or_else(ApiError::stream_not_found)?;
        let old = entry.stream.config();
        config
            .check_update(&old)
            .map_err(|e| ApiError::new(500, 10069, e.description))?;
        let others: BTreeMap<&String, &StreamEntry> =
            streams.iter().filter(|(n, _)| **n != config.name).collect();
        for (_, other) in others {
            let theirs = other.stream.config().patterns();
            if config
                .patterns()
                .iter()
                .any(|p| theirs.iter().any(|q| p.overlaps(q)))
            {
                return Err(ApiError::new(
                    400,
                    10065,
                    "subjects overlap with an existing stream",
                ));
            }
        }
        Ok(entry.stream.clone())
    }

    /// Deletes a stream, its consumers and its files.
    pub fn delete_stream(&self, name: &str) -> Result<(), ApiError> {
        let entry = self
            .inner
            .streams
            .write()
            .remove(name)
            .ok_or_else(ApiError::stream_not_found)?;
        for consumer in entry.consumers.values() {
            consumer.stop(Stop::Delete);
        }
        entry.stream.destroy()?;
        Ok(())
    }

    /// The stream named `name`.
    pub fn stream(&self, name: &str) -> Result<Stream, ApiError> {
        self.inner
            .streams
            .read()
            .get(name)
            .map(|e| e.stream.clone())
            .ok_or_else(ApiError::stream_not_found)
    }

    /// A stream's info.
    pub fn stream_info(&self, name: &str) -> Result<StreamInfo, ApiError> {
        let streams = self.inner.streams.read();
        let entry = streams.get(name).ok_or_else(ApiError::stream_not_found)?;
        let mut state = entry.stream.state();
        state.consumer_count = entry.consumers.len() as u64;
        Ok(StreamInfo {
            config: entry.stream.config(),
            created: rfc3339(entry.stream.created()),
            state,
            ts: rfc3339(now_nanos()),
        })
    }

    /// Names of the streams, those capturing `subject` only if given.
    pub fn stream_names(&self, subject: Option<&str>) -> Vec<String> {
        let filter = subject
            .filter(|s| !s.is_empty())
            .and_then(|s| Pattern::new(s).ok());
        self.inner
            .streams
            .read()
            .values()
            .filter(|e| {
                filter
                    .as_ref()
                    .is_none_or(|f| e.stream.config().patterns().iter().any(|p| p.overlaps(f)))
            })
            .map(|e| e.stream.name().to_owned())
            .collect()
    }

    /// The stream that captures `subject`, if any.
    pub fn stream_for_subject(&self, subject: &Subject) -> Option<Stream> {
        self.inner
            .streams
            .read()
            .values()
            .find(|e| {
                e.stream
                    .config()
                    .patterns()
                    .iter()
                    .any(|p| p.matches(subject))
            })
            .map(|e| e.stream.clone())
    }

    /// Creates or updates a consumer. `name` comes from the API subject, if it named one.
    /// A replicated stream's consumers are created through its group
    /// ([`create_replicated_consumer`](Self::create_replicated_consumer)).
    pub fn create_consumer(
        &self,
        stream_name: &str,
        name: Option<&str>,
        config: ConsumerConfig,
        action: CreateAction,
    ) -> Result<ConsumerInfo, ApiError> {
        if self.stream(stream_name)?.is_replicated() {
            return Err(through_group());
        }
        self.create_consumer_at(stream_name, name, config, action, now_nanos())
    }

    /// Creates or updates a consumer of a replicated stream, as its group
    /// applies the request: on every replica at the same point of the
    /// stream, with the same name and creation time, so every replica
    /// decides alike.
    pub fn create_replicated_consumer(
        &self,
        stream_name: &str,
        name: &str,
        config: ConsumerConfig,
        action: CreateAction,
        created: i64,
    ) -> Result<ConsumerInfo, ApiError> {
        self.create_consumer_at(stream_name, Some(name), config, action, created)
    }

    fn create_consumer_at(
        &self,
        stream_name: &str,
        name: Option<&str>,
        mut config: ConsumerConfig,
        action: CreateAction,
        created: i64,
    ) -> Result<ConsumerInfo, ApiError> {
        let stream = self.stream(stream_name)?;
        let stream_config = stream.config();
        if let Some(name) = name {
            validate_name(name, NameKind::Consumer)?;
            config.name = Some(name.to_owned());
        }
        if let (Some(n), Some(d)) = (&config.name, &config.durable_name)
            && n != d
        {
            return Err(ApiError::new(
                400,
                10132,
                "Consumer Durable and Name have to be equal if both are provided",
            ));
        }
        let name = match config.name.clone().or(config.durable_name.clone()) {
            Some(n) => n,
            None => generate_name(),
        };
        config.name = Some(name.clone());
        config.normalize(&stream_config)?;
        let existing = {
            let streams = self.inner.streams.read();
            let entry = streams
                .get(stream_name)
                .ok_or_else(ApiError::stream_not_found)?;
            if stream_config.retention == Retention::WorkQueue {
                let mine = config.filters();
                for (other_name, other) in &entry.consumers {
                    if *other_name == name {
                        continue;
                    }
                    let theirs = other.config().filters();
                    if mine.is_empty() || theirs.is_empty() {
                        return Err(ApiError::new(
                            400,
                            10099,
                            "multiple non-filtered consumers not allowed on workqueue stream",
                        ));
                    }
                    let overlap = mine.iter().any(|m| theirs.iter().any(|t| m.overlaps(t)));
                    if overlap {
                        return Err(ApiError::new(
                            400,
                            10100,
                            "filtered consumer not unique on workqueue stream",
                        ));
                    }
                }
            }
            if stream_config.max_consumers > 0
                && entry.consumers.len() as i64 >= stream_config.max_consumers
                && !entry.consumers.contains_key(&name)
            {
                return Err(ApiError::new(400, 10026, "maximum consumers limit reached"));
            }
            entry.consumers.get(&name).cloned()
        };
        match (existing, action) {
            (Some(c), CreateAction::Create) if c.config() != config => {
                Err(ApiError::new(400, 10148, "consumer already exists"))
            }
            (Some(c), _) => {
                let old = c.config();
                if old != config {
                    config.check_update(&old)?;
                    c.update(config)?;
                }
                Ok(c.info())
            }
            (None, CreateAction::Update) => {
                Err(ApiError::new(400, 10149, "consumer does not exist"))
            }
            (None, _) => {
                let c =
                    Consumer::start(stream, name.clone(), config, created, None, self.on_gone())?;
                let info = c.info();
                self.add_consumer(stream_name, name, c);
                Ok(info)
            }
        }
    }

    fn add_consumer(&self, stream: &str, name: String, consumer: Consumer) {
        let replaced = {
            let mut streams = self.inner.streams.write();
            let Some(entry) = streams.get_mut(stream) else {
                return;
            };
            // A replicated stream's leadership may have changed since the
            // consumer started (set_stream_leader holds this lock throughout).
            let leading = entry.stream.is_leader();
            let added = consumer.clone();
            let replaced = entry.consumers.insert(name, consumer);
            link_peers(entry);
            added.inner.lead(leading);
            replaced
        };
        // Two creates of one name raced: the one replaced must stop reading
        // (its files are the new one's, so they stay).
        if let Some(old) = replaced {
            old.stop(Stop::Replaced);
        }
    }

    /// The consumer `name` of `stream`.
    pub fn consumer(&self, stream: &str, name: &str) -> Result<Consumer, ApiError> {
        let streams = self.inner.streams.read();
        let entry = streams.get(stream).ok_or_else(ApiError::stream_not_found)?;
        entry
            .consumers
            .get(name)
            .cloned()
            .ok_or_else(ApiError::consumer_not_found)
    }

    /// Deletes a consumer (a replicated stream's through its group).
    pub fn delete_consumer(&self, stream: &str, name: &str) -> Result<(), ApiError> {
        if self.stream(stream)?.is_replicated() {
            return Err(through_group());
        }
        self.remove_consumer(stream, name)
    }

    /// Deletes a consumer; an interest stream drops what no consumer left
    /// wants (as its group decides it, for a replicated stream).
    fn remove_consumer(&self, stream: &str, name: &str) -> Result<(), ApiError> {
        self.forget_consumer(stream, name)?;
        let handle = self.stream(stream)?;
        if handle.config().retention == Retention::Interest && !handle.is_replicated() {
            let unwanted =
                self.unwanted(&handle, None, |c, seq| c.inner.state.lock().has_acked(seq));
            handle.remove_acked(&unwanted);
        }
        Ok(())
    }

    /// Of `handle`'s live messages (those of `seqs`, or all), the ones
    /// every consumer interested in them has acked by `acked` (with no
    /// consumers: all).
    fn unwanted(
        &self,
        handle: &Stream,
        seqs: Option<&[u64]>,
        acked: impl Fn(&Consumer, u64) -> bool,
    ) -> Vec<u64> {
        let consumers: Vec<Consumer> = self
            .inner
            .streams
            .read()
            .get(handle.name())
            .map(|e| e.consumers.values().cloned().collect())
            .unwrap_or_default();
        let filters: Vec<Vec<Pattern>> = consumers
            .iter()
            .map(|c| c.inner.state.lock().filters.clone())
            .collect();
        handle
            .subjects(seqs)
            .into_iter()
            .filter(|(seq, subject)| {
                consumers.iter().zip(&filters).all(|(c, filters)| {
                    let interested =
                        filters.is_empty() || filters.iter().any(|f| f.matches(subject));
                    !interested || acked(c, *seq)
                })
            })
            .map(|(seq, _)| seq)
            .collect()
    }

    fn forget_consumer(&self, stream: &str, name: &str) -> Result<(), ApiError> {
        let consumer = {
            let mut streams = self.inner.streams.write();
            let entry = streams
                .get_mut(stream)
                .ok_or_else(ApiError::stream_not_found)?;
            let c = entry
                .consumers
                .remove(name)
                .ok_or_else(ApiError::consumer_not_found)?;
            link_peers(entry);
            c
        };
        consumer.stop(Stop::Delete);
        Ok(())
    }

    /// Names of a stream's consumers.
    pub fn consumer_names(&self, stream: &str) -> Result<Vec<String>, ApiError> {
        let streams = self.inner.streams.read();
        let entry = streams.get(stream).ok_or_else(ApiError::stream_not_found)?;
        Ok(entry.consumers.keys().cloned().collect())
    }

    /// Totals for account info.
    pub fn usage(&self) -> Usage {
        let streams = self.inner.streams.read();
        let mut usage = Usage::default();
        for entry in streams.values() {
            let bytes = entry.stream.state().bytes;
            match entry.stream.config().storage {
                StorageType::File => usage.storage += bytes,
                StorageType::Memory => usage.memory += bytes,
            }
            usage.streams += 1;
            usage.consumers += entry.consumers.len() as u64;
        }
        usage
    }

    /// Stops every consumer (saving durable progress) and stream (storing
    /// what was queued and syncing).
    pub fn close(&self) {
        for sub in self.inner.subs.lock().drain(..) {
            self.inner.broker.remove_subscriber(&sub);
        }
        let streams = self.inner.streams.read();
        for entry in streams.values() {
            for c in entry.consumers.values() {
                c.stop(Stop::Close);
            }
            entry.stream.close();
        }
    }
}

fn link_peers(entry: &StreamEntry) {
    let all: Vec<_> = entry
        .consumers
        .values()
        .map(|c| Arc::downgrade(&c.inner))
        .collect();
    for c in entry.consumers.values() {
        *c.inner.peers.lock() = all.clone();
    }
}

fn check_overlap(
    streams: &BTreeMap<String, StreamEntry>,
    config: &StreamConfig,
) -> Result<(), ApiError> {
    let mine = config.patterns();
    for entry in streams.values() {
        let theirs = entry.stream.config().patterns();
        if mine.iter().any(|p| theirs.iter().any(|q| p.overlaps(q))) {
            return Err(ApiError::new(
                400,
                10065,
                "subjects overlap with an existing stream",
            ));
        }
    }
    Ok(())
}

/// The refusal of a consumer change asked of a replicated stream's replica
/// directly rather than through its group.
fn through_group() -> ApiError {
    ApiError::new(
        500,
        10011,
        "a replicated stream's consumers change through its cluster group",
    )
}

/// A random consumer name (JetStream's form: 22 letters and digits).
pub fn generate_name() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..22)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Routes `$JS.ACK.…` and `$JS.FC.…` messages to their consumer's queue.
struct RoutingSink {
    store: Weak<StoreInner>,
}

impl Sink for RoutingSink {
    fn deliver(
        &self,
        _sub: &Subscriber,
        msg: &Message,
        ctx: &mut DeliveryCtx,
    ) -> herald_core::Delivery {
        let Some(store) = self.store.upgrade() else {
            return herald_core::Delivery::Closed;
        };
        let Some(subject) = msg.subject.as_str() else {
            return herald_core::Delivery::Delivered;
        };
        if let Some(target) = parse_ack_subject(subject) {
            let consumer = store
                .streams
                .read()
                .get(target.stream)
                .and_then(|e| e.consumers.get(target.consumer).cloned());
            if let Some(consumer) = consumer {
                let event = Event::Ack {
                    seq: target.stream_seq,
                    kind: parse_ack(&msg.payload),
                    reply: msg.reply.as_ref().map(Subject::detached),
                    requester: herald_core::Requester::of(msg),
                };
                consumer.push_event_inline(event, ctx);
            }
        } else if let Some(rest) = subject.strip_prefix("$JS.FC.") {
            let mut tokens = rest.split('.');
            if let (Some(stream), Some(name)) = (tokens.next(), tokens.next()) {
                let consumer = store
                    .streams
                    .read()
                    .get(stream)
                    .and_then(|e| e.consumers.get(name).cloned());
                if let Some(consumer) = consumer {
                    consumer.push_event_inline(Event::FlowControl(subject.to_owned()), ctx);
                }
            }
        }
        herald_core::Delivery::Delivered
    }
}
