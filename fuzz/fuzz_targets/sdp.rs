#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dialgate_fuzz::targets::sdp(data));
