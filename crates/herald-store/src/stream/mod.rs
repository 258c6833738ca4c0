//! One stream: its configuration, its log, the index of its live messages,
//! the capture of its subjects, and every operation on its messages.
//!
//! Publishes reach a stream through a broker subscription on its subjects
//! (so every protocol's publish is captured alike) and queue up for the
//! stream's writer thread ([`writer`]), which stores them in order, in
//! batches that share one write and one fsync, and then sends the publish
//! acks. Everything else (reads, deletes, purges, info) takes the state lock
//! directly.

mod data;
mod dedup_log;
pub(crate) mod filter;
mod index;
pub mod replica;
mod schedule;
mod ttl;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use herald_core::{Broker, Message, Pattern, SubscribeSpec, Subscriber};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::api_error::ApiError;
use crate::config::{Discard, StorageType, StreamConfig};
use crate::info::{PurgeRequest, StreamState};
use crate::log::{FileLog, LogOptions};
use crate::record::{Record, StoredMessage};
use crate::state_file;
use crate::time::now_nanos;
use crate::{StoreError, SyncPolicy};

pub(crate) use filter::SubjectFilter;
pub(crate) use index::{Body, CursorId, MessageIndex, Slot};
use writer::{Pending, WriterQueue};

/// A stream's persisted identity: its config and when it was created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StreamMeta {
    pub(crate) config: StreamConfig,
    pub(crate) created: i64,
}

/// Bytes of recently stored message bodies a file stream keeps in memory,
/// so consumers reading fresh messages do not go to disk.
const BODY_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// A handle to one stream; cheap to clone.
#[derive(Clone, Debug)]
pub struct Stream {
    pub(crate) inner: Arc<StreamInner>,
}

#[derive(Debug)]
pub(crate) struct StreamInner {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) created: i64,
    pub(crate) state: Mutex<StreamData>,
    pub(crate) broker: Broker,
    queue: WriterQueue,
    /// Last stored sequence, for consumers to wait on.
    pub(crate) stored: watch::Sender<u64>,
    capture: Mutex<Vec<Arc<Subscriber>>>,
    pub(crate) sync: SyncPolicy,
    closed: AtomicBool,
    /// When the next TTL expiry or schedule is due (ns; `i64::MAX`: none),
    /// so the writer thread wakes for it rather than at its next tick.
    pub(crate) next_timer: std::sync::atomic::AtomicI64,
    /// Whether it stores what it captures or replicates it.
    pub(crate) replica: parking_lot::RwLock<replica::Replica>,
}

/// What the state lock guards.
#[derive(Debug)]
pub(crate) struct StreamData {
    pub(crate) config: StreamConfig,
    pub(crate) index: MessageIndex,
    pub(crate) log: Option<FileLog>,
    pub(crate) dedup: writer::Dedup,
    /// Bytes of message bodies cached in memory (file streams).
    cached_bytes: usize,
    /// Oldest sequence that may still have a cached body.
    cache_front: u64,
    /// Set after a write failed: the stream refuses writes until restart.
    pub(crate) failed: Option<String>,
    /// Consumers' filters, for interest retention: (consumer name, filters).
    pub(crate) interest: Vec<(String, Vec<Pattern>)>,
    /// Messages read ahead from disk, in sequence order (only touched under
    /// the state lock): consumers reading in order share one read per window.
    pub(crate) read_ahead: std::cell::RefCell<std::collections::VecDeque<StoredMessage>>,
    /// Messages with a TTL of their own (`Nats-TTL`).
    pub(crate) expiries: ttl::Expiries,
    /// Subjects whose last message aged out, awaiting their marker (stored
    /// by the writer's next round).
    pub(crate) markers_due: Vec<herald_core::Subject>,
    /// Message schedules, by fire time.
    pub(crate) schedules: schedule::Schedules,
    /// A replicated stream's position in its consensus log.
    pub(crate) applied: Option<crate::record::AppliedMark>,
    /// A replicated file stream's ids on disk (see `dedup_log.rs`).
    pub(crate) dedup_log: Option<dedup_log::DedupLog>,
}

