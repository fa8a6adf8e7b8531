//! A minimal `log` backend writing `otasync: level: message` lines to stderr
//! (after ripgrep's logger: no extra dependencies, small on the device).

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        match record.level() {
            Level::Info => eprintln!("{}", record.args()),
            level => eprintln!(
                "otasync: {}: {}",
                level.as_str().to_lowercase(),
                record.args()
            ),
        }
    }

    fn flush(&self) {}
}

/// Installs the logger at `level`.
pub(crate) fn init(level: LevelFilter) {
    // Fails only when a logger is already set, which then keeps working.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Parses casync's `--log-level=` names (and Rust's).
pub(crate) fn parse_level(name: &str) -> Option<LevelFilter> {
    Some(match name {
        "emerg" | "alert" | "crit" | "err" | "error" => LevelFilter::Error,
        "warning" | "warn" | "notice" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}
