//! The frame decoder on whatever a peer sends: a frame body, and a stream
//! of frames read as the connection reads them.
#![no_main]

use hotswap_node::peer::frame::{decode_frame, read_frame};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = decode_frame(data);
    runtime().block_on(async {
        let mut reader = data;
        while let Ok(Some(_)) = read_frame(&mut reader).await {}
    });
});
