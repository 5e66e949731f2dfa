//! The term guard, and what passes it decoded and shown as an error
//! message would show it.
#![no_main]

use hotswap_node::peer::term::{check_external_terms, show, Term};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if check_external_terms(data, 1).is_ok() {
        if let Ok(term) = Term::decode(data) {
            let _ = show(&term);
        }
    }
    let _ = check_external_terms(data, 2);
});
