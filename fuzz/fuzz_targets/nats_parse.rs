#![no_main]
//! Fuzzes the NATS parsers (`cargo +nightly fuzz run nats_parse fuzz/seeds/nats_parse`); the
//! checks live in `herald_protocol::fuzzing::nats` so the test suite runs them too.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| herald_protocol::fuzzing::nats::check_input(data));
