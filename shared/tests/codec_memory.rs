//! What decoding stored data may allocate: bounded by the input, whatever
//! counts it declares (issue 21, item 5). Stored data is untrusted (any
//! writer of the table, PHP included), and every read decodes it.
//!
//! Its own test binary: the counting allocator below sees every allocation
//! of the process, so this file holds one test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use dynamodb_sessions::codec::{decode, DataFormat};

/// The system allocator, keeping the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = IN_USE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Arrays nested 100 deep, each declaring as many entries as the rest of a
/// 64 KB input could hold, holding none: the decode fails, after allocating
/// for what is there, not for what was declared.
#[test]
fn nested_declared_counts_allocate_for_what_is_there_not_what_is_claimed() {
    let depth = 100;
    let padding = 60_000;
    let count = padding / 6;
    for format in [DataFormat::PhpSerialize, DataFormat::Php] {
        let mut input = match format {
            DataFormat::Php => String::from("v|"),
            _ => String::new(),
        };
        for _ in 0..depth {
            input.push_str(&format!("a:{count}:{{i:0;"));
        }
        input.push_str(&"x".repeat(padding));
        let before = IN_USE.load(Ordering::SeqCst);
        PEAK.store(before, Ordering::SeqCst);
        let decoded = decode(format, input.as_bytes());
        let peak = PEAK.load(Ordering::SeqCst) - before;
        assert!(decoded.is_err(), "{format}: the input is truncated");
        assert!(peak < 16 * input.len(), "{format}: decoding {} bytes allocated {peak} bytes at its peak", input.len());
    }
}
