//! The `config.exs` reader on any text, for every build target it reads.
#![no_main]

use hotswap_node::config::exs::{parse_text, MixBuild};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_text(text, MixBuild { env: "dev", target: None });
    let _ = parse_text(text, MixBuild { env: "prod", target: Some("rpi4") });
});
