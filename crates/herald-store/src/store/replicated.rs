//! The store's side of replicated streams' groups: leadership handed to a
//! stream and its consumers together, consumer updates applied, consumers
//! carried in snapshots (see `consumer/replicated.rs`).

use std::sync::Arc;

use herald_core::Pattern;

use super::Store;
use crate::api_error::ApiError;
use crate::config::Retention;
use crate::consumer::{self, Consumer, ConsumerExport, ConsumerOp, ConsumerUpdate};
use crate::record::AppliedMark;
use crate::stream::replica::Replicator;

impl Store {
    /// Makes this replica of `name` its leader (`Some`) or a follower, with
    /// its consumers: only the leader's deliver.
    pub fn set_stream_leader(&self, name: &str, replicator: Option<Arc<dyn Replicator>>) {
        let leading = replicator.is_some();
        let (stream, consumers) = {
            let streams = self.inner.streams.read();
            let Some(entry) = streams.get(name) else {
                return;
            };
            let consumers: Vec<Consumer> = entry.consumers.values().cloned().collect();
            (entry.stream.clone(), consumers)
        };
        stream.set_leader(replicator);
        for c in consumers {
            c.inner.lead(leading);
        }
    }

    /// Applies a consumer's committed update at `mark` (see the module docs
    /// of `consumer/replicated.rs`): its progress becomes the applied one;
    /// a work-queue stream removes the messages it acked, an interest
    /// stream those every interested consumer has acked.
    ///
    /// # Errors
    /// Removing acked messages failed to write.
    pub fn apply_consumer_update(
        &self,
        stream_name: &str,
        update: &ConsumerUpdate,
        now: i64,
        mark: AppliedMark,
    ) -> Result<(), ApiError> {
        let stream = self.stream(stream_name)?;
        match &update.op {
            ConsumerOp::Delete => {
                // Gone already (a replay after a restart): nothing to do.
                let _ = self.remove_consumer(stream_name, &update.consumer);
                stream.note_applied(mark);
                Ok(())
            }
            ConsumerOp::Progress { state, done } => {
                let Ok(consumer) = self.consumer(stream_name, &update.consumer) else {
                    stream.note_applied(mark);
                    return Ok(());
                };
                consumer.inner.apply_progress(state.clone());
                let removable = match stream.config().retention {
                    Retention::Limits => Vec::new(),
                    Retention::WorkQueue => done.clone(),
                    Retention::Interest => self.acked_by_all(&stream, stream_name, done),
                };
                if removable.is_empty() {
                    stream.note_applied(mark);
                    return Ok(());
                }
                stream.apply_acked(&removable, now, mark)
            }
        }
    }

    /// Of `done`, the messages every consumer interested in them has acked
    /// (by the progress the group applied: the same on every replica).
    fn acked_by_all(&self, stream: &crate::Stream, name: &str, done: &[u64]) -> Vec<u64> {
        let consumers: Vec<(Vec<Pattern>, consumer::state::SavedState)> = {
            let streams = self.inner.streams.read();
            let Some(entry) = streams.get(name) else {
                return Vec::new();
            };
            entry
                .consumers
                .values()
                .filter_map(|c| Some((c.inner.state.lock().filters.clone(), c.inner.applied()?)))
                .collect()
        };
        done.iter()
            .copied()
            .filter(|&seq| {
                let Some(subject) = stream.subject_of(seq) else {
                    return false;
                };
                consumers.iter().all(|(filters, progress)| {
                    let interested =
                        filters.is_empty() || filters.iter().any(|f| f.matches(&subject));
                    !interested || progress.has_acked(seq)
                })
            })
            .collect()
    }

    /// The consumers of replicated stream `name`, for a snapshot.
    pub fn export_consumers(&self, name: &str) -> Vec<ConsumerExport> {
        let streams = self.inner.streams.read();
        streams.get(name).map_or_else(Vec::new, |entry| {
            entry
                .consumers
                .values()
                .filter_map(|c| c.inner.export())
                .collect()
        })
    }

    /// Starts the consumers a snapshot carried, on a freshly loaded replica.
    ///
    /// # Errors
    /// A consumer's definition is unreadable or its files cannot be written.
    pub fn install_consumers(
        &self,
        name: &str,
        consumers: Vec<ConsumerExport>,
    ) -> Result<(), ApiError> {
        let stream = self.stream(name)?;
        for export in consumers {
            let meta: consumer::ConsumerMeta = serde_json::from_str(&export.meta)
                .map_err(|e| ApiError::new(500, 10003, format!("snapshot consumer: {e}")))?;
            let c = Consumer::start(
                stream.clone(),
                export.name.clone(),
                meta.config,
                meta.created,
                Some(export.state.clone()),
                self.on_gone(),
            )
            .map_err(|e| ApiError::new(500, 10003, e.to_string()))?;
            c.inner.apply_progress(export.state);
            self.add_consumer(name, export.name, c);
        }
        Ok(())
    }
}
