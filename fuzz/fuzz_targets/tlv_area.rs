//! cargo fuzz target `tlv_area`: see proto::wire::fuzz_entry::tlv_area and docs/fuzzing.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    proto::wire::fuzz_entry::tlv_area(data);
});
