//! The frame decoder and the term guard on arbitrary bytes: never a panic,
//! an abort or a runaway allocation, whatever a peer sends.

use hotswap_node::dist::frame::{decode_frame, encode_frame, read_frame};
use hotswap_node::dist::term::{atom_term, binary, check_external_terms, int, list, tuple, Pid};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_frame_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_frame(&body);
        let mut tagged = vec![112, 131];
        tagged.extend(&body);
        let _ = decode_frame(&tagged);
    }

    #[test]
    fn arbitrary_term_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), n in 1usize..3) {
        let _ = check_external_terms(&bytes, n);
    }

    #[test]
    fn corrupted_real_messages_never_panic(at in any::<prop::sample::Index>(), value in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let pid = Pid::new("a@b", 7, 0, 3);
        let msg = tuple(vec![atom_term("ok"), list(vec![int(-5), int(70000), binary(vec![1, 2, 3])])]);
        let frame = encode_frame(erl_dist::message::Message::send(pid, msg)).expect("encode");
        let mut body = frame[4..].to_vec();
        let i = at.index(body.len());
        body[i] = value;
        let _ = decode_frame(&body);
        let _ = decode_frame(&body[..cut.index(body.len() + 1)]);
    }

    #[test]
    fn arbitrary_streams_never_panic(stream in proptest::collection::vec(any::<u8>(), 0..256)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("rt");
        runtime.block_on(async {
            let mut reader = &stream[..];
            // Every outcome is fine but a panic; stop at the first error or end.
            while let Ok(Some(_)) = read_frame(&mut reader).await {}
        });
    }
}
