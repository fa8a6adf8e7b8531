//! The device configuration (`/etc/otasync/system.json`): what this device is, its A/B slots,
//! how the booted slot is detected, its bootloader, where releases come from and what it
//! trusts. Parsed strictly (unknown fields are errors) and validated as a whole by
//! [`DeviceConfig::load`]; `otasync check-config` runs the same checks.

use crate::boot::BootloaderConfig;
use crate::error::{Error, IoContext, Result};
use crate::store::http::is_url;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where the agent looks for its configuration when `--config` is not given.
pub(crate) const DEFAULT_CONFIG: &str = "/etc/otasync/system.json";
/// Largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 256 << 10;
/// Most slots a device may declare.
const MAX_SLOTS: usize = 32;

/// The device configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceConfig {
    /// Must equal a manifest's `product` (S4).
    pub(crate) compatible: String,
    /// Must be in a manifest's `hardware` list when it has one (S4).
    #[serde(default)]
    pub(crate) hardware_id: Option<String>,
    /// This device's id, for manifests restricted to `devices` (S21).
    #[serde(default)]
    pub(crate) device_id: Option<String>,
    /// Groups this device belongs to (S21).
    #[serde(default)]
    pub(crate) groups: Vec<String>,
    /// Every slot: one per class and bootname.
    pub(crate) slots: Vec<SlotConfig>,
    /// How the booted slot is found.
    #[serde(default)]
    pub(crate) booted: BootedConfig,
    /// The bootloader and its environment.
    pub(crate) bootloader: BootloaderConfig,
    /// URL (or local path) of the signed manifest; `<URL>.sig` is its signature file.
    pub(crate) release_url: String,
    /// Chunk stores; when given they replace the manifest's `chunk_stores` (S16).
    #[serde(default)]
    pub(crate) stores: Vec<String>,
    /// TLS settings.
    #[serde(default)]
    pub(crate) tls: TlsConfig,
    /// The trust root shipped with the image (rotations are kept in `state_dir`).
    pub(crate) trust_root: PathBuf,
    /// Where the journal, history and cached indexes live: a non-redundant data partition.
    pub(crate) state_dir: PathBuf,
    /// Seconds between polls of `otasync daemon` (jittered ±10 %).
    #[serde(default = "default_poll_interval")]
    pub(crate) poll_interval_s: u64,
    /// A file holding the build time of the running image (seconds since the epoch, or an
    /// RFC 3339 time): the trusted time can never be earlier (S7, §1.6).
    #[serde(default)]
    pub(crate) build_epoch_file: Option<PathBuf>,
    /// Most installation attempts of one manifest before it is given up (Mender's loop breaker).
    #[serde(default = "default_max_attempts")]
    pub(crate) max_attempts: u32,
    /// Overall time limit of one update, in seconds (S18).
    #[serde(default = "default_deadline")]
    pub(crate) deadline_s: u64,
    /// A transfer slower than this many bytes per second is abandoned and retried (S18).
    #[serde(default = "default_min_rate")]
    pub(crate) min_rate_bps: u64,
    /// Parallel chunk requests (each worker holds a few chunks' buffers: about 3 MiB).
    #[serde(default = "default_concurrency")]
    pub(crate) concurrency: usize,
}

/// One slot.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct SlotConfig {
    /// What it holds: a manifest's slot name (e.g. `rootfs`).
    pub(crate) class: String,
    /// Which A/B group it belongs to: the bootloader's name for it (e.g. `A`).
    pub(crate) bootname: String,
    /// The block device or file.
    pub(crate) device: PathBuf,
}

/// How the booted slot is detected.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BootedConfig {
    /// The kernel command line: `otasync.slot=`, `rauc.slot=`, else `root=`.
    #[serde(default = "default_cmdline")]
    pub(crate) cmdline: PathBuf,
    /// Also compare the device of `/` with the slot devices (Mender's check).
    #[serde(default)]
    pub(crate) check_root_device: bool,
    /// The kernel's boot id: tells a reboot apart from a restart of the agent.
    #[serde(default = "default_boot_id")]
    pub(crate) boot_id: PathBuf,
}

/// TLS settings for every request.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsConfig {
    /// PEM file of the CA certificates trusted; no system store is used (S22).
    #[serde(default)]
    pub(crate) ca: Option<PathBuf>,
    /// Client certificate chain (PEM), for mutual TLS.
    #[serde(default)]
    pub(crate) client_cert: Option<PathBuf>,
    /// Client key (PEM).
    #[serde(default)]
    pub(crate) client_key: Option<PathBuf>,
    /// Refuse plain `http://` URLs.
    #[serde(default)]
    pub(crate) https_only: bool,
}

