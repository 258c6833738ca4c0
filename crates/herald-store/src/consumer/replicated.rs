//! Consumers of a replicated stream: their definitions and progress are
//! entries of the stream's consensus log, so every replica holds the same
//! consumers at the same point of the stream.
//!
//! Only the consumer on the stream's leader delivers. It runs as any
//! consumer does — its clock decides ack waits, redeliveries and dead
//! letters — and after each step that changed its progress it proposes the
//! whole progress ([`ConsumerOp::Progress`]: cursor, delivered, ack floor,
//! every pending message with its delivery count) plus the messages acked
//! for good since the last proposal, one proposal in flight at a time (what
//! changes meanwhile goes in the next). Every replica applies it: the
//! progress becomes the consumer's *applied* progress (and its `state.json`),
//! and a work-queue or interest stream removes the acked messages there, so
//! replicas agree on what the stream holds. An ack sent with a reply (double
//! ack) is confirmed once the proposal carrying it is applied.
//!
//! Followers' consumers neither deliver nor take acks; they keep the applied
//! progress and bring their live state up to it only when asked for info.
//! A replica that becomes leader restores its consumers from the applied
//! progress: what the old leader delivered but had not replicated is
//! delivered again, pending messages after a full ack wait (at least once).

use std::sync::atomic::{AtomicBool, Ordering};

use herald_core::{Message, Subject};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::state::SavedState;
use super::{ConsumerInner, ConsumerMeta, Effect};
use crate::stream::replica::Replica;

/// What a replicated consumer's leader proposes to its stream's group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerUpdate {
    pub(crate) consumer: String,
    pub(crate) op: ConsumerOp,
}

impl ConsumerUpdate {
    /// The consumer it is about.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ConsumerOp {
    /// The whole progress, and the messages acked for good (or terminated)
    /// since the last one: retention removes them.
    Progress { state: SavedState, done: Vec<u64> },
    /// Gone for inactivity.
    Delete,
}

/// A replicated consumer in a snapshot: its definition and applied progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsumerExport {
    pub(crate) name: String,
    /// [`ConsumerMeta`] as JSON (its config has JetStream's JSON shape).
    pub(crate) meta: String,
    pub(crate) state: SavedState,
}

impl ConsumerExport {
    /// Writes the consumer's files under `dir` as a durable consumer keeps
    /// them (`<name>/consumer.json`, `<name>/state.json`), for the store to
    /// start it from.
    pub(crate) fn write_to(&self, dir: &std::path::Path) -> Result<(), crate::StoreError> {
        let dir = dir.join(&self.name);
        std::fs::create_dir_all(&dir).map_err(|e| crate::StoreError::io("create", &dir, e))?;
        crate::state_file::write_atomic(&dir.join("consumer.json"), self.meta.as_bytes())?;
        crate::state_file::write_json(&dir.join("state.json"), &self.state)
    }
}

/// A replicated consumer's side of the group.
#[derive(Debug, Default)]
pub(crate) struct Replication {
    leading: AtomicBool,
    /// The progress the group last applied.
    applied: Mutex<SavedState>,
    /// Whether the live state is behind `applied` (a follower's, until asked).
    stale: AtomicBool,
    proposing: AtomicBool,
    /// Messages acked for good since the last proposal.
    done: Mutex<Vec<u64>>,
    /// Ack replies to confirm once the proposal carrying them is applied.
    confirm: Mutex<Vec<Subject>>,
    delete_proposed: AtomicBool,
}

impl Replication {
    pub(crate) fn new(applied: SavedState, leading: bool) -> Self {
        Self {
            leading: AtomicBool::new(leading),
            applied: Mutex::new(applied),
            ..Self::default()
        }
    }

    pub(crate) fn leading(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }

    /// The progress the group last applied.
    pub(crate) fn applied(&self) -> SavedState {
        self.applied.lock().clone()
    }
}

impl ConsumerInner {
    /// Whether this consumer only follows its group (delivers nothing).
    pub(crate) fn follows(&self) -> bool {
        self.replication.as_ref().is_some_and(|r| !r.leading())
    }

    /// Carries out a leading replicated consumer's effects: deliveries and
    /// dead letters at once; retention and ack confirmations after the
    /// progress that includes them is applied.
    pub(crate) fn apply_replicated(
        &self,
        replication: &Replication,
        effects: Vec<Effect>,
        confirm: Vec<Subject>,
    ) {
        let mut rest = Vec::with_capacity(effects.len());
        {
            let mut done = replication.done.lock();
            for effect in effects {
                match effect {
                    Effect::Done(seq) => done.push(seq),
                    other => rest.push(other),
                }
            }
        }
        replication.confirm.lock().extend(confirm);
        self.apply_now(rest);
        self.replicate(replication);
    }

