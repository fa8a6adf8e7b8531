//! The U-Boot backend: RAUC's A/B convention (ota-agent.md §3.1) in an environment read and
//! written natively (§3.2).
//!
//! - `BOOT_ORDER`: space-separated bootnames, tried in turn;
//! - `BOOT_<x>_LEFT`: boots left for slot x, hex without `0x` (RAUC writes `%x` and reads
//!   with `strtoull(.., 16)`; the boot script counts down with `setexpr`).
//!
//! Every operation is one commit under the `fw_setenv` lock: read both copies, choose the
//! current one as U-Boot does, change the variables, write the *other* copy with flags + 1,
//! `fsync`, read both copies back and check that the new one is current and holds exactly
//! what was written. An operation that changes nothing writes nothing.

use super::fw_env::{self, EnvDevices};
use super::{BootError, BootState, Bootloader, SlotBootState, known, split_order};
use otasync_core::bootenv::uboot::{self, FlagsMode};
use otasync_core::bootenv::{Env, EnvError};
use std::path::{Path, PathBuf};

/// The boot order variable.
const BOOT_ORDER: &str = "BOOT_ORDER";

/// Boot attempts written by the operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Attempts {
    /// For a slot marked good (RAUC `boot-attempts`).
    pub(super) good: u32,
    /// For a slot made primary (RAUC `boot-attempts-primary`).
    pub(super) primary: u32,
}

/// The U-Boot environment named by one `fw_env.config`.
#[derive(Debug)]
pub(super) struct UbootBackend {
    devices: EnvDevices,
    attempts: Attempts,
    bootnames: Vec<String>,
}

/// An environment as read: its variables and, for a redundant one, the state the next write
/// continues from.
struct Current {
    env: Env,
    /// `(current copy, its flags)`; `None` for a single copy.
    redundant: Option<(usize, u8)>,
}

impl UbootBackend {
    /// Reads `fw_env_config`. A single-copy environment is refused unless
    /// `allow_nonredundant` (a power cut during a write would destroy it).
    pub(super) fn open(
        fw_env_config: &Path,
        attempts: Attempts,
        allow_nonredundant: bool,
        bootnames: Vec<String>,
    ) -> Result<Self, BootError> {
        let copies = fw_env::read_config(fw_env_config)?;
        Self::with_copies(
            copies,
            PathBuf::from(fw_env::DEFAULT_LOCK),
            attempts,
            allow_nonredundant,
            bootnames,
            fw_env_config,
        )
    }

    /// [`UbootBackend::open`] with the copies given and another lock file (tests).
    pub(super) fn with_copies(
        copies: Vec<fw_env::CopyLocation>,
        lock_file: PathBuf,
        attempts: Attempts,
        allow_nonredundant: bool,
        bootnames: Vec<String>,
        origin: &Path,
    ) -> Result<Self, BootError> {
        if copies.len() == 1 {
            if !allow_nonredundant {
                return Err(BootError::Config(format!(
                    "{} configures a single U-Boot environment copy, which a power cut during a \
                     write destroys; configure two copies, or set allow_nonredundant_env",
                    origin.display()
                )));
            }
            log::warn!(
                "{}: single U-Boot environment copy: a power cut while switching slots leaves \
                 U-Boot with its default environment",
                origin.display()
            );
        }
        Ok(Self {
            devices: EnvDevices::new(copies, lock_file),
            attempts,
            bootnames,
        })
    }

    /// Reads the environment (the caller holds the lock).
    fn read(&self) -> Result<Current, BootError> {
        let path = self.devices.device(0);
        let env_error = |source| BootError::Env {
            path: path.to_owned(),
            source,
        };
        if self.devices.count() == 1 {
            let copy = self.devices.read(0)?;
            let env = uboot::load_single(&copy).map_err(env_error)?;
            return Ok(Current {
                env,
                redundant: None,
            });
        }
        let copies = [self.devices.read(0)?, self.devices.read(1)?];
        match uboot::load_redundant([&copies[0], &copies[1]], FlagsMode::Incremental) {
            Ok(loaded) => Ok(Current {
                env: loaded.env,
                redundant: Some((loaded.current, loaded.flags)),
            }),
            Err(EnvError::NoValidCopy) => Err(BootError::NoValidEnv {
                path: path.to_owned(),
            }),
            Err(e) => Err(env_error(e)),
        }
    }

    /// One commit: applies `change` to the current variables and, if that changed anything,
    /// writes them to the non-current copy and checks them by reading back.
    fn commit(
        &mut self,
        change: impl FnOnce(&mut Env) -> Result<(), BootError>,
    ) -> Result<(), BootError> {
        let _lock = self.devices.lock()?;
        let current = self.read()?;
        let mut env = current.env.clone();
        change(&mut env)?;
        if env == current.env {
            log::debug!("U-Boot environment unchanged, not written");
            return Ok(());
        }
        let (target, flags) = match current.redundant {
            Some((copy, flags)) => (1 - copy, Some(FlagsMode::Incremental.next(flags))),
            None => (0, None),
        };
        let path = self.devices.device(target).to_owned();
        let mut bytes = vec![0u8; self.devices.size()];
        match flags {
            Some(flags) => uboot::store_redundant(&env, &mut bytes, flags),
            None => uboot::store_single(&env, &mut bytes),
        }
        .map_err(|source| BootError::Env {
            path: path.clone(),
            source,
        })?;
        self.devices.write(target, &bytes)?;
        let verify = |reason: String| BootError::Verify {
            path: path.clone(),
            reason,
        };
        let back = self.read().map_err(|e| verify(e.to_string()))?;
        if let Some((copy, _)) = back.redundant.filter(|&(copy, _)| copy != target) {
            return Err(verify(format!(
                "copy {copy} is current, not the copy {target} just written"
            )));
        }
        if back.env != env {
            return Err(verify("the variables differ from those written".into()));
        }
        log::info!(
            "U-Boot environment written to copy {target} of {}",
            self.devices.device(0).display()
        );
        Ok(())
    }
}

