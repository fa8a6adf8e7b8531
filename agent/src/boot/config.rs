//! The `bootloader` section of the device configuration: which backend, where its
//! environment is, and how many boot attempts a slot gets.
//!
//! ```json
//! {"backend": "uboot", "fw_env_config": "/etc/fw_env.config", "boot_attempts": 3}
//! {"backend": "grub", "grubenv": "/boot/grub/grubenv"}
//! {"backend": "custom", "script": "/usr/lib/otasync/bootloader.sh"}
//! ```

use serde::Deserialize;
use std::path::PathBuf;

/// Largest number of boot attempts (the U-Boot boot script counts them down in hex).
pub(crate) const MAX_BOOT_ATTEMPTS: u32 = 255;

/// The bootloader the agent switches slots with (RAUC's bootloader backends, ota-agent.md
/// §2.2).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum BootloaderConfig {
    /// U-Boot with RAUC's `BOOT_ORDER`/`BOOT_<x>_LEFT` boot script; the environment is read
    /// and written natively at the places `fw_env.config` gives.
    Uboot {
        /// The `fw_env.config` naming the environment copies (one line per copy).
        fw_env_config: PathBuf,
        /// Attempts a slot gets when marked good (RAUC `boot-attempts`).
        #[serde(default = "default_attempts")]
        boot_attempts: u32,
        /// Attempts a slot gets when made primary (RAUC `boot-attempts-primary`).
        #[serde(default = "default_attempts")]
        boot_attempts_primary: u32,
        /// Accept an environment with one copy, which a power cut during a write can destroy.
        #[serde(default)]
        allow_nonredundant_env: bool,
    },
    /// GRUB with RAUC's `ORDER`/`<x>_OK`/`<x>_TRY` `grub.cfg`.
    Grub {
        /// The 1024-byte environment block.
        grubenv: PathBuf,
    },
    /// A script speaking RAUC's custom backend protocol (`get-primary`, `set-primary`,
    /// `get-state`, `set-state`).
    Custom {
        /// The executable.
        script: PathBuf,
        /// Attempts reported for a slot the script calls good.
        #[serde(default = "default_attempts")]
        boot_attempts: u32,
    },
}

fn default_attempts() -> u32 {
    3
}

impl BootloaderConfig {
    /// Checks the values serde cannot: paths not empty, attempts in `1..=255`.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let attempts = |what: &str, n: u32| match n {
            1..=MAX_BOOT_ATTEMPTS => Ok(()),
            _ => Err(format!(
                "bootloader.{what} must be between 1 and {MAX_BOOT_ATTEMPTS}, not {n}"
            )),
        };
        let path = |what: &str, p: &PathBuf| match p.as_os_str().is_empty() {
            true => Err(format!("bootloader.{what} must not be empty")),
            false => Ok(()),
        };
        match self {
            Self::Uboot {
                fw_env_config,
                boot_attempts,
                boot_attempts_primary,
                allow_nonredundant_env: _,
            } => {
                path("fw_env_config", fw_env_config)?;
                attempts("boot_attempts", *boot_attempts)?;
                attempts("boot_attempts_primary", *boot_attempts_primary)
            }
            Self::Grub { grubenv } => path("grubenv", grubenv),
            Self::Custom {
                script,
                boot_attempts,
            } => {
                path("script", script)?;
                attempts("boot_attempts", *boot_attempts)
            }
        }
    }
}
