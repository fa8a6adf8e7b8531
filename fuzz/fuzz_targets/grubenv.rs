#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| otasync_core::fuzzing::grubenv(data));
