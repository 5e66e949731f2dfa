//! The beam reader on any file: parsed, then read as a module to deploy.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hotswap_node::beam::parse(data);
    let _ = hotswap_node::beam::Module::from_bytes(data.to_vec(), "fuzz.beam".into());
});
