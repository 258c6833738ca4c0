//! Recovery: how [`FileLog::open`] turns the files in a directory into a log.

use std::fs;
use std::path::Path;

use super::{FileLog, LogOptions, LogState, RecoveryReport};
use crate::error::StoreError;
use crate::record::RecoveredRecord;
use crate::segment::index::{self, IndexBuilder};
use crate::segment::{self, Damage, Segment};

/// The bases of the segment files in `dir`, ascending. Removes leftovers:
/// temporary index files of an interrupted seal, and index files whose
/// segment is gone (retention removes the segment first).
pub(super) fn list(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut segments = Vec::new();
    let mut indexes = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| StoreError::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("read directory", dir, e))?;
        let name = entry.file_name();
        // Names this log did not write are left alone.
        match name.to_str().and_then(segment::parse_name) {
            Some((base, "seg")) => segments.push(base),
            Some((base, "idx")) => indexes.push(base),
            Some((_, "idx.tmp")) => segment::remove_if_exists(&entry.path())?,
            _ => {}
        }
    }
    segments.sort_unstable();
    for base in indexes {
        if segments.binary_search(&base).is_err() {
            tracing::debug!(dir = %dir.display(), base, "removing index of a removed segment");
            segment::remove_if_exists(&segment::index_path(dir, base))?;
        }
    }
    Ok(segments)
}

/// What [`FileLog::open`] has recovered so far.
pub(super) struct Recovery<'a> {
    pub(super) dir: &'a Path,
    pub(super) records: Vec<RecoveredRecord>,
    pub(super) report: RecoveryReport,
}

impl Recovery<'_> {
    /// Recovers a sealed segment, through its index file if that is sound.
    pub(super) fn sealed(&mut self, base: u64) -> Result<Segment, StoreError> {
        let mut seg = self.open(base)?;
        let path = segment::index_path(self.dir, base);
        let start = self.records.len();
        match index::load(&path, base, seg.len, &mut self.records) {
            Ok(()) => seg.last_msg = last_message(&self.records[start..]),
            Err(reason) => {
                let mut index = IndexBuilder::default();
                self.scan(&mut seg, &mut index)?;
                // Sealed segments hold no preallocated tail.
                seg.truncate(seg.len)?;
                index.write(&path, seg.len)?;
                self.report.rebuilt_indexes += 1;
                self.problem(format!("index {}: rebuilt: {reason}", path.display()));
            }
        }
        Ok(seg)
    }

    /// Recovers the active segment: always scanned.
    pub(super) fn active(&mut self, base: u64) -> Result<(Segment, IndexBuilder), StoreError> {
        // An index of the highest segment is left from a seal cut short
        // before the next segment was created; it will be written anew.
        segment::remove_if_exists(&segment::index_path(self.dir, base))?;
        let mut seg = self.open(base)?;
        let mut index = IndexBuilder::default();
        self.scan(&mut seg, &mut index)?;
        Ok((seg, index))
    }

    fn open(&mut self, base: u64) -> Result<Segment, StoreError> {
        let mut seg = Segment::open(self.dir, base)?;
        let len = seg.len;
        if let Some(damage) = seg.check_header()? {
            self.truncated(&seg, &damage, len);
        }
        Ok(seg)
    }

    fn scan(&mut self, seg: &mut Segment, index: &mut IndexBuilder) -> Result<(), StoreError> {
        if let Some(damage) = seg.scan(&mut self.records, index)? {
            let cut = seg.len - damage.offset;
            seg.truncate(damage.offset)?;
            self.truncated(seg, &damage, cut);
        }
        Ok(())
    }

    fn truncated(&mut self, seg: &Segment, damage: &Damage, cut: u64) {
        self.report.truncated_bytes += cut;
        let (path, offset, reason) = (seg.path.display(), damage.offset, &damage.reason);
        self.problem(format!(
            "segment {path}: truncated {cut} bytes at offset {offset}: {reason}"
        ));
    }

    fn problem(&mut self, line: String) {
        tracing::warn!(dir = %self.dir.display(), problem = %line, "log recovery");
        self.report.problems.push(line);
    }

    pub(super) fn finish(
        mut self,
        options: LogOptions,
        sealed: Vec<Segment>,
        active: Segment,
        active_index: IndexBuilder,
    ) -> (FileLog, LogState) {
        self.report.segments = sealed.len() + 1;
        self.report.records = self.records.len() as u64;
        let state = LogState {
            records: self.records,
            active_base: active.base,
            report: self.report,
        };
        let log = FileLog {
            dir: self.dir.to_path_buf(),
            options,
            sealed,
            active,
            active_index,
            buf: Vec::new(),
        };
        (log, state)
    }
}

/// The highest message sequence among `records`.
fn last_message(records: &[RecoveredRecord]) -> Option<u64> {
    records
        .iter()
        .filter_map(|r| match r {
            RecoveredRecord::Message { seq, .. } => Some(*seq),
            _ => None,
        })
        .max()
}
