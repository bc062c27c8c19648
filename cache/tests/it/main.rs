//! The `cache` crate's integration tests (one binary, STYLE S31). The binary installs a
//! counting global allocator, so any module here can assert that a code path allocates nothing
//! ([`alloc_count::during`]).

mod buffer_alloc;

/// Counts heap allocations made by the current thread while a closure runs.
pub mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// The system allocator, counting calls made by threads that armed counting. Other test
    /// threads of this binary run concurrently, so the counters are per thread.
    pub struct Counting;

    thread_local! {
        static ARMED: Cell<bool> = const { Cell::new(false) };
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }

    fn note() {
        // `const` thread-locals without destructors never allocate on access.
        if ARMED.with(Cell::get) {
            COUNT.with(|count| count.set(count.get() + 1));
        }
    }

    // SAFETY: every call forwards to `System` unchanged; counting touches only thread-locals.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note();
            // SAFETY: same contract as ours.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note();
            // SAFETY: same contract as ours.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note();
            // SAFETY: same contract as ours.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            note();
            // SAFETY: same contract as ours.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    /// Runs `f` and returns how many allocations, reallocations and frees this thread made.
    pub fn during<T>(f: impl FnOnce() -> T) -> (u64, T) {
        COUNT.with(|count| count.set(0));
        ARMED.with(|armed| armed.set(true));
        let result = f();
        ARMED.with(|armed| armed.set(false));
        (COUNT.with(Cell::get), result)
    }
}

#[global_allocator]
static ALLOCATOR: alloc_count::Counting = alloc_count::Counting;
