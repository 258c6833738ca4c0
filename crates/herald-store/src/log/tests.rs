use std::fs::OpenOptions;
use std::io::Write;

use bytes::Bytes;
use herald_core::{Headers, Pattern, Subject};
use proptest::prelude::*;

use super::*;

fn message(seq: u64, subject: &str, headers: Option<Headers>, payload: &[u8]) -> Record {
    Record::Message(StoredMessage {
        seq,
        time: 1_700_000_000_000_000_000 + seq as i64,
        subject: Subject::from_wire_unchecked(Bytes::copy_from_slice(subject.as_bytes())),
        headers,
        payload: Bytes::copy_from_slice(payload),
    })
}

fn plain(seq: u64) -> Record {
    message(seq, "orders.eu", None, format!("payload {seq}").as_bytes())
}

fn options(max_segment_bytes: u64) -> LogOptions {
    LogOptions {
        max_segment_bytes,
        whole_appends: false,
    }
}

/// What recovery should report for `records` written at `locations`.
fn expected(records: &[Record], locations: &[Location]) -> Vec<RecoveredRecord> {
    records
        .iter()
        .zip(locations)
        .map(|(record, location)| match record {
            Record::Message(m) => RecoveredRecord::Message {
                seq: m.seq,
                time: m.time,
                subject: m.subject.clone(),
                stored_size: m.stored_size(),
                location: *location,
            },
            Record::Delete { seq } => RecoveredRecord::Delete { seq: *seq },
            Record::Purge { below, filter } => RecoveredRecord::Purge {
                below: *below,
                filter: filter.clone(),
            },
            Record::Applied(mark) => RecoveredRecord::Applied(*mark),
        })
        .collect()
}

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

fn last_segment(dir: &Path) -> PathBuf {
    files_with(dir, "seg").pop().unwrap()
}

fn append_raw(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn assert_clean(report: &RecoveryReport) {
    assert_eq!(report.truncated_bytes, 0, "{report:?}");
    assert_eq!(report.rebuilt_indexes, 0, "{report:?}");
    assert!(report.problems.is_empty(), "{report:?}");
}

fn all_kinds() -> Vec<Record> {
    let headers = Headers::builder()
        .insert("Nats-Msg-Id", "m-1")
        .unwrap()
        .build();
    vec![
        message(1, "orders.eu.created", Some(headers), b"hello"),
        message(2, "orders.us", None, b""),
        // An empty header block is not "no headers"; a Redis channel may
        // have a space in it.
        message(
            3,
            "a channel",
            Some(Headers::from_raw_unchecked(Bytes::new())),
            b"x",
        ),
        Record::Delete { seq: 2 },
        Record::Purge {
            below: 2,
            filter: Some(Pattern::new("orders.>").unwrap()),
        },
        Record::Purge {
            below: 1,
            filter: None,
        },
        message(4, "", None, &[0u8; 1000]),
    ]
}

#[test]
fn round_trips_every_kind_of_record() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, state) = FileLog::open(dir.path(), 1, LogOptions::default()).unwrap();
    assert!(state.records.is_empty());
    assert_eq!(state.active_base, 1);
    assert_clean(&state.report);

    let records = all_kinds();
    let locations = log.append(&records).unwrap();
    log.sync().unwrap();
    let check_reads = |log: &FileLog| {
        for (record, location) in records.iter().zip(&locations) {
            match record {
                Record::Message(m) => assert_eq!(&log.read(location).unwrap(), m),
                _ => assert!(matches!(
                    log.read(location),
                    Err(StoreError::Corrupt { .. })
                )),
            }
        }
    };
    check_reads(&log);
    let bytes = log.disk_bytes();
    drop(log);

    let (log, state) = FileLog::open(dir.path(), 99, LogOptions::default()).unwrap();
    assert_eq!(state.records, expected(&records, &locations));
    assert_eq!(state.active_base, 1);
    assert_eq!(state.report.segments, 1);
    assert_eq!(state.report.records, records.len() as u64);
    assert_clean(&state.report);
    assert_eq!(log.disk_bytes(), bytes);
    check_reads(&log);
}

