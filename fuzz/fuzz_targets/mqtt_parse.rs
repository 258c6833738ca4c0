#![no_main]
//! Fuzzes the MQTT decoders (`cargo +nightly fuzz run mqtt_parse fuzz/seeds/mqtt_parse`); the
//! checks live in `herald_protocol::fuzzing::mqtt` so the test suite runs them too.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| herald_protocol::fuzzing::mqtt::check_input(data));