impl Default for BootedConfig {
    fn default() -> Self {
        Self {
            cmdline: default_cmdline(),
            check_root_device: false,
            boot_id: default_boot_id(),
        }
    }
}

fn default_cmdline() -> PathBuf {
    "/proc/cmdline".into()
}

fn default_boot_id() -> PathBuf {
    "/proc/sys/kernel/random/boot_id".into()
}

fn default_poll_interval() -> u64 {
    3600
}

fn default_max_attempts() -> u32 {
    5
}

fn default_deadline() -> u64 {
    4 * 3600
}

fn default_min_rate() -> u64 {
    1024
}

fn default_concurrency() -> usize {
    4
}

impl DeviceConfig {
    /// Reads, parses and validates the configuration at `path`.
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .at("opening the configuration", path)?
            .take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .at("reading", path)?;
        let invalid = |reason: String| Error::InvalidInput {
            path: path.display().to_string(),
            reason,
        };
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(invalid(format!(
                "larger than the {MAX_CONFIG_BYTES}-byte limit"
            )));
        }
        let config: Self = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        config.validate().map_err(invalid)?;
        Ok(config)
    }

    /// Checks what the types cannot: names, slot pairs, URLs, limits.
    fn validate(&self) -> std::result::Result<(), String> {
        if self.compatible.is_empty() {
            return Err("\"compatible\" is empty".into());
        }
        if self.slots.is_empty() || self.slots.len() > MAX_SLOTS {
            return Err(format!("between 1 and {MAX_SLOTS} slots are needed"));
        }
        let mut seen = BTreeSet::new();
        for slot in &self.slots {
            for (what, name) in [("class", &slot.class), ("bootname", &slot.bootname)] {
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
                {
                    return Err(format!(
                        "slot {what} {name:?}: use letters, digits, '_', '-' and '.'"
                    ));
                }
            }
            if !seen.insert((&slot.class, &slot.bootname)) {
                return Err(format!(
                    "two slots of class {:?} with bootname {:?}",
                    slot.class, slot.bootname
                ));
            }
            if !slot.device.is_absolute() {
                return Err(format!(
                    "slot device {} is not an absolute path",
                    slot.device.display()
                ));
            }
        }
        let bootnames = self.bootnames();
        if bootnames.len() < 2 {
            return Err("A/B updates need slots with at least two bootnames".into());
        }
        for class in self.classes() {
            for bootname in &bootnames {
                if self.slot(&class, bootname).is_none() {
                    return Err(format!(
                        "no slot of class {class:?} for bootname {bootname:?}"
                    ));
                }
            }
        }
        self.bootloader.validate()?;
        if self.release_url.is_empty() {
            return Err("\"release_url\" is empty".into());
        }
        for url in std::iter::once(&self.release_url).chain(&self.stores) {
            if self.tls.https_only && is_url(url) && !url.starts_with("https://") {
                return Err(format!("{url}: not HTTPS, and \"https_only\" is set"));
            }
        }
        if self.tls.client_cert.is_some() != self.tls.client_key.is_some() {
            return Err("\"client_cert\" and \"client_key\" go together".into());
        }
        if !self.state_dir.is_absolute() {
            return Err("\"state_dir\" must be an absolute path".into());
        }
        if !(1..=64).contains(&self.concurrency) {
            return Err("\"concurrency\" must be between 1 and 64".into());
        }
        if self.poll_interval_s == 0 || self.max_attempts == 0 || self.deadline_s == 0 {
            return Err(
                "\"poll_interval_s\", \"max_attempts\" and \"deadline_s\" must be positive".into(),
            );
        }
        Ok(())
    }

    /// The bootnames, sorted (e.g. `["A", "B"]`).
    pub(crate) fn bootnames(&self) -> Vec<String> {
        let names: BTreeSet<&String> = self.slots.iter().map(|s| &s.bootname).collect();
        names.into_iter().cloned().collect()
    }

    /// The slot classes, sorted.
    pub(crate) fn classes(&self) -> Vec<String> {
        let names: BTreeSet<&String> = self.slots.iter().map(|s| &s.class).collect();
        names.into_iter().cloned().collect()
    }

    /// The slot of `class` in group `bootname`.
    pub(crate) fn slot(&self, class: &str, bootname: &str) -> Option<&SlotConfig> {
        self.slots
            .iter()
            .find(|s| s.class == class && s.bootname == bootname)
    }

    /// The device for the signing policy's bindings.
    pub(crate) fn device(&self) -> otasync_signing::Device {
        otasync_signing::Device {
            compatible: self.compatible.clone(),
            hardware_id: self.hardware_id.clone(),
            device_id: self.device_id.clone(),
            groups: self.groups.clone(),
        }
    }
}