#[test]
fn rolls_segments_and_reopens_through_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = FileLog::open(dir.path(), 1, options(300)).unwrap();
    let mut records = Vec::new();
    let mut locations = Vec::new();
    for batch in 0..20u64 {
        let mut records_in_batch: Vec<_> = (0..3).map(|i| plain(batch * 3 + i + 1)).collect();
        records_in_batch.push(Record::Delete { seq: batch * 3 + 1 });
        locations.extend(log.append(&records_in_batch).unwrap());
        records.extend(records_in_batch);
    }
    let segments = files_with(dir.path(), "seg").len();
    assert!(segments > 5, "{segments} segments");
    assert_eq!(files_with(dir.path(), "idx").len(), segments - 1);
    drop(log);

    let (log, state) = FileLog::open(dir.path(), 1, options(300)).unwrap();
    assert_clean(&state.report);
    assert_eq!(state.report.segments, segments);
    assert_eq!(state.records, expected(&records, &locations));
    for (record, location) in records.iter().zip(&locations) {
        if let Record::Message(m) = record {
            assert_eq!(&log.read(location).unwrap(), m);
        }
    }
    drop(log);

    let index = files_with(dir.path(), "idx")[1].clone();
    fs::remove_file(&index).unwrap();
    let (_, state) = FileLog::open(dir.path(), 1, options(300)).unwrap();
    assert_eq!(state.report.rebuilt_indexes, 1);
    assert_eq!(state.report.problems.len(), 1, "{:?}", state.report);
    assert_eq!(state.report.truncated_bytes, 0);
    assert_eq!(state.records, expected(&records, &locations));
    assert!(index.exists(), "the rebuilt index is written back");

    let (_, state) = FileLog::open(dir.path(), 1, options(300)).unwrap();
    assert_clean(&state.report);
}

#[test]
fn a_stale_or_corrupt_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = FileLog::open(dir.path(), 1, options(100)).unwrap();
    let records: Vec<_> = (1..=10).map(plain).collect();
    let locations = log.append(&records).unwrap();
    drop(log);
    let indexes = files_with(dir.path(), "idx");
    // A flipped byte in one index, another one cut short.
    let mut data = fs::read(&indexes[0]).unwrap();
    data[40] ^= 0x10;
    fs::write(&indexes[0], data).unwrap();
    let len = fs::metadata(&indexes[1]).unwrap().len();
    set_len(&indexes[1], len - 3);

    let (_, state) = FileLog::open(dir.path(), 1, options(100)).unwrap();
    assert_eq!(state.report.rebuilt_indexes, 2, "{:?}", state.report);
    assert_eq!(state.records, expected(&records, &locations));
}

#[test]
fn garbage_after_the_last_record_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = FileLog::open(dir.path(), 1, LogOptions::default()).unwrap();
    let mut records: Vec<_> = (1..=5).map(plain).collect();
    let mut locations = log.append(&records).unwrap();
    drop(log);
    append_raw(
        &last_segment(dir.path()),
        b"\x07not a record at all, just junk",
    );

    let (mut log, state) = FileLog::open(dir.path(), 1, LogOptions::default()).unwrap();
    assert_eq!(state.records, expected(&records, &locations));
    assert_eq!(state.report.truncated_bytes, 31);
    assert_eq!(state.report.problems.len(), 1);
    let problem = &state.report.problems[0];
    assert!(problem.contains("00000000000000000001.seg"), "{problem}");
    assert!(
        problem.contains("truncated 31 bytes at offset"),
        "{problem}"
    );

    let more = vec![plain(6), Record::Delete { seq: 1 }, plain(7)];
    locations.extend(log.append(&more).unwrap());
    records.extend(more);
    drop(log);
    let (log, state) = FileLog::open(dir.path(), 1, LogOptions::default()).unwrap();
    assert_clean(&state.report);
    assert_eq!(state.records, expected(&records, &locations));
    let Record::Message(m) = &records[7] else {
        panic!("not a message")
    };
    assert_eq!(&log.read(&locations[7]).unwrap(), m);
}

#[test]
fn a_record_cut_short_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = FileLog::open(dir.path(), 1, LogOptions::default()).unwrap();
    let records: Vec<_> = (1..=3).map(plain).collect();
    let locations = log.append(&records).unwrap();
    drop(log);
    let path = last_segment(dir.path());
    set_len(&path, fs::metadata(&path).unwrap().len() - 5);

    let (_, state) = FileLog::open(dir.path(), 1, LogOptions::default()).unwrap();
    assert_eq!(state.records, expected(&records[..2], &locations[..2]));
    assert_eq!(
        state.report.truncated_bytes,
        u64::from(locations[2].len) - 5
    );
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        locations[2].offset,
        "the torn record is cut off the file"
    );
}