impl Stream {
    /// Creates a new stream in `dir` (which must not exist yet for file streams).
    pub(crate) fn create(
        dir: PathBuf,
        config: StreamConfig,
        broker: Broker,
        sync: SyncPolicy,
    ) -> Result<Stream, StoreError> {
        let meta = StreamMeta {
            config,
            created: now_nanos(),
        };
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io("create", &dir, e))?;
        state_file::write_json(&dir.join("stream.json"), &meta)?;
        Self::open_with(dir, meta, broker, sync)
    }

    /// Opens the stream in `dir`, recovering its log.
    pub(crate) fn open(
        dir: PathBuf,
        broker: Broker,
        sync: SyncPolicy,
    ) -> Result<Stream, StoreError> {
        let meta: StreamMeta = state_file::read_json(&dir.join("stream.json"))?;
        Self::open_with(dir, meta, broker, sync)
    }

    fn open_with(
        dir: PathBuf,
        meta: StreamMeta,
        broker: Broker,
        sync: SyncPolicy,
    ) -> Result<Stream, StoreError> {
        let config = meta.config;
        let first_seq = config.first_seq.max(1);
        let (log, index, applied) = match config.storage {
            StorageType::Memory => (None, MessageIndex::new(first_seq), None),
            StorageType::File => {
                // A replica's rounds (with their applied marks) stay whole.
                let options = LogOptions {
                    whole_appends: config.num_replicas > 1,
                    ..LogOptions::default()
                };
                let (log, state) = FileLog::open(&dir.join("log"), first_seq, options)?;
                let (index, applied) = data::replay(state.records, state.active_base);
                tracing::info!(
                    stream = %config.name,
                    messages = index.messages(),
                    last_seq = index.last_seq(),
                    "stream recovered"
                );
                (Some(log), index, applied)
            }
        };
        let last = index.last_seq();
        let (dedup_log, logged_ids) =
            if config.num_replicas > 1 && config.storage == StorageType::File {
                let (log, ids) = dedup_log::DedupLog::open(&dir)?;
                (Some(log), ids)
            } else {
                (None, Vec::new())
            };
        let mut data = StreamData {
            config,
            cache_front: index.first_seq(),
            index,
            log,
            dedup: writer::Dedup::default(),
            cached_bytes: 0,
            failed: None,
            interest: Vec::new(),
            read_ahead: std::cell::RefCell::new(std::collections::VecDeque::new()),
            expiries: ttl::Expiries::default(),
            markers_due: Vec::new(),
            schedules: schedule::Schedules::default(),
            applied,
            dedup_log,
        };
        data.rebuild_dedup(logged_ids);
        let (ttls, schedules) = (data.config.allow_msg_ttl, data.config.allow_msg_schedules);
        data.rebuild_timers(ttls, schedules);
        let next_timer = data.next_timer();
        let (stored, _) = watch::channel(last);
        // A replicated stream follows until its consensus group says it leads.
        let replicated = data.config.num_replicas > 1;
        let inner = Arc::new(StreamInner {
            name: data.config.name.clone(),
            dir,
            created: meta.created,
            state: Mutex::new(data),
            broker,
            queue: WriterQueue::default(),
            stored,
            capture: Mutex::new(Vec::new()),
            sync,
            closed: AtomicBool::new(false),
            next_timer: std::sync::atomic::AtomicI64::new(next_timer),
            replica: parking_lot::RwLock::new(if replicated {
                replica::Replica::Follower
            } else {
                replica::Replica::Local
            }),
        });
        writer::spawn(inner.clone())?;
        let stream = Stream { inner };
        if !replicated {
            stream.capture();
        }
        Ok(stream)
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its current configuration.
    pub fn config(&self) -> StreamConfig {
        self.inner.state.lock().config.clone()
    }

    /// When it was created (ns since the epoch).
    pub fn created(&self) -> i64 {
        self.inner.created
    }

    /// Unsubscribes the stream from its subjects.
    fn stop_capture(&self) {
        for sub in self.inner.capture.lock().drain(..) {
            self.inner.broker.remove_subscriber(&sub);
        }
    }

    /// Subscribes the stream to its subjects in the broker.
    fn capture(&self) {
        let patterns = self.inner.state.lock().config.patterns();
        let mut capture = self.inner.capture.lock();
        for sub in capture.drain(..) {
            self.inner.broker.remove_subscriber(&sub);
        }
        let conn = self.inner.broker.new_conn_id();
        for pattern in patterns {
            let spec = SubscribeSpec::internal(pattern, conn);
            let sink = Arc::new(writer::CaptureSink::new(Arc::downgrade(&self.inner)));
            capture.push(self.inner.broker.subscribe_sink(spec, sink));
        }
    }

    /// Applies a new (normalised, checked) configuration.
    pub(crate) fn update(&self, config: StreamConfig) -> Result<(), StoreError> {
        self.write_meta(&config)?;
        {
            let mut data = self.inner.state.lock();
            let subjects_changed = data.config.subjects != config.subjects;
            let ttls = !data.config.allow_msg_ttl && config.allow_msg_ttl;
            let schedules = !data.config.allow_msg_schedules && config.allow_msg_schedules;
            data.config = config;
            // Messages stored before carry their `Nats-TTL` (and schedules) too.
            data.rebuild_timers(ttls, schedules);
            writer::set_next_timer(&self.inner, data.next_timer());
            let removed = data.enforce_limits(now_nanos());
            data.write_removals(removed)?;
            drop(data);
            if subjects_changed && !matches!(*self.inner.replica.read(), replica::Replica::Follower)
            {
                self.capture();
            }
        }
        Ok(())
    }

    /// Writes `stream.json` with `config` (file streams).
    pub(crate) fn write_meta(&self, config: &StreamConfig) -> Result<(), StoreError> {
        let meta = StreamMeta {
            config: config.clone(),
            created: self.inner.created,
        };
        if self.is_file() {
            state_file::write_json(&self.inner.dir.join("stream.json"), &meta)?;
        }
        Ok(())
    }

    pub(crate) fn is_file(&self) -> bool {
        self.inner.state.lock().config.storage == StorageType::File
    }

    /// Stores `msg` as if it had been published on its subject, and waits
    /// for the outcome (the in-process publish-with-ack).
    pub async fn publish(&self, msg: Message) -> Result<crate::PubAck, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner.queue.push(Pending::with_callback(msg, tx), true);
        rx.await
            .unwrap_or_else(|_| Err(ApiError::new(503, 10077, "stream is closing")))
    }

    /// The message at `seq`.
    pub fn get(&self, seq: u64) -> Result<StoredMessage, ApiError> {
        let data = self.inner.state.lock();
        data.read(seq)?.ok_or_else(ApiError::no_message_found)
    }

    /// The last message on `subject` (a pattern: the last of any matching subject).
    pub fn last_by_subject(&self, subject: &Pattern) -> Result<StoredMessage, ApiError> {
        let data = self.inner.state.lock();
        let seq = data
            .index
            .last_matching(&SubjectFilter::of(Some(subject)))
            .ok_or_else(ApiError::no_message_found)?;
        data.read(seq)?.ok_or_else(ApiError::no_message_found)
    }

    /// The first message at or after `seq` whose subject matches `filter`
    /// (every subject when `None`).
    pub fn next_message(
        &self,
        seq: u64,
        filter: Option<&Pattern>,
    ) -> Result<StoredMessage, ApiError> {
        let data = self.inner.state.lock();
        let found = data
            .index
            .next_matching(seq, &SubjectFilter::of(filter))
            .ok_or_else(ApiError::no_message_found)?;
        data.read(found)?.ok_or_else(ApiError::no_message_found)
    }

    /// The first message stored at or after `time` (ns since the epoch).
    pub fn message_at_time(&self, time: i64) -> Result<StoredMessage, ApiError> {
        let data = self.inner.state.lock();
        let seq = data
            .index
            .first_at_or_after(time)
            .ok_or_else(ApiError::no_message_found)?;
        data.read(seq)?.ok_or_else(ApiError::no_message_found)
    }

    /// Deletes one message.
    pub fn delete_message(&self, seq: u64) -> Result<(), ApiError> {
        let mut data = self.inner.state.lock();
        Self::delete_locked(&mut data, seq)
    }

    pub(crate) fn delete_locked(data: &mut StreamData, seq: u64) -> Result<(), ApiError> {
        if data.config.deny_delete {
            return Err(ApiError::new(400, 10057, "message delete not permitted"));
        }
        if data.config.sealed {
            return Err(ApiError::new(400, 10057, "stream is sealed"));
        }
        if seq > data.index.last_seq() {
            return Err(ApiError::new(500, 10057, "stream store EOF"));
        }
        if data.index.get(seq).is_none() {
            return Err(ApiError::new(
                400,
                10043,
                format!("sequence {seq} not found"),
            ));
        }
        data.remove_messages(vec![seq])?;
        Ok(())
    }

    /// Removes `seq` if present (acks on work queues and interest streams).
    pub(crate) fn remove_acked(&self, seqs: &[u64]) {
        if let Err(e) = self.inner.state.lock().remove_live(seqs) {
            tracing::error!(stream = %self.inner.name, "removing acked messages: {e}");
        }
    }

    /// Purges messages; returns how many went.
    pub fn purge(&self, request: &PurgeRequest) -> Result<u64, ApiError> {
        let mut data = self.inner.state.lock();
        Self::purge_locked(&mut data, request)
    }

    pub(crate) fn purge_locked(
        data: &mut StreamData,
        request: &PurgeRequest,
    ) -> Result<u64, ApiError> {
        if data.config.deny_purge {
            return Err(ApiError::new(400, 10110, "stream purge not permitted"));
        }
        if data.config.sealed {
            return Err(ApiError::new(400, 10110, "stream is sealed"));
        }
        let filter = match request.filter.as_deref().filter(|f| !f.is_empty()) {
            Some(f) => Some(Pattern::new(f).map_err(|e| ApiError::bad_request(e.to_string()))?),
            None => None,
        };
        if request.seq > 0 && request.keep > 0 {
            return Err(ApiError::bad_request(
                "sequence and keep can not both be provided",
            ));
        }
        let selected = SubjectFilter::of(filter.as_ref());
        let below = if request.seq > 0 {
            request.seq
        } else if request.keep > 0 {
            match data.index.nth_last_matching(request.keep, &selected) {
                Some(seq) => seq,
                None => return Ok(0),
            }
        } else {
            u64::MAX
        };
        // A replica's full purge is a purge record like any other: starting
        // the log over would drop the segment holding its applied mark
        // before the purge's own mark is written.
        if filter.is_none() && below == u64::MAX && data.config.num_replicas <= 1 {
            let purged = data.index.messages();
            let next = data.index.last_seq() + 1;
            data.index.clear(next);
            data.expiries.clear();
            data.schedules.clear();
            data.cached_bytes = 0;
            data.cache_front = next;
            if let Some(log) = &mut data.log {
                log.reset(next)?;
            }
            return Ok(purged);
        }
        let seqs = data.index.seqs_below(below, &selected);
        let purged = seqs.len() as u64;
        for &seq in &seqs {
            data.remove_one(seq);
        }
        if let Some(log) = &mut data.log {
            log.append(&[Record::Purge { below, filter }])?;
        }
        data.drop_old_segments()?;
        Ok(purged)
    }

    /// The stream's state numbers.
    pub fn state(&self) -> StreamState {
        let data = self.inner.state.lock();
        data.stream_state()
    }

    /// Messages per subject, for subjects matching `filter`.
    pub fn subject_counts(&self, filter: &Pattern) -> Vec<(String, u64)> {
        let data = self.inner.state.lock();
        let mut out: Vec<(String, u64)> = if filter.is_literal() {
            data.index
                .subject(filter.as_bytes())
                .map(|i| (i.subject.to_string(), i.count()))
                .into_iter()
                .collect()
        } else {
            data.index
                .subjects()
                .filter(|i| filter.matches(&i.subject))
                .map(|i| (i.subject.to_string(), i.count()))
                .collect()
        };
        out.sort();
        out
    }

    /// Last stored sequence, to wait on for new messages.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.inner.stored.subscribe()
    }

    /// Stops capturing and writing; pending publishes are stored first.
    pub(crate) fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        for sub in self.inner.capture.lock().drain(..) {
            self.inner.broker.remove_subscriber(&sub);
        }
        self.inner.queue.close_and_wait();
        // An orderly stop leaves no preallocated zeros behind.
        if let Some(log) = &mut self.inner.state.lock().log
            && let Err(e) = log.trim()
        {
            tracing::warn!(stream = %self.inner.name, "trimming the log: {e}");
        }
    }

    /// Closes the stream and removes its files.
    pub(crate) fn destroy(self) -> Result<(), StoreError> {
        self.close();
        let log = self.inner.state.lock().log.take();
        if let Some(log) = log {
            log.destroy()?;
        }
        match std::fs::remove_dir_all(&self.inner.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove", &self.inner.dir, e)),
        }
    }

    /// Its directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Registers (or replaces) a consumer's filters for interest retention.
    pub(crate) fn set_interest(&self, consumer: &str, filters: Option<Vec<Pattern>>) {
        let mut data = self.inner.state.lock();
        data.interest.retain(|(name, _)| name != consumer);
        if let Some(filters) = filters {
            data.interest.push((consumer.to_owned(), filters));
        }
    }
}
