//! A stream group: the replicated stream as openraft's state machine, the
//! proposer that turns the leader's rounds into log entries, and the
//! watcher that makes the local replica lead or follow with the group.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use herald_core::{Headers, Subject};
use herald_store::{AppliedMark, Export, Proposal, Replicator, Store, StoredMessage, Stream};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, CommittedLeaderId, EntryPayload, LogId, ServerState, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{Applied, Command, Entry, NodeId, Raft, TypeConfig, WireMessage};

/// The position `log_id` as a stream records it.
pub(crate) fn mark_of(log_id: &LogId<NodeId>) -> AppliedMark {
    AppliedMark {
        index: log_id.index,
        term: log_id.leader_id.term,
        node: log_id.leader_id.node_id,
    }
}

fn log_id_of(mark: AppliedMark) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(mark.term, mark.node), mark.index)
}

type Membership = StoredMembership<NodeId, BasicNode>;

fn sm_error(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&std::io::Error::other(e.to_string())).into()
}

/// This node's replica of `name`, as the store has it now (a snapshot
/// installed replaces it).
fn replica(store: &Store, name: &str) -> Result<Stream, StorageError<NodeId>> {
    store.stream(name).map_err(|e| sm_error(&e.description))
}

/// A snapshot's contents: the replica's messages and last sequence, its
/// duplicate window (ids of removed messages too), and its consumers with
/// their applied progress.
#[derive(Serialize, Deserialize)]
struct Contents {
    /// The stream's config (JSON), as the group last applied it.
    config: String,
    last_seq: u64,
    last_time: i64,
    messages: Vec<SnapshotMessage>,
    dedup: Vec<(String, u64, i64)>,
    consumers: Vec<herald_store::ConsumerExport>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotMessage {
    seq: u64,
    time: i64,
    subject: Bytes,
    headers: Option<Bytes>,
    payload: Bytes,
}

/// The state machine: the stream replica itself, plus the group's last
/// membership (in `membership.json` beside the group's log).
pub(crate) struct StreamMachine {
    store: Store,
    name: String,
    dir: PathBuf,
    membership: Membership,
    /// Whether a snapshot was taken in this process: until then openraft's
    /// start-up probe gets none (exporting the stream then would read it
    /// all for nothing).
    snapshotted: Arc<AtomicBool>,
}

impl StreamMachine {
    pub(crate) fn open(store: Store, name: &str, dir: PathBuf) -> std::io::Result<Self> {
        let membership = match std::fs::read(dir.join("membership.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Membership::default(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            store,
            name: name.to_owned(),
            dir,
            membership,
            snapshotted: Arc::default(),
        })
    }

    fn save_membership(&self) -> Result<(), StorageError<NodeId>> {
        super::log_store::write_json(&self.dir.join("membership.json"), &self.membership)
    }

    fn stream(&self) -> Result<Stream, StorageError<NodeId>> {
        replica(&self.store, &self.name)
    }