#[test]
fn a_flipped_byte_keeps_the_records_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = FileLog::open(dir.path(), 1, LogOptions::default()).unwrap();
    let records: Vec<_> = (1..=10).map(plain).collect();
    let locations = log.append(&records).unwrap();
    drop(log);
    let path = last_segment(dir.path());
    let original = fs::read(&path).unwrap();
    // Every byte of the sixth record of ten: head fields fail their checks,
    // the rest fails the CRC.
    let start = locations[5].offset as usize;
    for at in start..start + locations[5].len as usize {
        let mut data = original.clone();
        data[at] ^= 0x01;
        fs::write(&path, data).unwrap();

        let (log, state) = FileLog::open(dir.path(), 1, LogOptions::default()).unwrap();
        assert_eq!(
            state.records,
            expected(&records[..5], &locations[..5]),
            "at {at}"
        );
        assert_eq!(state.report.problems.len(), 1);
        assert_eq!(
            state.report.truncated_bytes,
            original.len() as u64 - start as u64
        );
        assert!(matches!(
            log.read(&locations[5]),
            Err(StoreError::Corrupt { .. })
        ));
        if at == start + locations[5].len as usize - 6 {
            assert!(
                state.report.problems[0].contains("CRC"),
                "{:?}",
                state.report
            );
        }
    }
}

#[test]
fn a_corrupt_sealed_segment_is_cut_and_later_segments_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = FileLog::open(dir.path(), 1, options(200)).unwrap();
    let records: Vec<_> = (1..=12).map(plain).collect();
    let locations = log.append(&records).unwrap();
    drop(log);
    let first = &files_with(dir.path(), "seg")[0];
    assert_eq!(locations[1].segment, 1, "two records in the first segment");
    append_raw(first, b"junk");

    let (_, state) = FileLog::open(dir.path(), 1, options(200)).unwrap();
    assert_eq!(state.report.truncated_bytes, 4);
    assert_eq!(state.report.rebuilt_indexes, 1);
    assert_eq!(state.report.problems.len(), 2, "{:?}", state.report);
    assert_eq!(state.records, expected(&records, &locations));
    let (_, state) = FileLog::open(dir.path(), 1, options(200)).unwrap();
    assert_clean(&state.report);
}

#[test]
fn empty_and_torn_files_recover() {
    for len in [0, 7, 16] {
        let dir = tempfile::tempdir().unwrap();
        drop(FileLog::open(dir.path(), 5, LogOptions::default()).unwrap());
        set_len(&last_segment(dir.path()), len);
        let (mut log, state) = FileLog::open(dir.path(), 1, LogOptions::default()).unwrap();
        assert!(state.records.is_empty());
        assert_eq!(state.active_base, 5);
        assert_eq!(state.report.truncated_bytes, len % 16);
        assert_eq!(state.report.problems.len(), usize::from(len < 16));
        let locations = log.append(&[plain(5)]).unwrap();
        drop(log);
        let (_, state) = FileLog::open(dir.path(), 1, LogOptions::default()).unwrap();
        assert_eq!(state.records, expected(&[plain(5)], &locations));
        assert_clean(&state.report);
    }
}

#[test]
fn a_foreign_file_is_refused_not_repaired() {
    let dir = tempfile::tempdir().unwrap();
    drop(FileLog::open(dir.path(), 1, LogOptions::default()).unwrap());
    let path = last_segment(dir.path());
    fs::write(&path, b"PK\x03\x04 something else entirely").unwrap();
    let err = FileLog::open(dir.path(), 1, LogOptions::default()).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { offset: 0, .. }),
        "{err}"
    );
    assert_eq!(
        fs::read(&path).unwrap(),
        b"PK\x03\x04 something else entirely"
    );
}

