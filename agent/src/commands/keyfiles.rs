//! What the signing verbs share: reading capped inputs and keys, writing keys and signed files,
//! times on the command line, and mapping the signing layer's errors.

use crate::error::{Error, IoContext, Result};
use crate::fsutil::TempFile;
use otasync_signing::{PublicKey, SecretKey, Timestamp};
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Largest key file read: a signify key is about 200 bytes.
const MAX_KEY_FILE: u64 = 4096;

/// Reads a whole file, refusing more than `limit` bytes (as the signing layer would, S10).
pub(crate) fn read_capped(path: &Path, limit: usize) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .at("opening", path)?
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .at("reading", path)?;
    if bytes.len() > limit {
        return Err(signing_error(
            path,
            otasync_signing::Error::TooLarge {
                what: "file",
                limit,
            },
        ));
    }
    Ok(bytes)
}

fn read_key_text(path: &Path) -> Result<String> {
    let bytes = read_capped(path, MAX_KEY_FILE as usize)?;
    String::from_utf8(bytes).map_err(|_| Error::InvalidInput {
        path: path.display().to_string(),
        reason: "not a signify key file (not UTF-8)".into(),
    })
}

/// Reads a signify `.sec` file.
pub(crate) fn read_secret_key(path: &Path) -> Result<SecretKey> {
    SecretKey::from_file(&read_key_text(path)?).map_err(|e| signing_error(path, e))
}

/// Reads a signify `.pub` file.
pub(crate) fn read_public_key(path: &Path) -> Result<PublicKey> {
    PublicKey::from_file(&read_key_text(path)?).map_err(|e| signing_error(path, e))
}

/// Creates `path` with `mode`, refusing to replace an existing file (keys are never
/// overwritten by accident).
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .at("creating", path)?;
    file.write_all(bytes).at("writing", path)?;
    file.sync_all().at("syncing", path)
}

/// Atomically replaces `path` with `bytes` (mode 0644 before umask).
pub(crate) fn write_replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let temp = TempFile::create_for(path, 0o644)?;
    (&mut temp.file()).write_all(bytes).at("writing", path)?;
    temp.commit()
}

/// The detached signature file of `path` unless given: `PATH.sig`.
pub(crate) fn signature_path(path: &Path, given: Option<&Path>) -> PathBuf {
    given.map(Path::to_owned).unwrap_or_else(|| {
        let mut name = path.as_os_str().to_owned();
        name.push(".sig");
        name.into()
    })
}

/// Names `path` in a signing-layer error.
pub(crate) fn signing_error(path: &Path, source: otasync_signing::Error) -> Error {
    Error::Signing {
        path: path.display().to_string(),
        source,
    }
}

/// Parses a `YYYY-MM-DDTHH:MM:SSZ` command-line time (a clap value parser).
pub(crate) fn parse_time(text: &str) -> std::result::Result<Timestamp, String> {
    Timestamp::parse(text).ok_or_else(|| "expected a UTC time YYYY-MM-DDTHH:MM:SSZ".into())
}

/// The system clock, read once.
pub(crate) fn system_time() -> Timestamp {
    Timestamp(unix_seconds(SystemTime::now()))
}

/// The running image's build time: the modification time of `/usr/lib/clock-epoch` (the
/// systemd convention), or 1970 when absent.
pub(crate) fn build_epoch() -> Timestamp {
    let modified = std::fs::metadata("/usr/lib/clock-epoch").and_then(|m| m.modified());
    Timestamp(modified.map(unix_seconds).unwrap_or(0))
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
