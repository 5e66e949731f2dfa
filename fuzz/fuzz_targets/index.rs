//! The store's index read from any text: what it holds writes back as
//! text that reads as the same index.
#![no_main]

use hotswap_node::store::index::Index;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let index = Index::parse(text);
    let written = index.to_text();
    assert_eq!(Index::parse(&written).to_text(), written);
});