#[test]
fn removes_old_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = FileLog::open(dir.path(), 1, options(200)).unwrap();
    let records: Vec<_> = (1..=40).map(plain).collect();
    let locations = log.append(&records).unwrap();
    let before = log.disk_bytes();
    let segments = files_with(dir.path(), "seg").len();
    assert!(segments > 2);

    assert_eq!(log.remove_segments_before(1).unwrap(), 0);
    let freed = log.remove_segments_before(20).unwrap();
    assert!(freed > 0);
    assert_eq!(log.disk_bytes(), before - freed);
    // Every message still on disk is readable; the removed ones are Gone
    // and were all below 20; the segment holding 19 survives only if it
    // also holds 20.
    let mut gone = 0;
    for (record, location) in records.iter().zip(&locations) {
        let Record::Message(m) = record else { continue };
        match log.read(location) {
            Ok(read) => assert_eq!(&read, m),
            Err(StoreError::Gone) => {
                assert!(m.seq < 20);
                gone += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(gone > 0);
    assert_eq!(
        files_with(dir.path(), "idx").len(),
        files_with(dir.path(), "seg").len() - 1
    );

    log.remove_segments_before(u64::MAX).unwrap();
    assert_eq!(
        files_with(dir.path(), "seg").len(),
        1,
        "the active segment stays"
    );
    assert!(log.read(locations.last().unwrap()).is_ok());
    drop(log);
    let (_, state) = FileLog::open(dir.path(), 1, options(200)).unwrap();
    assert_clean(&state.report);
    let first = locations.last().unwrap().segment;
    assert!(
        state
            .records
            .iter()
            .all(|r| matches!(r, RecoveredRecord::Message { seq, .. } if *seq >= first))
    );
}

#[test]
fn a_segment_without_messages_goes_once_wholly_before() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = FileLog::open(dir.path(), 1, options(100)).unwrap();
    // Segment 1 holds only tombstones (of messages from an earlier life).
    let deletes: Vec<_> = (0..4).map(|_| Record::Delete { seq: 0 }).collect();
    log.append(&deletes).unwrap();
    log.append(&[plain(5), plain(6)]).unwrap();
    log.append(&[plain(7)]).unwrap();
    assert_eq!(files_with(dir.path(), "seg").len(), 3);
    assert_eq!(log.remove_segments_before(4).unwrap(), 0);
    assert!(log.remove_segments_before(5).unwrap() > 0);
    assert_eq!(files_with(dir.path(), "seg").len(), 2);
    assert_eq!(
        log.remove_segments_before(6).unwrap(),
        0,
        "6 is still in segment 5"
    );
    assert!(log.remove_segments_before(7).unwrap() > 0);
    assert_eq!(files_with(dir.path(), "seg").len(), 1);
}

#[test]
fn reset_starts_over_at_next_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = FileLog::open(dir.path(), 1, options(200)).unwrap();
    let records: Vec<_> = (1..=20).map(plain).collect();
    let locations = log.append(&records).unwrap();
    log.reset(21).unwrap();
    assert_eq!(log.disk_bytes(), FILE_HEADER_LEN);
    assert!(matches!(log.read(&locations[0]), Err(StoreError::Gone)));
    assert_eq!(files_with(dir.path(), "seg").len(), 1);
    assert!(files_with(dir.path(), "idx").is_empty());
    drop(log);
    let (mut log, state) = FileLog::open(dir.path(), 1, options(200)).unwrap();
    assert_eq!(state.active_base, 21);
    assert!(state.records.is_empty());
    assert_clean(&state.report);

    // Again with nothing since: the active segment already has that name.
    log.append(&[Record::Delete { seq: 3 }]).unwrap();
    log.reset(21).unwrap();
    let locations = log.append(&[plain(21)]).unwrap();
    drop(log);
    let (_, state) = FileLog::open(dir.path(), 1, options(200)).unwrap();
    assert_eq!(state.active_base, 21);
    assert_eq!(state.records, expected(&[plain(21)], &locations));

    // A reset below the active base would break the order of segment names.
    let (mut log, _) = FileLog::open(dir.path(), 1, options(200)).unwrap();
    assert!(log.reset(20).is_err());
}

#[test]
fn oversized_records_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = FileLog::open(dir.path(), 1, LogOptions::default()).unwrap();
    let long = "s".repeat(70_000);
    let err = log
        .append(&[plain(1), message(2, &long, None, b"")])
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Io { source, .. } if source.kind() == io::ErrorKind::InvalidInput)
    );
    assert_eq!(log.disk_bytes(), FILE_HEADER_LEN);
}

#[test]
fn destroy_removes_the_directory() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("stream").join("log");
    let (mut log, _) = FileLog::open(&dir, 1, LogOptions::default()).unwrap();
    log.append(&[plain(1)]).unwrap();
    log.active_file().sync_data().unwrap();
    log.destroy().unwrap();
    assert!(!dir.exists());
}

