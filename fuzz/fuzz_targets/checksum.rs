//! cargo fuzz target `checksum`: see proto::wire::fuzz_entry::checksum and docs/fuzzing.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    proto::wire::fuzz_entry::checksum(data);
});
