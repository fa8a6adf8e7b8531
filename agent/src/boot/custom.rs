//! The custom backend: an executable speaking RAUC's custom bootloader protocol
//! (`docs/reference.rst`, "Custom Bootloader Backend"; ota-agent.md §2.2):
//!
//! ```text
//! script get-primary                 prints the primary bootname
//! script set-primary <bootname>
//! script get-state <bootname>        prints "good" or "bad"
//! script set-state <bootname> good|bad
//! ```
//!
//! Exit status 0 is success; anything else is an error carrying the beginning of its
//! standard error. The reported order is the primary slot, then the other good slots.

use super::{BootError, BootState, Bootloader, SlotBootState, known};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Most bytes kept of the script's standard output and of its standard error.
const MAX_OUTPUT: u64 = 4096;
/// How long a call may take before the script is killed.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The script and the bootnames it manages.
#[derive(Debug)]
pub(super) struct CustomBackend {
    script: PathBuf,
    boot_attempts: u32,
    bootnames: Vec<String>,
}

impl CustomBackend {
    /// `script` for these bootnames; good slots are reported with `boot_attempts` tries.
    pub(super) fn new(script: PathBuf, boot_attempts: u32, bootnames: Vec<String>) -> Self {
        Self {
            script,
            boot_attempts,
            bootnames,
        }
    }

    /// Runs the script with `args`; its trimmed standard output.
    fn run(&self, args: &[&str]) -> Result<String, BootError> {
        self.run_with_timeout(args, TIMEOUT)
    }

    /// [`CustomBackend::run`] with another time limit. A script killed at the limit whose
    /// own children still hold its output pipes is waited for until they close them.
    pub(super) fn run_with_timeout(
        &self,
        args: &[&str],
        timeout: Duration,
    ) -> Result<String, BootError> {
        let failed = |reason: String, stderr: String| BootError::Script {
            script: self.script.clone(),
            args: args.join(" "),
            reason,
            stderr,
        };
        let spawn = || {
            Command::new(&self.script)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        };
        // ETXTBSY: the script was just written and another thread's fork still holds it open
        // for writing until that child's exec; it passes within milliseconds.
        let mut child = spawn();
        for _ in 0..50 {
            match &child {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(Duration::from_millis(10));
                    child = spawn();
                }
                _ => break,
            }
        }
        let mut child = child.map_err(|e| failed(format!("cannot run: {e}"), String::new()))?;
        let readers = [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|e| Box::new(e) as Box<dyn Read + Send>),
        ]
        .map(|pipe| std::thread::spawn(move || pipe.map(read_bounded).unwrap_or_default()));
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!("killed after {timeout:?}"));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => break Err(format!("waiting: {e}")),
            }
        };
        let [stdout, stderr] = readers.map(|r| r.join().unwrap_or_default());
        let status = status.map_err(|reason| failed(reason, stderr.clone()))?;
        if !status.success() {
            return Err(failed(format!("failed ({status})"), stderr));
        }
        Ok(stdout.trim().to_owned())
    }

    /// The script's `get-state` answer for `bootname`.
    fn good(&self, bootname: &str) -> Result<bool, BootError> {
        let answer = self.run(&["get-state", bootname])?;
        match answer.as_str() {
            "good" => Ok(true),
            "bad" => Ok(false),
            _ => Err(BootError::Script {
                script: self.script.clone(),
                args: format!("get-state {bootname}"),
                reason: format!("printed {answer:?}, not \"good\" or \"bad\""),
                stderr: String::new(),
            }),
        }
    }
}

/// Reads `pipe` to its end, keeping the first [`MAX_OUTPUT`] bytes (lossy UTF-8).
fn read_bounded(mut pipe: Box<dyn Read + Send>) -> String {
    let mut kept = Vec::new();
    let _ = (&mut pipe).take(MAX_OUTPUT).read_to_end(&mut kept);
    let _ = std::io::copy(&mut pipe, &mut std::io::sink());
    String::from_utf8_lossy(&kept).into_owned()
}

impl Bootloader for CustomBackend {
    fn state(&mut self) -> Result<BootState, BootError> {
        let primary = self.run(&["get-primary"])?;
        let mut order = Vec::new();
        if let Ok(primary) = known(&self.bootnames, &primary) {
            order.push(primary.to_owned());
        } else {
            return Err(BootError::Script {
                script: self.script.clone(),
                args: "get-primary".into(),
                reason: format!("printed {primary:?}, not a configured bootname"),
                stderr: String::new(),
            });
        }
        let mut slots = Vec::with_capacity(self.bootnames.len());
        for bootname in &self.bootnames {
            let good = self.good(bootname)?;
            if good && !order.contains(bootname) {
                order.push(bootname.clone());
            }
            slots.push((bootname.clone(), good));
        }
        let slots = slots
            .into_iter()
            .map(|(bootname, good)| SlotBootState {
                in_order: order.contains(&bootname),
                attempts_left: if good { self.boot_attempts } else { 0 },
                good,
                bootname,
            })
            .collect();
        Ok(BootState { order, slots })
    }

    fn mark_bad(&mut self, bootname: &str) -> Result<(), BootError> {
        let bootname = known(&self.bootnames, bootname)?;
        self.run(&["set-state", bootname, "bad"]).map(drop)
    }

    fn set_primary(&mut self, bootname: &str) -> Result<(), BootError> {
        let bootname = known(&self.bootnames, bootname)?;
        self.run(&["set-primary", bootname]).map(drop)
    }

    fn mark_good(&mut self, bootname: &str) -> Result<(), BootError> {
        let bootname = known(&self.bootnames, bootname)?;
        self.run(&["set-state", bootname, "good"]).map(drop)
    }
}
