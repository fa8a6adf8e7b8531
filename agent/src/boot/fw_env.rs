//! `fw_env.config` and the environment copies it names (libubootenv `libuboot_read_config`,
//! `check_env_device`, `devread`/`devwrite`, `fileprotect`; ota-agent.md §3.2).
//!
//! ```text
//! # device          offset    env size  [sector size] [sector count] [disable lock]
//! /dev/mmcblk0      0x3c0000  0x4000
//! /dev/mmcblk0      -0x4000   0x4000
//! ```
//!
//! One line is a single environment, two lines a redundant one (the copies may be in one
//! file or device or in two). Lines beginning with `#` are comments. Offsets are C integers
//! (`0x` hex, leading `0` octal, else decimal); a negative offset counts from the end of the
//! device. Sizes are hex with or without `0x`, as `sscanf("%zx")` reads them. Files and block
//! devices are supported; MTD and UBI devices are not.
//!
//! Access is serialised with `fw_printenv`/`fw_setenv` through `flock` on
//! `/var/lock/fw_printenv.lock`, unless a line sets the disable-lock column (libubootenv uses
//! that column only for MTD locking; here it also skips the lock file).

use super::BootError;
use crate::blockdev;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::num::NonZeroU64;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Largest `fw_env.config` read.
const MAX_CONFIG_BYTES: u64 = 64 << 10;
/// Largest environment copy accepted (U-Boot's are 8 KiB to 256 KiB).
pub(super) const MAX_ENV_SIZE: usize = 4 << 20;
/// The lock file U-Boot's tools and libubootenv share.
pub(super) const DEFAULT_LOCK: &str = "/var/lock/fw_printenv.lock";

/// Where one copy of the environment is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CopyLocation {
    /// File or block device.
    pub(super) device: PathBuf,
    /// Byte offset; negative counts back from the end of the device.
    pub(super) offset: i64,
    /// Size of the copy, header included.
    pub(super) size: usize,
    /// The disable-lock column was set (non-zero).
    pub(super) disable_lock: bool,
}

/// Reads and parses the `fw_env.config` at `path`.
pub(super) fn read_config(path: &Path) -> Result<Vec<CopyLocation>, BootError> {
    let file = File::open(path).map_err(|e| BootError::io(path, "opening", e))?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| BootError::io(path, "reading", e))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(BootError::Config(format!(
            "{} is larger than {MAX_CONFIG_BYTES} bytes",
            path.display()
        )));
    }
    parse_config(&text).map_err(|e| BootError::Config(format!("{}: {e}", path.display())))
}

/// Parses `fw_env.config` text into one or two copies of equal size.
pub(super) fn parse_config(text: &str) -> Result<Vec<CopyLocation>, String> {
    let mut copies = Vec::new();
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        if line.starts_with('#') {
            continue;
        }
        // Like sscanf, stop at a trailing comment.
        let fields: Vec<&str> = line
            .split_ascii_whitespace()
            .take_while(|f| !f.starts_with('#'))
            .collect();
        if fields.is_empty() {
            continue;
        }
        let field = |i: usize, what: &str, parse: fn(&str) -> Option<i64>| {
            fields.get(i).map_or(Ok(None), |f| match parse(f) {
                Some(v) => Ok(Some(v)),
                None => Err(format!("line {number}: bad {what} {f:?}")),
            })
        };
        if fields.len() < 3 {
            return Err(format!(
                "line {number}: needs a device, an offset and a size"
            ));
        }
        let device = fields[0];
        if fields.len() > 6 {
            return Err(format!("line {number}: more than 6 columns"));
        }
        let offset = field(1, "offset", parse_c_integer)?.unwrap_or_default();
        let size = field(2, "size", parse_hex)?.unwrap_or_default();
        field(3, "sector size", parse_hex)?;
        field(4, "sector count", parse_hex)?;
        let disable_lock = field(5, "disable-lock flag", parse_decimal)?.unwrap_or(0) != 0;
        if device.starts_with("/dev/mtd") || device.starts_with("/dev/ubi") {
            return Err(format!(
                "line {number}: {device}: MTD and UBI environments are not supported (files and \
                 block devices are)"
            ));
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|s| (6..=MAX_ENV_SIZE).contains(s))
            .ok_or_else(|| {
                format!("line {number}: environment size {size:#x} is not in 6..={MAX_ENV_SIZE:#x}")
            })?;
        copies.push(CopyLocation {
            device: PathBuf::from(device),
            offset,
            size,
            disable_lock,
        });
    }
    match copies.as_slice() {
        [] => Err("no environment configured".into()),
        [_] => Ok(copies),
        [a, b] if a.size != b.size => Err(format!(
            "the two copies differ in size ({:#x} and {:#x})",
            a.size, b.size
        )),
        [_, _] => Ok(copies),
        _ => Err("more than two environment lines".into()),
    }
}

/// A C integer as `strtoll(s, NULL, 0)` reads a whole token: optional sign, then `0x` hex,
/// leading-`0` octal or decimal.
fn parse_c_integer(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => (16, hex),
        None if digits.len() > 1 && digits.starts_with('0') => (8, &digits[1..]),
        None => (10, digits),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    let value = i64::try_from(magnitude).ok()?;
    Some(if negative { -value } else { value })
}

/// A hex number as `sscanf("%x")` reads a whole token, `0x` optional.
fn parse_hex(s: &str) -> Option<i64> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    match !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        true => i64::from_str_radix(digits, 16).ok(),
        false => None,
    }
}

/// A decimal number (`sscanf("%d")`).
fn parse_decimal(s: &str) -> Option<i64> {
    s.parse().ok()
}

