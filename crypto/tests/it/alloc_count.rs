//! A counting global allocator (per thread) and the test that sealing and opening pages
//! allocates nothing after set-up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use crypto::{FileId, PageSealer, PAGE_SIZE_BYTES};

struct CountingAllocator;

thread_local! {
    static ALLOCATION_COUNT: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to `System` unchanged; the counter is a thread-local `Cell`, which
// neither allocates nor can be re-entered.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATION_COUNT.try_with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's contract is `System`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Allocations made by this thread while `f` runs.
fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATION_COUNT.with(Cell::get);
    f();
    ALLOCATION_COUNT.with(Cell::get) - before
}

#[test]
fn seal_and_open_allocate_nothing() {
    // The counter works: a Vec allocation is seen.
    assert!(allocations_during(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(8)))) >= 1);
    let mut sealer = PageSealer::generate(FileId(3)).expect("random");
    let opener = sealer.opener();
    let mut page = Box::new([0x17u8; PAGE_SIZE_BYTES]);
    let tag = sealer.seal_page(0, &mut page);
    opener.open_page(0, &mut page, &tag).expect("authentic");
    let count = allocations_during(|| {
        for page_index in 1..100 {
            let tag = sealer.seal_page(page_index, &mut page);
            opener.open_page(page_index, &mut page, &tag).expect("authentic");
        }
        let bad = crypto::PageTag::from_bytes([0; 16]);
        assert!(opener.open_page(5, &mut page, &bad).is_err());
    });
    assert_eq!(count, 0);
    // The rejected open zeroed the page it could not authenticate (never plaintext garbage).
    assert_eq!(page[..], [0u8; PAGE_SIZE_BYTES][..]);
}
