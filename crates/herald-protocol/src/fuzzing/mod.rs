//! The checks behind the fuzz targets, one function per codec, so that
//! `cargo fuzz` (nightly, in `fuzz/`) and the ordinary test run share them:
//! `tests/fuzz_corpus.rs` replays the seed corpus and many thousands of
//! mutations of it through the same functions on stable Rust, so CI
//! exercises every codec on hostile input without nightly.
//!
//! Each function panics when it finds a bug, which is what a fuzzer wants.

pub mod mqtt;
pub mod nats;
pub mod resp;
