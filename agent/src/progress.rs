//! Progress of a long operation on stderr: a bar when stderr is a terminal, otherwise a JSON
//! line every ten seconds (for logs and supervisors), nothing for runs shorter than that.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Interval of the machine-readable lines.
const LINE_EVERY: Duration = Duration::from_secs(10);
/// Interval of bar redraws.
const BAR_EVERY: Duration = Duration::from_millis(200);

/// Bytes done out of a total, reported from a background thread until dropped.
pub(crate) struct Progress {
    shared: Arc<Shared>,
    reporter: Option<JoinHandle<()>>,
}

struct Shared {
    done: AtomicU64,
    finished: AtomicBool,
    wake: (Mutex<()>, Condvar),
}

impl Progress {
    /// Starts reporting `what` (e.g. "extracting") over `total` bytes; `enabled` false reports
    /// nothing (the counter still counts).
    pub(crate) fn start(what: &'static str, total: u64, enabled: bool) -> Self {
        let shared = Arc::new(Shared {
            done: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            wake: (Mutex::new(()), Condvar::new()),
        });
        let reporter = enabled.then(|| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || report(&shared, what, total))
        });
        Self { shared, reporter }
    }

    /// Counts `bytes` more as done.
    pub(crate) fn advance(&self, bytes: u64) {
        self.shared.done.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.shared.finished.store(true, Ordering::Relaxed);
        self.shared.wake.1.notify_all();
        if let Some(reporter) = self.reporter.take() {
            let _ = reporter.join();
        }
    }
}

fn report(shared: &Shared, what: &str, total: u64) {
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let bar = terminal.then(|| {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(what.to_owned());
        bar
    });
    let every = if terminal { BAR_EVERY } else { LINE_EVERY };
    let (lock, wake) = &shared.wake;
    let mut guard = lock.lock().unwrap_or_else(|p| p.into_inner());
    while !shared.finished.load(Ordering::Relaxed) {
        guard = wake
            .wait_timeout(guard, every)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        let done = shared.done.load(Ordering::Relaxed);
        match &bar {
            Some(bar) => bar.set_position(done),
            None if !shared.finished.load(Ordering::Relaxed) => {
                let seconds = started.elapsed().as_secs_f64();
                eprintln!(
                    "{}",
                    serde_json::json!({ "progress": {
                        "what": what, "done": done, "total": total, "seconds": seconds,
                        "bytes_per_second": (done as f64 / seconds.max(1e-3)) as u64,
                    }})
                );
            }
            None => {}
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
