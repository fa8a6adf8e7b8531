//! Whether this device should install a manifest: signatures first, then bindings, versions and
//! time (ota-agent.md §1.5, §1.6).

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::root::{Rotation, TrustRoot};
use crate::time::Timestamp;
use alloc::string::String;
use alloc::vec::Vec;

/// What the device is, for the manifest's bindings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Device {
    /// Must equal the manifest's `product` (S4).
    pub compatible: String,
    /// Must be in the manifest's `hardware` list when it has one (S4).
    pub hardware_id: Option<String>,
    /// With `groups`: one of them must be in the manifest's `devices` list when it has one (S21).
    pub device_id: Option<String>,
    /// Groups the device belongs to.
    pub groups: Vec<String>,
}

/// What the device persisted from earlier updates (written atomically on the data partition).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Metadata version of the last accepted manifest; 0 when none (S5, reset by S8).
    pub metadata_version: u64,
    /// Lowest `security_version` accepted; raised only at commit (S6).
    pub security_floor: u64,
    /// `issued_at` of the last accepted manifest: a lower bound of the true time (§1.6).
    pub last_issued_at: Timestamp,
}

/// The device's clocks, read once at the start of a run (TUF's fixed update start time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// The system clock, possibly 1970 on a board without RTC.
    pub system: Timestamp,
    /// When the running image was built: time cannot be earlier.
    pub build_epoch: Timestamp,
}

/// A verified manifest that passed the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Newer than the last accepted one: install it, then [`History::accept`] it.
    Update(Manifest),
    /// The same version as the last accepted one: nothing to do, not an error (S5).
    UpToDate(Manifest),
}

impl History {
    /// The trusted time: max(system clock, last accepted `issued_at`, build epoch) (S7).
    pub fn now_floor(&self, clock: Clock) -> Timestamp {
        clock.system.max(clock.build_epoch).max(self.last_issued_at)
    }

    /// Records an accepted manifest: its version and issue time (not its security version).
    pub fn accept(&mut self, manifest: &Manifest) {
        self.metadata_version = manifest.version;
        self.last_issued_at = self.last_issued_at.max(manifest.issued_at);
    }

    /// Raises the security floor once the installed slot is committed (marked good) (S6).
    pub fn commit(&mut self, manifest: &Manifest) {
        self.commit_security_version(manifest.security_version);
    }

    /// [`History::commit`] from the security version alone (as an installation journal keeps it).
    pub fn commit_security_version(&mut self, security_version: u64) {
        self.security_floor = self.security_floor.max(security_version);
    }

    /// Applies a trust root rotation: new release keys reset the metadata version floor, so
    /// that versions inflated by a compromised key do not block the new key's releases (S8).
    pub fn after_rotation(&mut self, rotation: &Rotation) {
        if rotation.release_keys_changed {
            self.metadata_version = 0;
        }
    }
}

/// Verifies and judges a manifest, in this order: size caps, the release threshold over the raw
/// bytes (before any field is parsed), the trust root's expiry, parsing, product, hardware and
/// device bindings, expiry against [`History::now_floor`], security version, metadata version.
pub fn verify_manifest(
    root: &TrustRoot,
    manifest: &[u8],
    signature_file: &[u8],
    device: &Device,
    history: &History,
    clock: Clock,
) -> Result<Outcome> {
    let now = history.now_floor(clock);
    root.verify_release(manifest, signature_file)?;
    root.check_expiry(now)?;
    let manifest = Manifest::parse(manifest)?;
    check_bindings(&manifest, device)?;
    if manifest.expires <= now {
        return Err(Error::Expired {
            what: "manifest",
            expires: manifest.expires,
            now,
        });
    }
    if manifest.security_version < history.security_floor {
        return Err(Error::RollbackRejected {
            what: "security version",
            found: manifest.security_version,
            minimum: history.security_floor,
        });
    }
    match manifest.version.cmp(&history.metadata_version) {
        core::cmp::Ordering::Greater => Ok(Outcome::Update(manifest)),
        core::cmp::Ordering::Equal => Ok(Outcome::UpToDate(manifest)),
        core::cmp::Ordering::Less => Err(Error::RollbackRejected {
            what: "metadata version",
            found: manifest.version,
            minimum: history.metadata_version,
        }),
    }
}

/// Product, hardware and device bindings (S4, S21).
fn check_bindings(manifest: &Manifest, device: &Device) -> Result<()> {
    let incompatible = |what, device: &str| Error::Incompatible {
        what,
        device: device.into(),
    };
    if manifest.product != device.compatible {
        return Err(incompatible("product", &device.compatible));
    }
    if let Some(hardware) = &manifest.hardware {
        let id = device.hardware_id.as_deref().unwrap_or_default();
        if !hardware.iter().any(|h| h == id) {
            return Err(incompatible("hardware", id));
        }
    }
    if let Some(devices) = &manifest.devices {
        let mine = device.device_id.iter().chain(&device.groups);
        if !mine.clone().any(|d| devices.contains(d)) {
            let names: Vec<&str> = mine.map(String::as_str).collect();
            return Err(incompatible("devices", &names.join(",")));
        }
    }
    Ok(())
}
