//! cargo fuzz target `m6_message`: see proto::wire::fuzz_entry::m6_message and docs/fuzzing.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    proto::wire::fuzz_entry::m6_message(data);
});
