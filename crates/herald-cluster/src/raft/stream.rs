//! A stream group: the replicated stream as openraft's state machine, the
//! proposer that turns the leader's rounds into log entries, and the
//! watcher that makes the local replica lead or follow with the group.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use herald_store::{AppliedMark, Proposal, Replicator, Stream};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, CommittedLeaderId, EntryPayload, LogId, ServerState, StorageError, StorageIOError,
    StoredMembership,
};
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

/// The state machine: the stream replica itself, plus the group's last
/// membership (in `membership.json` beside the group's log).
pub(crate) struct StreamMachine {
    stream: Stream,
    dir: PathBuf,
    membership: Membership,
}

impl StreamMachine {
    pub(crate) fn open(stream: Stream, dir: PathBuf) -> std::io::Result<Self> {
        let membership = match std::fs::read(dir.join("membership.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Membership::default(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            stream,
            dir,
            membership,
        })
    }

    fn save_membership(&self) -> Result<(), StorageError<NodeId>> {
        super::log_store::write_json(&self.dir.join("membership.json"), &self.membership)
    }
}

impl RaftStateMachine<TypeConfig> for StreamMachine {
    type SnapshotBuilder = MetaOnlySnapshot;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        Ok((
            self.stream.applied().map(log_id_of),
            self.membership.clone(),
        ))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut out = Vec::new();
        for entry in entries {
            let mark = mark_of(&entry.log_id);
            match entry.payload {
                EntryPayload::Normal(Command::Round { now, messages }) => {
                    let messages: Vec<_> = messages.iter().map(WireMessage::message).collect();
                    let outcomes = self.stream.apply(now, &messages, mark);
                    out.push(Applied {
                        outcomes: Arc::new(outcomes),
                        answer: None,
                    });
                    continue;
                }
                EntryPayload::Normal(Command::Purge { now, request }) => {
                    let result = match serde_json::from_str::<herald_store::PurgeRequest>(&request)
                    {
                        Ok(request) => self
                            .stream
                            .apply_purge(&request, now, mark)
                            .map(|n| serde_json::json!({"success": true, "purged": n})),
                        Err(e) => Err(herald_store::ApiError::invalid_json(e)),
                    };
                    self.stream.note_applied(mark);
                    out.push(Applied::answer(result));
                    continue;
                }
                EntryPayload::Normal(Command::DeleteMsg { now, seq }) => {
                    let result = self
                        .stream
                        .apply_delete(seq, now, mark)
                        .map(|()| serde_json::json!({"success": true}));
                    out.push(Applied::answer(result));
                    continue;
                }
                EntryPayload::Membership(m) => {
                    self.membership = Membership::new(Some(entry.log_id), m);
                    self.save_membership()?;
                }
                EntryPayload::Blank | EntryPayload::Normal(_) => {}
            }
            self.stream.note_applied(mark);
            out.push(Applied::default());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> MetaOnlySnapshot {
        MetaOnlySnapshot {
            applied: self.stream.applied().map(log_id_of),
            membership: self.membership.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        _meta: &SnapshotMeta<NodeId, BasicNode>,
        _snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Stream groups keep their whole log (snapshot policy `Never`), so a
        // lagging replica is always caught up from the log.
        Err(StorageIOError::write_snapshot(
            None,
            &std::io::Error::other(
                "stream snapshots are not supported: replicas catch up from the log",
            ),
        )
        .into())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(None)
    }
}

/// The stream's files are its state: a snapshot records only where they are.
pub(crate) struct MetaOnlySnapshot {
    applied: Option<LogId<NodeId>>,
    membership: Membership,
}

impl RaftSnapshotBuilder<TypeConfig> for MetaOnlySnapshot {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        Ok(Snapshot {
            meta: SnapshotMeta {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
                snapshot_id: format!("{:?}", self.applied.map(|l| l.index)),
            },
            snapshot: Box::new(Cursor::new(Vec::new())),
        })
    }
}

/// The leader's replicator: rounds go to the proposer task in order.
#[derive(Debug)]
struct Proposer(mpsc::UnboundedSender<Proposal>);

impl Replicator for Proposer {
    fn propose(&self, proposal: Proposal) {
        if let Err(mpsc::error::SendError(p)) = self.0.send(proposal) {
            // The group is stopping: the publishes get no ack and are retried.
            tracing::debug!(publishes = p.acks.len(), "proposal after the group stopped");
        }
    }
}

/// Rounds in the log not yet applied, at most: while they commit, the
/// rounds that arrive wait and then go as one entry (group commit: under
/// load entries grow instead of multiplying; alone, a round goes at once).
const ROUNDS_IN_FLIGHT: usize = 4;

/// Writes the leader's rounds to the log in order, several waiting rounds
/// as one entry; each publish's ack follows when its entry is applied.
async fn propose(raft: Raft, stream: Stream, mut rounds: mpsc::UnboundedReceiver<Proposal>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(ROUNDS_IN_FLIGHT));
    while let Some(first) = rounds.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut now = first.now;
        let mut messages: Vec<WireMessage> = first.messages.iter().map(WireMessage::of).collect();
        let mut waiting = vec![(first.acks, first.messages.len())];
        while let Ok(more) = rounds.try_recv() {
            now = now.max(more.now);
            messages.extend(more.messages.iter().map(WireMessage::of));
            waiting.push((more.acks, more.messages.len()));
        }
        let written = raft.client_write_ff(Command::Round { now, messages }).await;
        let stream = stream.clone();
        tokio::spawn(async move {
            let outcome = match written {
                Ok(done) => match done.await {
                    Ok(Ok(response)) => Ok(response.data.outcomes),
                    Ok(Err(e)) => Err(not_committed(&e.to_string())),
                    Err(_) => Err(not_committed("the group stopped")),
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
pub(crate) fn follow_leadership(raft: Raft, stream: Stream, me: NodeId) {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(propose(raft.clone(), stream.clone(), rx));
    let replicator: Arc<dyn Replicator> = Arc::new(Proposer(tx));
    tokio::spawn(async move {
        let mut metrics = raft.metrics();
        let mut leading = false;
        loop {
            let now_leading = {
                let m = metrics.borrow_and_update();
                m.state == ServerState::Leader && m.current_leader == Some(me)
            };
            if now_leading != leading {
                leading = now_leading;
                tracing::info!(stream = %stream.name(), leading, "stream leadership");
                stream.set_leader(leading.then(|| replicator.clone()));
            }
            if metrics.changed().await.is_err() {
                stream.set_leader(None);
                return;
            }
        }
    });
}
