//! Threads that work ahead of readers (prefetching chunks, listing directories, pushing files
//! into the kernel's cache) run at a lower priority: the program reading through the mount,
//! and the threads answering its requests, get a processor first whenever they can run,
//! while the work ahead takes the time they leave.

/// How much nicer than the rest of the process the threads working ahead are.
const NICER: i32 = 10;

/// Lowers the calling thread's priority (Linux applies `nice` per thread); a failure only
/// leaves it as it was.
#[allow(unsafe_code)]
pub(crate) fn work_ahead() {
    // SAFETY: gettid has no preconditions; setpriority takes plain integers and only affects
    // the calling thread's scheduling.
    let result = unsafe {
        let tid = libc::gettid();
        let now = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
        libc::setpriority(
            libc::PRIO_PROCESS,
            tid as libc::id_t,
            now.saturating_add(NICER),
        )
    };
    if result != 0 {
        log::debug!(
            "lowering a read-ahead thread's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}
