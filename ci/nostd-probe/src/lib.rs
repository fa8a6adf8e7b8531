//! A no_std staticlib that uses otasync-core's chunker, digests and index codec, and
//! otasync-signing's manifest verification.
#![no_std]

extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};
use otasync_core::{ChunkSizes, Chunker, DigestAlgorithm, Index};

struct NoAlloc;

// SAFETY: never hands out memory; a probe that is only linked, never run.
unsafe impl GlobalAlloc for NoAlloc {
    unsafe fn alloc(&self, _: Layout) -> *mut u8 {
        core::ptr::null_mut()
    }
    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
}

#[global_allocator]
static ALLOCATOR: NoAlloc = NoAlloc;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// Cuts `len` bytes at `data` and returns the first boundary and the index's chunk count.
#[unsafe(no_mangle)]
pub extern "C" fn otasync_probe(data: *const u8, len: usize) -> usize {
    // SAFETY: the caller passes a valid buffer.
    let bytes = unsafe { core::slice::from_raw_parts(data, len) };
    let first = Chunker::new(ChunkSizes::default()).scan(bytes).unwrap_or(0);
    let id = DigestAlgorithm::Sha512_256.digest(bytes);
    let chunks = Index::decode(bytes).map(|i| i.chunks.len()).unwrap_or(0);
    first + chunks + usize::from(id.0[0])
}

/// Verifies a manifest (`data`) and its signature file (`sig`) against a trust root (`root`);
/// returns 0 when accepted.
#[unsafe(no_mangle)]
pub extern "C" fn otasync_probe_verify(
    root: *const u8,
    root_len: usize,
    data: *const u8,
    len: usize,
    sig: *const u8,
    sig_len: usize,
) -> i32 {
    // SAFETY: the caller passes valid buffers.
    let (root, data, sig) = unsafe {
        (
            core::slice::from_raw_parts(root, root_len),
            core::slice::from_raw_parts(data, len),
            core::slice::from_raw_parts(sig, sig_len),
        )
    };
    let device = otasync_signing::Device::default();
    let history = otasync_signing::History::default();
    let verdict = otasync_signing::TrustRoot::parse(root).and_then(|root| {
        otasync_signing::verify_manifest(&root, data, sig, &device, &history, Default::default())
    });
    i32::from(verdict.is_err())
}
