//! Bootloader backends: what the agent reads and changes to switch A/B slots, with RAUC's
//! semantics (ota-agent.md §2.2, §3.1) so that RAUC's boot scripts work unchanged.
//!
//! - [`Bootloader::mark_bad`]: the slot is never booted again until made primary;
//! - [`Bootloader::set_primary`]: the slot is booted next, with a limited number of tries;
//! - [`Bootloader::mark_good`]: the slot keeps being booted (commit after a trial boot).
//!
//! Each operation is one atomic commit: the U-Boot backend writes the non-current copy of a
//! redundant environment once (all variables changed together), the GRUB backend replaces
//! `grubenv` by rename. The environment codecs are in `otasync_core::bootenv`.

mod config;
mod custom;
mod fw_env;
mod grub;
mod uboot;

#[cfg(test)]
mod tests;

pub(crate) use config::BootloaderConfig;

use otasync_core::bootenv::EnvError;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// One slot's boot state as the bootloader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SlotBootState {
    /// The slot group's bootloader name (e.g. `A`).
    pub(crate) bootname: String,
    /// Whether the boot order lists it.
    pub(crate) in_order: bool,
    /// Boots the bootloader will still try (GRUB: 1 or 0).
    pub(crate) attempts_left: u32,
    /// Whether the bootloader would boot it: listed and with attempts left (RAUC "good").
    pub(crate) good: bool,
}

/// The boot order and every configured bootname's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BootState {
    /// Bootnames in the order the bootloader tries them (empty when the environment does not
    /// set one: the boot script's default applies).
    pub(crate) order: Vec<String>,
    /// One entry per configured bootname, in the order given to [`open`].
    pub(crate) slots: Vec<SlotBootState>,
}

/// A bootloader the agent can switch slots with (`Send + Sync` so that the update can hold
/// one while its writer threads run).
pub(crate) trait Bootloader: Send + Sync {
    /// Reads the current state.
    fn state(&mut self) -> Result<BootState, BootError>;
    /// One atomic commit: remove `bootname` from the order and zero its attempts (RAUC
    /// "bad"; GRUB: `x_OK=0 x_TRY=0`, `ORDER` kept).
    fn mark_bad(&mut self, bootname: &str) -> Result<(), BootError>;
    /// One atomic commit: `bootname` first in the order with `boot_attempts_primary` tries
    /// (RAUC "primary").
    fn set_primary(&mut self, bootname: &str) -> Result<(), BootError>;
    /// One atomic commit: `bootname` good with `boot_attempts` tries (RAUC "good").
    fn mark_good(&mut self, bootname: &str) -> Result<(), BootError>;
}

/// Opens the configured backend for these bootnames (e.g. `["A", "B"]`).
pub(crate) fn open(
    config: &BootloaderConfig,
    bootnames: &[String],
) -> Result<Box<dyn Bootloader>, BootError> {
    config.validate().map_err(BootError::Config)?;
    check_bootnames(bootnames)?;
    let bootnames = bootnames.to_vec();
    Ok(match config {
        BootloaderConfig::Uboot {
            fw_env_config,
            boot_attempts,
            boot_attempts_primary,
            allow_nonredundant_env,
        } => Box::new(uboot::UbootBackend::open(
            fw_env_config,
            uboot::Attempts {
                good: *boot_attempts,
                primary: *boot_attempts_primary,
            },
            *allow_nonredundant_env,
            bootnames,
        )?),
        BootloaderConfig::Grub { grubenv } => {
            Box::new(grub::GrubBackend::new(grubenv.clone(), bootnames))
        }
        BootloaderConfig::Custom {
            script,
            boot_attempts,
        } => Box::new(custom::CustomBackend::new(
            script.clone(),
            *boot_attempts,
            bootnames,
        )),
    })
}

