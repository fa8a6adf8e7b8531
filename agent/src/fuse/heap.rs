//! The heap of `mount` and `mkdev`: chunk buffers are allocated by the threads that load chunks and freed
//! by whichever thread evicts them from the cache. glibc gives threads that contend for the
//! heap arenas of their own, where freed buffers then linger: with the prefetch workers, the
//! listing-ahead and push threads all loading, that added about 80 MB to a mount's resident
//! size for no speed. Two arenas keep it at the cache's size.

/// Heap arenas a mount may use.
#[cfg(target_env = "gnu")]
const ARENAS: libc::c_int = 2;

/// Caps the process's heap arenas at [`ARENAS`] (glibc only; call it before starting threads).
#[allow(unsafe_code)]
pub(crate) fn limit_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt takes plain integers; M_ARENA_MAX only bounds arenas created from now on.
    if unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENAS) } == 0 {
        log::debug!("could not limit the heap's arenas");
    }
}
