//! Mounting a file system and serving it in the foreground: until SIGINT, SIGTERM or SIGHUP
//! arrives, or someone else unmounts it; then it is unmounted and the call returns.
//!
//! As root, with `fusermount3` at hand, the mount is made through it in its `auto_unmount`
//! mode, so that even a killed process leaves no dead mount behind. Otherwise the kernel is
//! asked directly (as root) or through `fusermount3` (as a user).

use crate::error::{Error, Result};
use fuser::{Config, Filesystem, MountOption, Session, SessionACL};
use nix::sys::signal::{SigSet, Signal};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Read-ahead of the mount's files, KiB (requests are at most 1 MiB, so several are sent at
/// once and served in parallel).
const READ_AHEAD_KB: u32 = 8192;

/// How long a busy mount may keep the process after a lazy unmount.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// The termination signals, blocked in every thread so that only the waiting thread sees them.
pub(crate) struct Signals(SigSet);

impl Signals {
    /// Blocks SIGINT, SIGTERM and SIGHUP in this thread and in threads it starts from now on:
    /// call it before starting any.
    pub(crate) fn block() -> Result<Self> {
        let mut set = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(signal);
        }
        set.thread_block().map_err(|e| Error::Io {
            context: "blocking signals".into(),
            source: e.into(),
        })?;
        Ok(Self(set))
    }
}

/// How to mount.
pub(crate) struct MountSettings {
    /// The source shown in /proc/mounts.
    pub(crate) fsname: String,
    /// Threads serving requests.
    pub(crate) threads: usize,
    /// Receives the session's notifier (for a file system that pushes data to the kernel).
    pub(crate) notifier: Option<super::push::NotifierSlot>,
}

/// Why the serving ended.
enum Ended {
    Signal(Signal),
    Unmounted,
}

fn have_fusermount3() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("fusermount3").is_file())
    })
}

/// Mounts `fs` read-only at `mountpoint`, calls `mounted`, and serves until a signal in
/// `signals` arrives or the file system is unmounted from outside.
pub(crate) fn serve<FS: Filesystem>(
    fs: FS,
    mountpoint: &Path,
    settings: &MountSettings,
    signals: Signals,
    mounted: impl FnOnce(),
) -> Result<()> {
    let root = nix::unistd::geteuid().is_root();
    let mut options = vec![
        MountOption::FSName(settings.fsname.clone()),
        MountOption::Subtype("otasync".into()),
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::NoAtime,
        MountOption::DefaultPermissions,
    ];
    if root && have_fusermount3() {
        options.push(MountOption::AutoUnmount);
    }
    let mut config = Config::default();
    config.mount_options = options;
    // Root mounts for everyone (the mode bits decide); users' mounts stay their own.
    config.acl = if root {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(settings.threads.max(1));
    config.clone_fd = true;
    let canonical = mountpoint.canonicalize().map_err(|source| Error::Io {
        context: format!("mounting at {}", mountpoint.display()),
        source,
    })?;
    let session = Session::new(fs, &canonical, &config).map_err(|source| Error::Io {
        context: format!("mounting at {}", mountpoint.display()),
        source,
    })?;
    if let Some(slot) = &settings.notifier {
        let _ = slot.set(session.notifier());
    }
    let (tx, rx) = mpsc::channel();
    let ended = tx.clone();
    let runner = std::thread::Builder::new()
        .name("fuse".into())
        .spawn(move || {
            let result = session.run();
            let _ = ended.send(Ended::Unmounted);
            result
        })
        .map_err(|source| Error::Io {
            context: "starting the file system thread".into(),
            source,
        })?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(signal) = signals.0.wait() {
                let _ = tx.send(Ended::Signal(signal));
            }
        })
        .map_err(|source| Error::Io {
            context: "starting the signal thread".into(),
            source,
        })?;
    if root {
        raise_readahead(&canonical);
    }
    mounted();
    if let Ok(Ended::Signal(signal)) = rx.recv() {
        log::info!("{signal}: unmounting {}", mountpoint.display());
        // Done here rather than left to fusermount3's auto_unmount, which only acts once the
        // connection is gone.
        unmount(&canonical);
        // A busy mount, lazily detached, is served until it is released, for a while.
        let deadline = Instant::now() + BUSY_WAIT;
        while !runner.is_finished() {
            if Instant::now() > deadline {
                log::warn!("{} is still in use: exiting", mountpoint.display());
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    match runner.join() {
        Ok(result) => result.map_err(|source| Error::Io {
            context: format!("serving {}", mountpoint.display()),
            source,
        }),
        Err(_) => Err(Error::Io {
            context: format!("serving {}", mountpoint.display()),
            source: std::io::Error::other("the file system thread panicked"),
        }),
    }
}

/// Lets the kernel read ahead [`READ_AHEAD_KB`] in the mount's files: FUSE starts at 128 KiB,
/// one request at a time, which caps sequential reads far below what the chunks allow. (The
/// file system must be served already: this looks the mount up.)
fn raise_readahead(mountpoint: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(mountpoint) else {
        return;
    };
    let dev = meta.dev();
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let knob = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    if let Err(e) = std::fs::write(&knob, READ_AHEAD_KB.to_string()) {
        log::debug!("{knob}: {e}");
    }
}

/// Unmounts `mountpoint`; when it is busy, detaches it (a lazy unmount).
fn unmount(mountpoint: &Path) {
    use nix::errno::Errno;
    match nix::mount::umount2(mountpoint, nix::mount::MntFlags::empty()) {
        // EINVAL: no longer a mount point.
        Ok(()) | Err(Errno::EINVAL) => {}
        Err(Errno::EPERM) => {
            let status = Command::new("fusermount3")
                .args(["-u", "-q", "--"])
                .arg(mountpoint)
                .status();
            if !status.is_ok_and(|s| s.success()) {
                detach(mountpoint);
            }
        }
        Err(e) => {
            log::warn!(
                "unmounting {}: {e}; detaching it (lazy unmount)",
                mountpoint.display()
            );
            detach(mountpoint);
        }
    }
}

/// Lazily unmounts `mountpoint`: it disappears now, and goes when no longer used.
fn detach(mountpoint: &Path) {
    if nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH).is_ok() {
        return;
    }
    let status = Command::new("fusermount3")
        .args(["-u", "-z", "--"])
        .arg(mountpoint)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        log::warn!("could not unmount {}", mountpoint.display());
    }
}