    /// Proposes the progress if it changed and no proposal is in flight.
    pub(crate) fn replicate(&self, replication: &Replication) {
        if replication.proposing.swap(true, Ordering::AcqRel) {
            return;
        }
        let replicator = match &*self.stream.inner.replica.read() {
            Replica::Leader(r) if replication.leading() => r.clone(),
            _ => {
                replication.proposing.store(false, Ordering::Release);
                return;
            }
        };
        let state = {
            let mut state = self.state.lock();
            let done = replication.done.lock();
            if !state.dirty && done.is_empty() && replication.confirm.lock().is_empty() {
                drop(done);
                replication.proposing.store(false, Ordering::Release);
                return;
            }
            state.dirty = false;
            state.saved()
        };
        let done = std::mem::take(&mut *replication.done.lock());
        let confirm = std::mem::take(&mut *replication.confirm.lock());
        let update = ConsumerUpdate {
            consumer: self.name.clone(),
            op: ConsumerOp::Progress {
                state,
                done: done.clone(),
            },
        };
        let me = self.me.clone();
        replicator.propose_consumer(
            update,
            Box::new(move |applied| {
                let Some(inner) = me.upgrade() else { return };
                if applied {
                    let broker = &inner.stream.inner.broker;
                    for reply in confirm {
                        broker.publish_message(&Message::new(reply, bytes::Bytes::new()));
                    }
                } else if let Some(replication) = &inner.replication
                    && replication.leading()
                {
                    // Not committed: what it carried goes in the next one.
                    replication.done.lock().extend(done);
                    replication.confirm.lock().extend(confirm);
                    inner.state.lock().dirty = true;
                }
                if let Some(replication) = &inner.replication {
                    replication.proposing.store(false, Ordering::Release);
                    // What changed while this one was in flight.
                    inner.replicate(replication);
                }
            }),
        );
    }

    /// An inactive leading consumer asks its group to remove it (once).
    pub(crate) fn propose_delete(&self, replication: &Replication) {
        if replication.delete_proposed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Replica::Leader(r) = &*self.stream.inner.replica.read() {
            let update = ConsumerUpdate {
                consumer: self.name.clone(),
                op: ConsumerOp::Delete,
            };
            let me = self.me.clone();
            r.propose_consumer(
                update,
                Box::new(move |applied| {
                    if !applied
                        && let Some(inner) = me.upgrade()
                        && let Some(replication) = &inner.replication
                    {
                        replication.delete_proposed.store(false, Ordering::Release);
                    }
                }),
            );
        }
    }

    /// Makes the consumer lead (deliver, take acks) or follow. Either way
    /// its live state starts again from the applied progress.
    pub(crate) fn lead(&self, leading: bool) {
        let Some(replication) = &self.replication else {
            return;
        };
        let waiting = {
            // Under the state lock, which every step takes before asking
            // whether it follows: no step sees the new role with the old state.
            let mut state = self.state.lock();
            if replication.leading() == leading {
                return;
            }
            replication.done.lock().clear();
            replication.confirm.lock().clear();
            replication.delete_proposed.store(false, Ordering::Release);
            let applied = replication.applied.lock().clone();
            state.restore(applied, &mut self.stream.inner.state.lock(), Instant::now());
            replication.stale.store(false, Ordering::Release);
            replication.leading.store(leading, Ordering::Release);
            state.last_active = Instant::now();
            std::mem::take(&mut state.waiting)
        };
        let broker = &self.stream.inner.broker;
        for w in waiting {
            let msg = super::pull::status(&w.reply, 409, "Leadership Change", &[]);
            broker.publish_message(&msg);
        }
        if leading {
            self.subscribe_next();
        } else {
            for sub in self.subs.lock().drain(..) {
                broker.remove_subscriber(&sub);
            }
        }
        self.wake.notify_one();
    }

    /// The group applied `state`: it is the consumer's progress now (and on
    /// disk). A follower's live state catches up when asked for info.
    ///
    /// # Errors
    /// Its `state.json` could not be written: the replica must not go on as
    /// if it had been (a restart would come back to older progress).
    pub(crate) fn apply_progress(&self, state: SavedState) -> Result<(), crate::StoreError> {
        let Some(replication) = &self.replication else {
            return Ok(());
        };
        if let Some(dir) = &self.dir {
            crate::state_file::write_json_synced(
                &dir.join("state.json"),
                &state,
                self.stream.inner.sync == crate::SyncPolicy::Always,
            )?;
        }
        *replication.applied.lock() = state;
        if !replication.leading() {
            replication.stale.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// A follower's live state brought up to the applied progress.
    pub(crate) fn refresh(&self) {
        let Some(replication) = &self.replication else {
            return;
        };
        if replication.leading() || !replication.stale.swap(false, Ordering::AcqRel) {
            return;
        }
        let applied = replication.applied.lock().clone();
        let mut state = self.state.lock();
        state.restore(applied, &mut self.stream.inner.state.lock(), Instant::now());
    }

    /// The applied progress (what a snapshot carries, what retention asks).
    pub(crate) fn applied(&self) -> Option<SavedState> {
        self.replication.as_ref().map(Replication::applied)
    }

    /// This consumer as a snapshot carries it.
    pub(crate) fn export(&self) -> Option<ConsumerExport> {
        let state = self.applied()?;
        let meta = ConsumerMeta {
            config: self.state.lock().config.clone(),
            created: self.created,
        };
        Some(ConsumerExport {
            name: self.name.clone(),
            meta: serde_json::to_string(&meta).ok()?,
            state,
        })
    }
}

impl SavedState {
    /// Whether `seq` is acknowledged in this progress (interest retention).
    pub(crate) fn has_acked(&self, seq: u64) -> bool {
        seq < self.next_seq
            && self
                .pending
                .binary_search_by_key(&seq, |(s, _)| *s)
                .is_err()
    }
}
