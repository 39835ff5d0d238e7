#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rtm2_proto::fuzzing::frame_decoder(data));
