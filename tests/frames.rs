//! The frame decoder and the term guard on arbitrary bytes: never a panic,
//! an abort or a runaway allocation, whatever a peer sends. Allocations are
//! measured: this test binary's allocator records the largest single
//! request each thread makes.

use hotswap_node::peer::frame::{decode_frame, encode_frame, read_frame};
use hotswap_node::peer::term::{atom_term, binary, check_external_terms, int, list, tuple, Pid};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, noting the largest request of each thread.
struct Measured;

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Measured {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Measured = Measured;

/// The largest single allocation `work` made on this thread.
fn largest_allocation(work: impl FnOnce()) -> usize {
    LARGEST.with(|l| l.set(0));
    work();
    LARGEST.with(Cell::get)
}

/// What a decode of a few hundred bytes may ask for at once: proportional
/// to the input, never to a length the input claims.
const ALLOCATION_LIMIT: usize = 64 * 1024;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_frame_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut tagged = vec![112, 131];
        tagged.extend(&body);
        let largest = largest_allocation(|| {
            let _ = decode_frame(&body);
            let _ = decode_frame(&tagged);
        });
        prop_assert!(largest <= ALLOCATION_LIMIT, "{largest} bytes at once");
    }

    #[test]
    fn arbitrary_term_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), n in 1usize..3) {
        let largest = largest_allocation(|| {
            let _ = check_external_terms(&bytes, n);
        });
        prop_assert!(largest <= ALLOCATION_LIMIT, "{largest} bytes at once");
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
        let largest = largest_allocation(|| runtime.block_on(async {
            let mut reader = &stream[..];
            // Every outcome is fine but a panic; stop at the first error or end.
            while let Ok(Some(_)) = read_frame(&mut reader).await {}
        }));
        // A frame's claimed length is read as data arrives, not reserved.
        prop_assert!(largest <= ALLOCATION_LIMIT, "{largest} bytes at once");
    }
}

/// The measure itself works: a big request is seen.
#[test]
fn the_allocation_measure_sees_a_big_request() {
    let largest = largest_allocation(|| {
        let v: Vec<u8> = Vec::with_capacity(1 << 20);
        std::hint::black_box(&v);
    });
    assert!(largest >= 1 << 20, "{largest}");
}

/// A frame that claims 4 GiB in a few bytes allocates no more than it got.
#[test]
fn a_frame_claiming_4_gib_reserves_nothing_of_it() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    let mut input = vec![0xff, 0xff, 0xff, 0xf0, 112, 131];
    input.extend([0u8; 100]);
    let largest = largest_allocation(|| {
        let mut reader = &input[..];
        let _ = runtime.block_on(read_frame(&mut reader));
    });
    assert!(largest <= ALLOCATION_LIMIT, "{largest} bytes at once");
}
