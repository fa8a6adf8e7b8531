//! Which A/B group is running: from the kernel command line (`otasync.slot=`, RAUC's
//! `rauc.slot=`, else `root=` resolved to a slot device), cross-checked, when configured, with
//! the device that holds `/`. The agent never writes a slot of the booted group.

use super::config::DeviceConfig;
use crate::error::{Error, IoContext, Result};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Largest command line read.
const MAX_CMDLINE: usize = 64 << 10;

/// The bootname of the running group.
pub(crate) fn booted_bootname(config: &DeviceConfig) -> Result<String> {
    let path = &config.booted.cmdline;
    let cmdline = std::fs::read(path).at("reading the kernel command line", path)?;
    let cmdline = String::from_utf8_lossy(&cmdline[..cmdline.len().min(MAX_CMDLINE)]).into_owned();
    let from_cmdline = from_cmdline(config, &cmdline)?;
    let from_root = match config.booted.check_root_device {
        true => from_root_device(config)?,
        false => None,
    };
    match (from_cmdline, from_root) {
        (Some(a), Some(b)) if a != b => Err(Error::Usage(format!(
            "the kernel command line says slot {a} is booted, but / is on a slot of {b}"
        ))),
        (Some(name), _) | (None, Some(name)) => Ok(name),
        (None, None) => Err(Error::Usage(format!(
            "cannot tell which slot is booted: {} has no otasync.slot=, rauc.slot= or root= \
             naming a configured slot",
            path.display()
        ))),
    }
}

/// The bootname named by `otasync.slot=`/`rauc.slot=`, or owning the device of `root=`.
fn from_cmdline(config: &DeviceConfig, cmdline: &str) -> Result<Option<String>> {
    let bootnames = config.bootnames();
    let mut root = None;
    for word in cmdline.split_ascii_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        match key {
            "otasync.slot" | "rauc.slot" => {
                return match bootnames.iter().find(|b| *b == value) {
                    Some(name) => Ok(Some(name.clone())),
                    None => Err(Error::Usage(format!(
                        "the kernel command line names slot {value:?}, which is not configured"
                    ))),
                };
            }
            "root" => root = Some(value.to_owned()),
            _ => {}
        }
    }
    let Some(root) = root else {
        return Ok(None);
    };
    let root_path = match root.split_once('=') {
        Some(("PARTLABEL", label)) => PathBuf::from("/dev/disk/by-partlabel").join(label),
        Some(("PARTUUID", uuid)) => {
            PathBuf::from("/dev/disk/by-partuuid").join(uuid.to_lowercase())
        }
        Some(("UUID", uuid)) => PathBuf::from("/dev/disk/by-uuid").join(uuid.to_lowercase()),
        Some(("LABEL", label)) => PathBuf::from("/dev/disk/by-label").join(label),
        _ => PathBuf::from(&root),
    };
    let Ok(root_real) = root_path.canonicalize() else {
        return Ok(None);
    };
    Ok(config
        .slots
        .iter()
        .find(|s| s.device.canonicalize().is_ok_and(|d| d == root_real))
        .map(|s| s.bootname.clone()))
}

/// The bootname of the slot whose block device holds `/`.
fn from_root_device(config: &DeviceConfig) -> Result<Option<String>> {
    let root_dev = std::fs::metadata("/").at("reading", Path::new("/"))?.dev();
    Ok(config
        .slots
        .iter()
        .find(|s| {
            std::fs::metadata(&s.device)
                .is_ok_and(|m| m.file_type().is_block_device() && m.rdev() == root_dev)
        })
        .map(|s| s.bootname.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> DeviceConfig {
        let json = format!(
            r#"{{"compatible":"x","slots":[
                {{"class":"rootfs","bootname":"A","device":"{0}/a"}},
                {{"class":"rootfs","bootname":"B","device":"{0}/b"}}],
              "booted":{{"cmdline":"{0}/cmdline"}},
              "bootloader":{{"backend":"grub","grubenv":"{0}/grubenv"}},
              "release_url":"http://127.0.0.1/m.json","trust_root":"/r.json","state_dir":"/data"}}"#,
            dir.display()
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn cmdline_keys_and_root_device() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        std::fs::write(dir.path().join("b"), b"").unwrap();
        let check = |line: &str| {
            std::fs::write(dir.path().join("cmdline"), line).unwrap();
            booted_bootname(&config).map_err(|e| e.to_string())
        };
        assert_eq!(check("quiet otasync.slot=B ro").unwrap(), "B");
        assert_eq!(check("rauc.slot=A").unwrap(), "A");
        let root = format!("root={}/b rw", dir.path().display());
        assert_eq!(check(&root).unwrap(), "B");
        assert!(
            check("otasync.slot=C")
                .unwrap_err()
                .contains("not configured")
        );
        assert!(
            check("root=/dev/nowhere")
                .unwrap_err()
                .contains("cannot tell")
        );
    }
}
