//! A node's beliefs file read from any bytes, each belief as a state.
#![no_main]

use hotswap_node::deploy::belief::parse_belief;
use hotswap_node::store::beliefs::parse_beliefs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for text in parse_beliefs(data).values() {
        let _ = parse_belief(text);
    }
});
