//! cargo fuzz target `cc_echo`: see proto::wire::fuzz_entry::cc_echo and docs/fuzzing.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    proto::wire::fuzz_entry::cc_echo(data);
});
