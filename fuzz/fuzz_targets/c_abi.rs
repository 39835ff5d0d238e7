#![no_main]
//! Sequences of C-ABI calls under AddressSanitizer; the harness is shared with the corpus replay
//! in `cargo test` (rtm2-ffi/tests/support/c_abi.rs).

#[path = "../../rtm2-ffi/tests/support/c_abi.rs"]
mod c_abi;

libfuzzer_sys::fuzz_target!(|data: &[u8]| c_abi::run(data));