/// A record from a small description, for the property test.
fn arb_record() -> impl Strategy<Value = (u8, u16, Vec<u8>)> {
    (
        0u8..4,
        0u16..40,
        proptest::collection::vec(any::<u8>(), 0..120),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn reopening_a_cut_log_returns_a_prefix(
        batches in proptest::collection::vec(proptest::collection::vec(arb_record(), 1..6), 1..12),
        max_segment_bytes in 64u64..600,
        cut in any::<proptest::sample::Index>(),
        flip in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = FileLog::open(dir.path(), 1, options(max_segment_bytes)).unwrap();
        let (mut written, mut locations, mut seq) = (Vec::new(), Vec::new(), 0);
        for batch in batches {
            let records: Vec<_> = batch
                .into_iter()
                .map(|(kind, n, payload)| match kind {
                    0 | 1 => {
                        seq += 1;
                        let headers = (kind == 1).then(|| {
                            Headers::builder().insert("N", &n.to_string()).unwrap().build()
                        });
                        message(seq, &format!("s.{n}"), headers, &payload)
                    }
                    2 => Record::Delete { seq: u64::from(n) },
                    3 if n % 3 == 0 => Record::Applied(crate::record::AppliedMark {
                        index: u64::from(n),
                        term: u64::from(n) / 2,
                        node: u64::from(n).wrapping_mul(0x9e37_79b9),
                    }),
                    _ => Record::Purge {
                        below: u64::from(n),
                        filter: (n % 2 == 0).then(|| Pattern::new("s.*").unwrap()),
                    },
                })
                .collect();
            locations.extend(log.append(&records).unwrap());
            written.extend(records);
        }
        drop(log);
        let all = expected(&written, &locations);
        let path = last_segment(dir.path());
        let len = fs::metadata(&path).unwrap().len();
        if flip {
            // A flipped bit after the file header (a bad header is refused).
            let mut data = fs::read(&path).unwrap();
            if data.len() > 16 {
                let at = 16 + cut.index(data.len() - 16);
                data[at] ^= 0x20;
                fs::write(&path, data).unwrap();
            }
        } else {
            set_len(&path, cut.index(len as usize + 1) as u64);
        }

        let (mut log, state) = FileLog::open(dir.path(), 1, options(max_segment_bytes)).unwrap();
        prop_assert!(state.records.len() <= all.len());
        prop_assert_eq!(&state.records[..], &all[..state.records.len()]);
        prop_assert_eq!(state.report.rebuilt_indexes, 0);
        // Appending after recovery works and survives another reopen.
        let next = plain(seq + 1);
        let more = log.append(std::slice::from_ref(&next)).unwrap();
        drop(log);
        let (_, again) = FileLog::open(dir.path(), 1, options(max_segment_bytes)).unwrap();
        prop_assert!(again.report.problems.is_empty(), "{:?}", again.report);
        let mut want = state.records.clone();
        want.extend(expected(&[next], &more));
        prop_assert_eq!(again.records, want);
    }
}

#[test]
fn a_preallocated_tail_left_by_a_crash_is_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = FileLog::open(dir.path(), 1, LogOptions::default()).unwrap();
    let records: Vec<_> = (1..=3).map(plain).collect();
    let locations = log.append(&records).unwrap();
    let path = last_segment(dir.path());
    // No orderly close: the zeros the active segment was extended with stay.
    std::mem::forget(log);
    let data_end = locations[2].offset + u64::from(locations[2].len);
    assert!(fs::metadata(&path).unwrap().len() > data_end);
    let (mut log, state) = FileLog::open(dir.path(), 1, LogOptions::default()).unwrap();
    assert_clean(&state.report);
    assert_eq!(state.records, expected(&records, &locations));
    let more = log.append(&[plain(4)]).unwrap();
    assert_eq!(
        more[0].offset, data_end,
        "appends continue right after the data"
    );
    drop(log);
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        data_end + u64::from(more[0].len)
    );
}

#[test]
fn read_ahead_returns_the_following_messages_in_one_read() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = FileLog::open(dir.path(), 1, LogOptions::default()).unwrap();
    let mut records: Vec<_> = (1..=5).map(plain).collect();
    records.insert(2, Record::Delete { seq: 1 });
    let locations = log.append(&records).unwrap();
    let ahead = log.read_ahead(&locations[0], 1 << 20).unwrap();
    let seqs: Vec<u64> = ahead.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5], "tombstones are skipped");
    for (msg, location) in ahead
        .iter()
        .zip(locations.iter().filter(|l| l.offset != locations[2].offset))
    {
        assert_eq!(msg, &log.read(location).unwrap());
    }
    let short = log.read_ahead(&locations[0], 10).unwrap();
    assert_eq!(
        short.len(),
        1,
        "a window smaller than a record reads just the first"
    );
}

#[test]
fn whole_appends_roll_before_an_append_not_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        max_segment_bytes: 200,
        whole_appends: true,
    };
    let (mut log, _) = FileLog::open(dir.path(), 1, options).unwrap();
    let first: Vec<_> = (1..=10).map(plain).collect();
    let at = log.append(&first).unwrap();
    // Past its size, but in one segment.
    assert!(at.iter().all(|l| l.segment == 1));
    assert_eq!(files_with(dir.path(), "seg").len(), 1);
    let second: Vec<_> = (11..=20).map(plain).collect();
    let at = log.append(&second).unwrap();
    assert!(at.iter().all(|l| l.segment == 11), "{at:?}");
    drop(log);
    let (_, state) = FileLog::open(dir.path(), 1, options).unwrap();
    assert_eq!(state.records.len(), 20);
}
