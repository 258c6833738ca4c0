//! The store's side of replicated streams' groups: leadership handed to a
//! stream and its consumers together, consumer updates applied, consumers
//! carried in snapshots (see `consumer/replicated.rs`).

use std::path::Path;
use std::sync::Arc;

use super::Store;
use crate::StoreError;
use crate::api_error::ApiError;
use crate::config::Retention;
use crate::consumer::{self, ConsumerExport, ConsumerOp, ConsumerUpdate};
use crate::record::AppliedMark;
use crate::stream::Stream;
use crate::stream::replica::{Export, Replicator};

impl Store {
    /// Makes this replica of `name` its leader (`Some`) or a follower, with
    /// its consumers: only the leader's deliver.
    pub fn set_stream_leader(&self, name: &str, replicator: Option<Arc<dyn Replicator>>) {
        let leading = replicator.is_some();
        // Under the streams lock throughout, so a consumer being added sees
        // either the old role and is led here, or the new one (add_consumer).
        let streams = self.inner.streams.read();
        let Some(entry) = streams.get(name) else {
            return;
        };
        entry.stream.set_leader(replicator);
        for c in entry.consumers.values() {
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
            ConsumerOp::Delete => self
                .delete_replicated_consumer(stream_name, &update.consumer, now, mark)
                .or_else(|e| if e.err_code == 10014 { Ok(()) } else { Err(e) }),
            ConsumerOp::Progress { state, done } => {
                let Ok(consumer) = self.consumer(stream_name, &update.consumer) else {
                    stream.note_applied(mark);
                    return Ok(());
                };
                consumer
                    .inner
                    .apply_progress(state.clone())
                    .map_err(|e| ApiError::new(500, 10049, format!("consumer progress: {e}")))?;
                let removable = match stream.config().retention {
                    Retention::Limits => Vec::new(),
                    Retention::WorkQueue => done.clone(),
                    Retention::Interest => self.unwanted(&stream, Some(done), applied_acked),
                };
                if removable.is_empty() {
                    stream.note_applied(mark);
                    return Ok(());
                }
                stream.apply_acked(&removable, now, mark)
            }
        }
    }

    /// Deletes a consumer of a replicated stream, as its group applies it
    /// at `mark`; an interest stream drops what no consumer left wants.
    ///
    /// # Errors
    /// No such consumer (a replay after a restart: nothing to do), or the
    /// removal failed to write.
    pub fn delete_replicated_consumer(
        &self,
        stream_name: &str,
        name: &str,
        now: i64,
        mark: AppliedMark,
    ) -> Result<(), ApiError> {
        let stream = self.stream(stream_name)?;
        if let Err(e) = self.forget_consumer(stream_name, name) {
            stream.note_applied(mark);
            return Err(e);
        }
        // The mark is written either way: a restart never replays the delete
        // after what came later.
        let unwanted = if stream.config().retention == Retention::Interest {
            self.unwanted(&stream, None, applied_acked)
        } else {
            Vec::new()
        };
        stream.apply_acked(&unwanted, now, mark)
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

    /// Replaces this node's replica of `config`'s stream with a snapshot's
    /// contents (its config, `export` at `mark`, and its `consumers`), all or
    /// nothing on disk:
    /// the new replica is built and synced beside the old one
    /// (`.install-<name>`) and swapped in by renaming directories, so a crash
    /// leaves the old replica (with its own mark, the log still behind it)
    /// or the new one, never a half-filled one.
    ///
    /// # Errors
    /// The stream does not exist here, or a write or rename fails.
    pub fn install_replica(
        &self,
        config: crate::StreamConfig,
        export: Export,
        mark: AppliedMark,
        consumers: Vec<ConsumerExport>,
    ) -> Result<(), ApiError> {
        let name = config.name.clone();
        let name = name.as_str();
        self.stream(name)?;
        let streams_dir = self.inner.dir.join("streams");
        let staging = streams_dir.join(format!(".install-{name}"));
        remove_dir(&staging)?;
        let staged = Stream::create(
            staging.clone(),
            config,
            self.inner.broker.clone(),
            self.inner.sync,
        )?;
        staged.load(export, mark)?;
        staged.sync()?;
        staged.close();
        drop(staged);
        for consumer in &consumers {
            consumer.write_to(&staging.join("consumers"))?;
        }
        // The old replica stops (its consumers with it) and the new one
        // takes its directory.
        let old = self.inner.streams.write().remove(name);
        if let Some(old) = old {
            for c in old.consumers.values() {
                c.stop(consumer::Stop::Replaced);
            }
            old.stream.close();
        }
        let dir = streams_dir.join(name);
        let retired = streams_dir.join(format!(".old-{name}"));
        remove_dir(&retired)?;
        rename(&dir, &retired)?;
        rename(&staging, &dir)?;
        sync_dir(&streams_dir);
        remove_dir(&retired)?;
        let stream = Stream::open(dir.clone(), self.inner.broker.clone(), self.inner.sync)?;
        self.inner.streams.write().insert(
            name.to_owned(),
            super::StreamEntry {
                stream: stream.clone(),
                consumers: Default::default(),
            },
        );
        self.load_consumers(&stream, &dir.join("consumers"))?;
        Ok(())
    }
}

/// Whether `path` is an install's directory rather than a stream's.
pub(super) fn is_staging(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Finishes what a crash interrupted in [`Store::install_replica`]: a
/// staged replica never swapped in goes; a replica renamed aside comes
/// back if the new one never took its place, else goes.
pub(super) fn finish_installs(streams_dir: &Path) -> Result<(), StoreError> {
    let Ok(entries) = std::fs::read_dir(streams_dir) else {
        return Ok(());
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with(".install-") {
            remove_dir(&path)?;
        } else if let Some(stream) = name.strip_prefix(".old-") {
            let dir = streams_dir.join(stream);
            if dir.exists() {
                remove_dir(&path)?;
            } else {
                rename(&path, &dir)?;
            }
        }
    }
    Ok(())
}

fn remove_dir(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove", path, e)),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    std::fs::rename(from, to).map_err(|e| StoreError::io("rename", from, e))
}

fn sync_dir(dir: &Path) {
    if let Ok(dir) = std::fs::File::open(dir) {
        // Makes the renames durable; not every filesystem allows it.
        let _ = dir.sync_all();
    }
}

/// Whether `consumer`'s applied progress (the same on every replica) has
/// acked `seq`.
fn applied_acked(consumer: &consumer::Consumer, seq: u64) -> bool {
    consumer.inner.applied().is_some_and(|p| p.has_acked(seq))
}