impl Bootloader for UbootBackend {
    fn state(&mut self) -> Result<BootState, BootError> {
        let _lock = self.devices.lock()?;
        Ok(boot_state(&self.read()?.env, &self.bootnames))
    }

    fn mark_bad(&mut self, bootname: &str) -> Result<(), BootError> {
        let bootname = known(&self.bootnames, bootname)?;
        self.commit(|env| apply_bad(env, bootname))
    }

    fn set_primary(&mut self, bootname: &str) -> Result<(), BootError> {
        let bootname = known(&self.bootnames, bootname)?;
        let (attempts, bootnames) = (self.attempts.primary, self.bootnames.clone());
        self.commit(|env| apply_primary(env, bootname, attempts, &bootnames))
    }

    fn mark_good(&mut self, bootname: &str) -> Result<(), BootError> {
        let bootname = known(&self.bootnames, bootname)?;
        let attempts = self.attempts.good;
        self.commit(|env| set_left(env, bootname, attempts))
    }
}

/// `BOOT_<bootname>_LEFT`.
fn left_name(bootname: &str) -> String {
    format!("BOOT_{bootname}_LEFT")
}

/// The boot order, `None` when `BOOT_ORDER` is unset.
fn order(env: &Env) -> Option<Vec<String>> {
    env.get(BOOT_ORDER).map(split_order)
}

/// Boots left for `bootname`, read as `strtoull(value, NULL, 16)` does (leading blanks, an
/// optional `0x`, hex digits up to the first other byte; none gives 0); unset gives 0.
fn left(env: &Env, bootname: &str) -> u32 {
    let Some(value) = env.get(left_name(bootname)) else {
        return 0;
    };
    let text = String::from_utf8_lossy(value);
    let text = text.trim_start();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let digits = text.bytes().take_while(u8::is_ascii_hexdigit).count();
    match u64::from_str_radix(&text[..digits], 16) {
        Ok(n) => u32::try_from(n).unwrap_or(u32::MAX),
        // No digits, or more than u64 holds (strtoull saturates).
        Err(_) if digits > 0 => u32::MAX,
        Err(_) => 0,
    }
}

/// RAUC's reading of the environment: a slot is good when listed in `BOOT_ORDER` with boots
/// left.
pub(super) fn boot_state(env: &Env, bootnames: &[String]) -> BootState {
    let order = order(env).unwrap_or_default();
    let slots = bootnames
        .iter()
        .map(|bootname| {
            let in_order = order.contains(bootname);
            let attempts_left = left(env, bootname);
            SlotBootState {
                bootname: bootname.clone(),
                in_order,
                attempts_left,
                good: in_order && attempts_left > 0,
            }
        })
        .collect();
    BootState { order, slots }
}

/// Sets `BOOT_<bootname>_LEFT` to `attempts` in hex.
fn set_left(env: &mut Env, bootname: &str, attempts: u32) -> Result<(), BootError> {
    env.set(left_name(bootname), format!("{attempts:x}"))
        .map_err(|e| BootError::Config(format!("bootname {bootname:?}: {e}")))
}

/// RAUC "bad": out of `BOOT_ORDER` (when set) and no boots left.
pub(super) fn apply_bad(env: &mut Env, bootname: &str) -> Result<(), BootError> {
    if let Some(order) = order(env) {
        let rest: Vec<String> = order.into_iter().filter(|b| b != bootname).collect();
        set_order(env, &rest)?;
    }
    set_left(env, bootname, 0)
}

/// RAUC "primary": first in `BOOT_ORDER`, the others keeping their order (an unset or empty
/// order becomes this bootname then the other configured ones), `attempts` boots left.
pub(super) fn apply_primary(
    env: &mut Env,
    bootname: &str,
    attempts: u32,
    bootnames: &[String],
) -> Result<(), BootError> {
    let others = match order(env) {
        Some(order) if !order.is_empty() => order,
        _ => bootnames.to_vec(),
    };
    let mut order = vec![bootname.to_owned()];
    for other in others {
        if !order.contains(&other) {
            order.push(other);
        }
    }
    set_order(env, &order)?;
    set_left(env, bootname, attempts)
}

fn set_order(env: &mut Env, order: &[String]) -> Result<(), BootError> {
    env.set(BOOT_ORDER, order.join(" "))
        .map_err(|e| BootError::Config(format!("{BOOT_ORDER}: {e}")))
}