    /// A consumer create as every replica decides it; its info.
    fn create_consumer(
        &self,
        now: i64,
        name: &str,
        config: &str,
        action: u8,
    ) -> Result<serde_json::Value, herald_store::ApiError> {
        let config: herald_store::ConsumerConfig =
            serde_json::from_str(config).map_err(herald_store::ApiError::invalid_json)?;
        let action = match action {
            1 => herald_store::CreateAction::Create,
            2 => herald_store::CreateAction::Update,
            _ => herald_store::CreateAction::CreateOrUpdate,
        };
        let info = self
            .store
            .create_replicated_consumer(&self.name, name, config, action, now)?;
        serde_json::to_value(info)
            .map_err(|e| herald_store::ApiError::new(500, 10003, e.to_string()))
    }
}

impl RaftStateMachine<TypeConfig> for StreamMachine {
    type SnapshotBuilder = MarkSnapshot;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        Ok((
            self.stream()?.applied().map(log_id_of),
            self.membership.clone(),
        ))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let stream = self.stream()?;
        let mut out = Vec::new();
        for entry in entries {
            let mark = mark_of(&entry.log_id);
            let applied = match entry.payload {
                EntryPayload::Normal(Command::Round { now, messages }) => {
                    let messages: Vec<_> = messages.iter().map(WireMessage::message).collect();
                    Applied {
                        outcomes: Arc::new(stream.apply(now, &messages, mark)),
                        answer: None,
                    }
                }
                EntryPayload::Normal(Command::Purge { now, request }) => {
                    let result = match serde_json::from_str::<herald_store::PurgeRequest>(&request)
                    {
                        Ok(request) => stream
                            .apply_purge(&request, now, mark)
                            .map(|n| serde_json::json!({"success": true, "purged": n})),
                        Err(e) => {
                            // Nothing to store: the mark moves in memory only.
                            stream.note_applied(mark);
                            Err(herald_store::ApiError::invalid_json(e))
                        }
                    };
                    Applied::answer(result)
                }
                EntryPayload::Normal(Command::DeleteMsg { now, seq }) => Applied::answer(
                    stream
                        .apply_delete(seq, now, mark)
                        .map(|()| serde_json::json!({"success": true})),
                ),
                EntryPayload::Normal(Command::ConsumerCreate {
                    now,
                    name,
                    config,
                    action,
                }) => {
                    let result = self.create_consumer(now, &name, &config, action);
                    stream.apply_mark(now, mark);
                    Applied::answer(result)
                }
                EntryPayload::Normal(Command::UpdateStream { now, config }) => {
                    let result = match serde_json::from_str::<herald_store::StreamConfig>(&config) {
                        Ok(config) => stream.apply_update(config, now, mark).and_then(|()| {
                            let info = self.store.stream_info(&self.name)?;
                            serde_json::to_value(info)
                                .map_err(|e| herald_store::ApiError::new(500, 10003, e.to_string()))
                        }),
                        Err(e) => {
                            stream.note_applied(mark);
                            Err(herald_store::ApiError::invalid_json(e))
                        }
                    };
                    Applied::answer(result)
                }
                EntryPayload::Normal(Command::ConsumerDelete { now, name }) => Applied::answer(
                    self.store
                        .delete_replicated_consumer(&self.name, &name, now, mark)
                        .map(|()| serde_json::json!({"success": true})),
                ),
                EntryPayload::Normal(Command::Consumer { now, update }) => {
                    self.store
                        .apply_consumer_update(&self.name, &update, now, mark)
                        .map_err(|e| sm_error(format!("consumer update: {}", e.description)))?;
                    Applied::default()
                }
                EntryPayload::Membership(m) => {
                    self.membership = Membership::new(Some(entry.log_id), m);
                    self.save_membership()?;
                    stream.note_applied(mark);
                    Applied::default()
                }
                EntryPayload::Blank | EntryPayload::Normal(_) => {
                    stream.note_applied(mark);
                    Applied::default()
                }
            };
            // Whatever the entry, a replica that could not store what the
            // others stored must stop, not go on with a hole.
            if let Some(reason) = stream.failure() {
                return Err(sm_error(format!("stream storage failed: {reason}")));
            }
            out.push(applied);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> MarkSnapshot {
        MarkSnapshot {
            stream: self.stream().ok(),
            membership: self.membership.clone(),
            snapshotted: self.snapshotted.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(super::receiving_buffer())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let Some(last) = meta.last_log_id else {
            return Ok(());
        };
        let contents: Contents = postcard::from_bytes(snapshot.get_ref()).map_err(sm_error)?;
        let config: herald_store::StreamConfig =
            serde_json::from_str(&contents.config).map_err(sm_error)?;
        // The replica is replaced whole, all or nothing on disk: the
        // leader's messages at their sequences, its duplicate window and
        // its consumers, built beside the old replica and swapped in.
        let export = Export {
            applied: None,
            last_seq: contents.last_seq,
            last_time: contents.last_time,
            dedup: contents.dedup,
            messages: contents
                .messages
                .into_iter()
                .map(|m| StoredMessage {
                    seq: m.seq,
                    time: m.time,
                    subject: Subject::from_wire_unchecked(m.subject),
                    headers: m.headers.map(Headers::from_raw_unchecked),
                    payload: m.payload,
                })
                .collect(),
        };
        let messages = export.messages.len();
        self.store
            .install_replica(config, export, mark_of(&last), contents.consumers)
            .map_err(|e| sm_error(&e.description))?;
        self.membership = meta.last_membership.clone();
        self.save_membership()?;
        self.snapshotted.store(true, Ordering::Relaxed);
        tracing::info!(stream = %self.name, messages, index = last.index, "replica installed from a snapshot");
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        if !self.snapshotted.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let export = self
            .stream()?
            .export()
            .map_err(|e| sm_error(&e.description))?;
        let Some(applied) = export.applied else {
            return Ok(None);
        };
        let config = serde_json::to_string(&self.stream()?.config()).map_err(sm_error)?;
        let contents = Contents {
            config,
            last_seq: export.last_seq,
            messages: export
                .messages
                .into_iter()
                .map(|m| SnapshotMessage {
                    seq: m.seq,
                    time: m.time,
                    subject: m.subject.to_bytes(),
                    headers: m.headers.map(|h| h.raw().clone()),
                    payload: m.payload,
                })
                .collect(),
            last_time: export.last_time,
            dedup: export.dedup,
            consumers: self.store.export_consumers(&self.name),
        };
        let bytes = postcard::to_stdvec(&contents).map_err(sm_error)?;
        let last = log_id_of(applied);
        Ok(Some(Snapshot {
            meta: SnapshotMeta {
                last_log_id: Some(last),
                last_membership: self.membership.clone(),
                snapshot_id: format!("{}-{}", last.leader_id.term, last.index),
            },
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

/// A snapshot as openraft takes it: the stream's files are the state, so
/// taking one syncs them and records where they are; the contents are read
/// only when a lagging replica needs them (`get_current_snapshot`).
pub(crate) struct MarkSnapshot {
    stream: Option<Stream>,
    membership: Membership,
    snapshotted: Arc<AtomicBool>,
}

impl RaftSnapshotBuilder<TypeConfig> for MarkSnapshot {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let stream = self.stream.as_ref().ok_or_else(|| sm_error("no replica"))?;
        // The log up to here may be dropped once this returns: the mark is
        // read first, so everything it covers is in what is synced.
        let applied = stream
            .persist_mark()
            .map_err(|e| sm_error(&e.description))?
            .map(log_id_of);
        self.snapshotted.store(true, Ordering::Relaxed);
        Ok(Snapshot {
            meta: SnapshotMeta {
                last_log_id: applied,
                last_membership: self.membership.clone(),
                snapshot_id: format!("{:?}", applied.map(|l| (l.leader_id.term, l.index))),
            },
            snapshot: Box::new(Cursor::new(Vec::new())),
        })
    }
}

/// The leader's replicator: rounds go to the proposer task in order;
/// consumers' updates straight to the group (each consumer has at most one
/// in flight).
struct Proposer {
    rounds: mpsc::UnboundedSender<Proposal>,
    raft: Raft,
    /// Where consumer proposals wait (a step may run off the runtime: on a
    /// stream's writer thread).
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Proposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Proposer")
    }
}

impl Replicator for Proposer {
    fn propose(&self, proposal: Proposal) {
        if let Err(mpsc::error::SendError(p)) = self.rounds.send(proposal) {
            // The group is stopping: the publishes get no ack and are retried.
            tracing::debug!(publishes = p.acks.len(), "proposal after the group stopped");
        }
    }

    fn propose_consumer(
        &self,
        update: herald_store::ConsumerUpdate,
        applied: herald_store::ConsumerApplied,
    ) {
        let raft = self.raft.clone();
        let command = Command::Consumer {
            now: herald_store::time::now_nanos(),
            update,
        };
        self.runtime.spawn(async move {
            let written = tokio::time::timeout(COMMIT_PATIENCE, raft.client_write(command)).await;
            applied(matches!(written, Ok(Ok(_))));
        });
    }
}

/// Rounds in the log not yet applied, at most: while they commit, the
/// rounds that arrive wait and then go as one entry (group commit: under
/// load entries grow instead of multiplying; alone, a round goes at once).
const ROUNDS_IN_FLIGHT: usize = 4;

/// Bytes of messages past which no further round is joined to an entry:
/// a batch of entries stays small enough to cross a route well inside
/// openraft's deadline for one append (its heartbeat interval).
const JOINED_BYTES: usize = 1 << 20;

/// How long a proposer waits for its entry to be applied.
const COMMIT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

fn round_bytes(round: &Proposal) -> usize {
    round.messages.iter().map(herald_core::Message::size).sum()
}

/// Writes the leader's rounds to the log in order, several waiting rounds
/// as one entry; each publish's ack follows when its entry is applied.
async fn propose(
    raft: Raft,
    (store, name): (Store, String),
    mut rounds: mpsc::UnboundedReceiver<Proposal>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(ROUNDS_IN_FLIGHT));
    // A round that did not fit the entry before it.
    let mut carried: Option<Proposal> = None;
    loop {
        let first = match carried.take() {
            Some(round) => round,
            None => match rounds.recv().await {
                Some(round) => round,
                None => return,
            },
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut now = first.now;
        let mut bytes = round_bytes(&first);
        let mut messages: Vec<WireMessage> = first.messages.iter().map(WireMessage::of).collect();
        let mut waiting = vec![(first.acks, first.messages.len())];
        while bytes < JOINED_BYTES {
            let Ok(more) = rounds.try_recv() else {
                break;
            };
            if bytes + round_bytes(&more) > JOINED_BYTES {
                carried = Some(more);
                break;
            }
            bytes += round_bytes(&more);
            now = now.max(more.now);
            messages.extend(more.messages.iter().map(WireMessage::of));
            waiting.push((more.acks, more.messages.len()));
        }
        let written = raft.client_write_ff(Command::Round { now, messages }).await;
        let Ok(stream) = store.stream(&name) else {
            return;
        };
        tokio::spawn(async move {
            // An entry of a leader that lost its term may never be answered
            // (its log overwritten by a snapshot): give up on it in time,
            // so its slot comes back. Its publishes were not acked; a retry
            // with the same message id is recognised if it did commit.
            let outcome = match written {
                Ok(done) => match tokio::time::timeout(COMMIT_PATIENCE, done).await {
                    Ok(Ok(Ok(response))) => Ok(response.data.outcomes),
                    Ok(Ok(Err(e))) => Err(not_committed(&e.to_string())),
                    Ok(Err(_)) => Err(not_committed("the group stopped")),
                    Err(_) => Err(not_committed("no quorum in time")),
                },
                Err(e) => Err(not_committed(&e.to_string())),
            };
            drop(slot);
            match outcome {
                Ok(outcomes) => {
                    let mut outcomes = outcomes.iter().cloned();
                    for (acks, n) in waiting {
                        acks.finish(&stream, outcomes.by_ref().take(n).collect());
                    }
                }
                Err(error) => {
                    for (acks, _) in waiting {
                        acks.fail(&stream, &error);
                    }
                }
            }
        });
    }
}

fn not_committed(why: &str) -> herald_store::ApiError {
    herald_store::ApiError::new(
        503,
        10008,
        format!("JetStream cluster: publish not committed: {why}"),
    )
}

/// Starts the proposer and makes the replica lead whenever the group's
/// leader is this node, follow otherwise.
pub(crate) fn follow_leadership(raft: Raft, store: Store, name: &str, me: NodeId) {
    let (tx, rx) = mpsc::unbounded_channel();
    let name = name.to_owned();
    tokio::spawn(propose(raft.clone(), (store.clone(), name.clone()), rx));
    let replicator: Arc<dyn Replicator> = Arc::new(Proposer {
        rounds: tx,
        raft: raft.clone(),
        runtime: tokio::runtime::Handle::current(),
    });
    tokio::spawn(async move {
        let mut metrics = raft.metrics();
        let mut leading = false;
        // The log's end when this node's leadership began: it leads the
        // replica (and its consumers) once everything up to there is
        // applied, so a consumer restarts from every ack the old leader
        // committed, and a duplicate is judged against every id.
        let mut since: Option<(u64, u64)> = None;
        // The term this node leads in: a later term is a new leadership even
        // if the metrics never showed it following in between.
        let mut led_in: Option<u64> = None;
        loop {
            let (now_leading, term) = {
                let m = metrics.borrow_and_update();
                let term = m.current_term;
                if m.state == ServerState::Leader && m.current_leader == Some(me) {
                    if since.is_some_and(|(t, _)| t != term) {
                        since = None;
                    }
                    let (_, from) = *since.get_or_insert((term, m.last_log_index.unwrap_or(0)));
                    (m.last_applied.map_or(0, |l| l.index) >= from, term)
                } else {
                    since = None;
                    (false, term)
                }
            };
            if leading && led_in.is_some_and(|t| t != term) {
                // Led in an earlier term: follow first, so consumers restart
                // from what the group applied since.
                leading = false;
                store.set_stream_leader(&name, None);
            }
            if now_leading != leading {
                led_in = now_leading.then_some(term);
                leading = now_leading;
                tracing::info!(stream = %name, leading, "stream leadership");
                store.set_stream_leader(&name, leading.then(|| replicator.clone()));
            }
            if metrics.changed().await.is_err() {
                store.set_stream_leader(&name, None);
                return;
            }
        }
    });
}