/// The environment copies of one `fw_env.config`, read and written in place.
#[derive(Debug)]
pub(super) struct EnvDevices {
    copies: Vec<CopyLocation>,
    /// The lock file, or `None` when a line disables locking.
    lock: Option<PathBuf>,
}

impl EnvDevices {
    /// The copies `copies`, locked through `lock_file` unless a line disables locking.
    pub(super) fn new(copies: Vec<CopyLocation>, lock_file: PathBuf) -> Self {
        let lock = match copies.iter().any(|c| c.disable_lock) {
            true => None,
            false => Some(lock_file),
        };
        Self { copies, lock }
    }

    /// Number of copies (1 or 2).
    pub(super) fn count(&self) -> usize {
        self.copies.len()
    }

    /// Size of each copy.
    pub(super) fn size(&self) -> usize {
        self.copies[0].size
    }

    /// The device of copy `i`.
    pub(super) fn device(&self, i: usize) -> &Path {
        &self.copies[i].device
    }

    /// Takes the lock `fw_setenv` takes (creating its directory if needed); held until the
    /// returned file is dropped.
    pub(super) fn lock(&self) -> Result<Option<File>, BootError> {
        let Some(path) = &self.lock else {
            return Ok(None);
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)
                .map_err(|e| BootError::io(dir, "creating lock directory", e))?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o666)
            .open(path)
            .map_err(|e| BootError::io(path, "opening lock file", e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| BootError::io(path, "locking", e.into()))?;
        Ok(Some(file))
    }

    /// Reads copy `i`, exactly its size.
    pub(super) fn read(&self, i: usize) -> Result<Vec<u8>, BootError> {
        let copy = &self.copies[i];
        let action = format!("reading environment copy {i} of");
        let file = File::open(&copy.device).map_err(|e| BootError::io(&copy.device, &action, e))?;
        let offset = resolve_offset(&file, copy)?;
        let mut bytes = vec![0u8; copy.size];
        file.read_exact_at(&mut bytes, offset)
            .map_err(|e| BootError::io(&copy.device, &action, e))?;
        Ok(bytes)
    }

    /// Writes copy `i` in place and makes it durable (`fsync`), lifting `force_ro` of an eMMC
    /// boot partition for the time of the write; then drops the cached pages so that a
    /// read-back comes from the device.
    pub(super) fn write(&self, i: usize, bytes: &[u8]) -> Result<(), BootError> {
        let copy = &self.copies[i];
        debug_assert_eq!(bytes.len(), copy.size);
        let action = format!("writing environment copy {i} to");
        let _writable = ForceRo::lift(&copy.device)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&copy.device)
            .map_err(|e| BootError::io(&copy.device, &action, e))?;
        let offset = resolve_offset(&file, copy)?;
        file.write_all_at(bytes, offset)
            .and_then(|()| file.sync_all())
            .map_err(|e| BootError::io(&copy.device, &action, e))?;
        let len = NonZeroU64::new(bytes.len() as u64);
        if let Err(e) = rustix::fs::fadvise(&file, offset, len, rustix::fs::Advice::DontNeed) {
            log::debug!("{}: dropping cached pages: {e}", copy.device.display());
        }
        Ok(())
    }
}

/// The absolute offset of `copy` in `file` (negative offsets count from the end), checked to
/// leave room for the whole copy.
fn resolve_offset(file: &File, copy: &CopyLocation) -> Result<u64, BootError> {
    let device_size =
        blockdev::size(file).map_err(|e| BootError::io(&copy.device, "reading the size of", e))?;
    let offset = match copy.offset {
        o if o >= 0 => Some(o.unsigned_abs()),
        o => device_size.checked_sub(o.unsigned_abs()),
    };
    match offset {
        Some(o) if o.saturating_add(copy.size as u64) <= device_size => Ok(o),
        _ => Err(BootError::Config(format!(
            "{}: an environment of {:#x} bytes at offset {} does not fit in {device_size} bytes",
            copy.device.display(),
            copy.size,
            copy.offset
        ))),
    }
}

/// The `force_ro` switch of an eMMC boot partition (`/dev/mmcblkNbootM`), as libubootenv's
/// `fileprotect` finds it; `None` for other devices.
pub(super) fn force_ro_path(device: &Path) -> Option<PathBuf> {
    let resolved = fs::canonicalize(device).unwrap_or_else(|_| device.to_owned());
    let name = resolved
        .strip_prefix("/dev/block")
        .or_else(|_| resolved.strip_prefix("/dev"))
        .ok()?
        .to_str()?;
    let rest = name.strip_prefix("mmcblk")?;
    let (disk, part) = rest.split_once("boot")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(disk) && digits(part))
        .then(|| Path::new("/sys/class/block").join(name).join("force_ro"))
}

/// While alive, an eMMC boot partition that was read-only is writable; dropping it restores
/// the read-only switch.
struct ForceRo {
    path: PathBuf,
}

impl ForceRo {
    /// Clears `force_ro` of `device` if it has one and it is set.
    fn lift(device: &Path) -> Result<Option<Self>, BootError> {
        let Some(path) = force_ro_path(device) else {
            return Ok(None);
        };
        match fs::read_to_string(&path) {
            Ok(value) if value.trim() == "1" => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(BootError::io(&path, "reading", e)),
        }
        fs::write(&path, "0").map_err(|e| BootError::io(&path, "clearing", e))?;
        Ok(Some(Self { path }))
    }
}

impl Drop for ForceRo {
    fn drop(&mut self) {
        if let Err(e) = fs::write(&self.path, "1") {
            log::warn!("{}: restoring read-only: {e}", self.path.display());
        }
    }
}
