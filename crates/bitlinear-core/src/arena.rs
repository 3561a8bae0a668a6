//! One allocation for the packed weights of many layers, aligned to 2 MiB pages and advised for
//! transparent huge pages on Linux.
//!
//! Why: at M = 1 a layer streams its packed weights from DRAM once per token, and every 4 KiB
//! page it touches costs a TLB miss whose page walk is itself cold (the page tables of the other
//! layers' weights evicted it). A 1024→1024 layer (262 KB) touches 64 pages; on a 2-core Zen 4
//! the cold GEMV took 1.5–2 µs less (of ~11) once its weights sat in huge pages
//! (BENCHMARKS.md). Huge pages need 2 MiB-aligned extents, which separate per-layer
//! allocations of a few hundred KB never are, hence one arena for all layers of a model.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;
use std::sync::Arc;

use crate::error::Result;
use crate::packed::{PackedTernary, SharedWords};

/// Size (and alignment) of a transparent huge page on x86-64 and aarch64 Linux.
pub const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Arenas of at least this many bytes are aligned and padded to whole huge pages; smaller ones
/// would waste most of a 2 MiB page, so they are only cache-line aligned.
pub const HUGE_ARENA_MIN_BYTES: usize = 1 << 20;

/// Each layer's codes start on a cache line (16 words).
const LAYER_ALIGN_WORDS: usize = 16;

/// The arena's memory: written once while placing the layers, read-only afterwards.
struct Region {
    ptr: NonNull<u32>,
    layout: Layout,
}

// SAFETY: the region is written only inside `colocate`, before any `Arc` to it escapes; after
// that it is never written again, so shared reads from any thread are sound.
unsafe impl Send for Region {}
// SAFETY: see `Send`: read-only once shared.
unsafe impl Sync for Region {}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `Region::new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr().cast(), self.layout) }
    }
}

impl Region {
    /// Uninitialized memory for `words` u32 (> 0), huge-page aligned and advised when large.
    fn new(words: usize) -> Self {
        let bytes = words * 4;
        let (size, align) = if bytes >= HUGE_ARENA_MIN_BYTES {
            (
                bytes.div_ceil(HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES,
                HUGE_PAGE_BYTES,
            )
        } else {
            (bytes, LAYER_ALIGN_WORDS * 4)
        };
        let layout = Layout::from_size_align(size, align).expect("arena layout");
        // SAFETY: `size` > 0 (callers pass words > 0).
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<u32>()) else {
            handle_alloc_error(layout)
        };
        if align == HUGE_PAGE_BYTES {
            advise_huge_pages(raw, size);
        }
        Self { ptr, layout }
    }

    fn len_words(&self) -> usize {
        self.layout.size() / 4
    }
}

/// Asks the kernel to back `[ptr, ptr + len)` with transparent huge pages. Must run before the
/// pages are first touched; failure only costs the speed-up (e.g. THP disabled).
#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: *mut u8, len: usize) {
    // SAFETY: the range is one live allocation of ours; MADV_HUGEPAGE changes no contents.
    unsafe {
        libc::madvise(ptr.cast(), len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_ptr: *mut u8, _len: usize) {}

/// One layer's words inside a shared [`Region`].
struct ArenaLayer {
    region: Arc<Region>,
    start: usize,
    len: usize,
}

impl SharedWords for ArenaLayer {
    fn words(&self) -> &[u32] {
        // SAFETY: `start + len` is within the region (set in `colocate`), those words were
        // initialized there, and the region is never written again.
        unsafe { std::slice::from_raw_parts(self.region.ptr.as_ptr().add(self.start), self.len) }
    }
}

/// Copies the packed codes of `layers` into one arena (2 MiB-aligned and advised for
/// transparent huge pages when it holds at least [`HUGE_ARENA_MIN_BYTES`]) and returns the
/// layers again, in order, running on the arena: same shapes, scales and results, bit for bit.
/// The arena lives as long as any returned layer; drop the originals to free their memory.
///
/// Whether the kernel grants huge pages depends on the system
/// (`/sys/kernel/mm/transparent_hugepage/enabled` set to `madvise` or `always`); without them
/// the arena behaves like any other allocation. No layers: an empty result.
pub fn colocate(layers: &[&PackedTernary]) -> Result<Vec<PackedTernary>> {
    let spans: Vec<usize> = layers
        .iter()
        .map(|l| (l.as_bytes().len() / 4).div_ceil(LAYER_ALIGN_WORDS) * LAYER_ALIGN_WORDS)
        .collect();
    let total: usize = spans.iter().sum();
    if total == 0 {
        return layers.iter().map(|l| Ok((*l).clone())).collect();
    }
    let region = Region::new(total);
    let base = region.ptr.as_ptr();
    let mut start = 0;
    let mut placed = Vec::with_capacity(layers.len());
    for (layer, span) in layers.iter().zip(&spans) {
        let bytes = layer.as_bytes();
        let len = bytes.len() / 4;
        for (i, word) in bytes.chunks_exact(4).enumerate() {
            let w = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            // SAFETY: start + i < start + len <= total <= region length; nothing else holds the
            // region yet.
            unsafe { base.add(start + i).write(w) };
        }
        // Zero the cache-line padding so that every word of the region is initialized.
        // SAFETY: [start + len, start + span) is inside the region.
        unsafe { base.add(start + len).write_bytes(0, span - len) };
        placed.push((start, len));
        start += span;
    }
    // And the huge-page padding after the last layer.
    // SAFETY: [total, region length) is inside the region.
    unsafe { base.add(total).write_bytes(0, region.len_words() - total) };

    let region = Arc::new(region);
    layers
        .iter()
        .zip(placed)
        .map(|(layer, (start, len))| {
            let words: Arc<dyn SharedWords> = Arc::new(ArenaLayer {
                region: region.clone(),
                start,
                len,
            });
            PackedTernary::from_shared_words(
                layer.n(),
                layer.k(),
                layer.granularity(),
                layer.scales().to_vec(),
                words,
            )
        })
        .collect()
}
