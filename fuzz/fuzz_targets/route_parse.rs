#![no_main]
//! Fuzzes the cluster route protocol's frame parser (`cargo +nightly fuzz run route_parse`);
//! the checks live in `herald_cluster::wire::check_input` so the test suite runs them too.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| herald_cluster::wire::check_input(data));
