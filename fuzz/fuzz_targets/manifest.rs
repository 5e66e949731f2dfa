//! A snapshot's manifest read from any file, and what a rollback reads of
//! it.
#![no_main]

use hotswap_node::store::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::from_json(data) else {
        return;
    };
    let _ = manifest.time();
    let _ = manifest.settled();
    for record in manifest.nodes.values() {
        let _ = record.outcome.rollbackable();
        for m in &record.modules {
            let _ = (m.prior.object(), m.prior.md5(), m.prior.restorable());
        }
    }
});
