//! `otasync daemon`: runs `update` every poll interval (±10 % jitter, so a fleet does not poll
//! in step), backing off exponentially after failures, up to the poll interval.

use super::config::DeviceConfig;
use super::update::{Agent, Updated};
use crate::error::{Error, Result};
use crate::fsutil::random_u64;
use std::time::Duration;

/// First wait after a failure; doubled after each further one.
const FIRST_BACKOFF: Duration = Duration::from_secs(30);

/// Polls forever; `build` makes a fresh agent for each run (the booted slot and clocks are read
/// again).
pub(crate) fn run<'a>(
    config: &DeviceConfig,
    reboot_after_install: bool,
    build: impl Fn() -> Result<Agent<'a>>,
) -> Result<()> {
    let interval = Duration::from_secs(config.poll_interval_s);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let wait = match build().and_then(|mut agent| agent.update()) {
            Ok(Updated::Installed(release)) => {
                log::info!("installed {release}");
                if reboot_after_install {
                    return reboot();
                }
                backoff = FIRST_BACKOFF;
                jittered(interval)
            }
            Ok(Updated::UpToDate(_)) => {
                backoff = FIRST_BACKOFF;
                jittered(interval)
            }
            Err(e) => {
                log::error!("update failed: {e}");
                let wait = backoff.min(interval);
                backoff = (backoff * 2).min(interval);
                jittered(wait)
            }
        };
        std::thread::sleep(wait);
    }
}

/// `d` ± 10 %.
fn jittered(d: Duration) -> Duration {
    let tenth = d.as_millis() as u64 / 10;
    let offset = match tenth {
        0 => 0,
        t => random_u64() % (2 * t),
    };
    Duration::from_millis(d.as_millis() as u64 - tenth + offset)
}

/// Asks systemd (or init) to reboot.
pub(crate) fn reboot() -> Result<()> {
    log::info!("rebooting into the new release");
    let status = std::process::Command::new("systemctl")
        .arg("reboot")
        .status()
        .or_else(|_| std::process::Command::new("reboot").status())
        .map_err(|source| Error::Io {
            context: "running reboot".into(),
            source,
        })?;
    match status.success() {
        true => Ok(()),
        false => Err(Error::Io {
            context: "rebooting".into(),
            source: std::io::Error::other(format!("reboot exited with {status}")),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(100));
            assert!(
                d >= Duration::from_secs(90) && d < Duration::from_secs(110),
                "{d:?}"
            );
        }
    }
}
