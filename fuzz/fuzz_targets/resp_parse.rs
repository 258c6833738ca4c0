#![no_main]
//! Fuzzes the RESP parsers (`cargo +nightly fuzz run resp_parse fuzz/seeds/resp_parse`); the
//! checks live in `herald_protocol::fuzzing::resp` so the test suite runs them too.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| herald_protocol::fuzzing::resp::check_input(data));