/// Bootnames must be distinct, and usable inside variable names and space-separated lists.
fn check_bootnames(bootnames: &[String]) -> Result<(), BootError> {
    if bootnames.is_empty() {
        return Err(BootError::Config("no bootnames configured".into()));
    }
    for (i, name) in bootnames.iter().enumerate() {
        let usable = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !usable {
            return Err(BootError::Config(format!(
                "bootname {name:?} must be non-empty ASCII letters, digits, '_', '-' or '.'"
            )));
        }
        if bootnames[..i].contains(name) {
            return Err(BootError::Config(format!("bootname {name:?} given twice")));
        }
    }
    Ok(())
}

/// `bootname` if it is one of `bootnames`, else a configuration error.
fn known<'a>(bootnames: &[String], bootname: &'a str) -> Result<&'a str, BootError> {
    match bootnames.iter().any(|b| b == bootname) {
        true => Ok(bootname),
        false => Err(BootError::Config(format!(
            "unknown bootname {bootname:?} (configured: {})",
            bootnames.join(", ")
        ))),
    }
}

/// Splits a boot order variable into bootnames.
fn split_order(value: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(value)
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect()
}

/// What a bootloader operation can fail with.
#[derive(Debug)]
pub(crate) enum BootError {
    /// A system call on `path` failed while `action`.
    Io {
        /// The file or device concerned.
        path: PathBuf,
        /// What was being done (e.g. "reading environment copy 1").
        action: String,
        /// What failed.
        source: io::Error,
    },
    /// The environment at `path` cannot be read or the new variables cannot be written in
    /// its format.
    Env {
        /// The environment file or device.
        path: PathBuf,
        /// What is wrong.
        source: EnvError,
    },
    /// Neither copy of the redundant U-Boot environment has a valid CRC: U-Boot boots with
    /// its built-in default environment (RAUC's script then defaults to `BOOT_ORDER="A B"`
    /// with 3 tries each). The agent does not write over it: an environment holding only its
    /// own variables would lose the board's (`bootcmd`…).
    NoValidEnv {
        /// The first copy's device.
        path: PathBuf,
    },
    /// The configuration (`fw_env.config`, bootnames, backend settings) is unusable.
    Config(String),
    /// The custom backend script failed or printed something unexpected.
    Script {
        /// The script.
        script: PathBuf,
        /// Its arguments.
        args: String,
        /// How it failed (exit status, unexpected output).
        reason: String,
        /// The beginning of its standard error.
        stderr: String,
    },
    /// Reading the environment back after a write did not give what was written.
    Verify {
        /// The environment file or device.
        path: PathBuf,
        /// What differed.
        reason: String,
    },
}

impl BootError {
    /// An [`BootError::Io`] on `path`.
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: impl Into<String>,
        source: io::Error,
    ) -> Self {
        Self::Io {
            path: path.into(),
            action: action.into(),
            source,
        }
    }
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io {
                path,
                action,
                source,
            } if path.as_os_str().is_empty() => write!(f, "{action}: {source}"),
            Self::Io {
                path,
                action,
                source,
            } => write!(f, "{action} {}: {source}", path.display()),
            Self::Env { path, source } => {
                write!(f, "bootloader environment {}: {source}", path.display())
            }
            Self::NoValidEnv { path } => write!(
                f,
                "U-Boot environment {}: neither copy is valid, U-Boot boots with its built-in \
                 default environment; refusing to write over it",
                path.display()
            ),
            Self::Config(message) => write!(f, "bootloader configuration: {message}"),
            Self::Script {
                script,
                args,
                reason,
                stderr,
            } => {
                write!(f, "{} {args}: {reason}", script.display())?;
                match stderr.trim() {
                    "" => Ok(()),
                    text => write!(f, ": {text}"),
                }
            }
            Self::Verify { path, reason } => write!(
                f,
                "bootloader environment {}: read-back after writing failed: {reason}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for BootError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Env { source, .. } => Some(source),
            _ => None,
        }
    }
}
