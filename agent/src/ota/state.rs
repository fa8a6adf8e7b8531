//! What the agent persists in its state directory (on the data partition), all in one JSON
//! file replaced atomically (temporary file, fsync, rename, fsync of the directory): the
//! signing history (versions, security floor, trusted time), what each slot holds, and the
//! journal of the installation in progress or last finished. Verified artefacts of the
//! current installation (manifest, signature, indexes) sit beside it under `pending/`.

use crate::error::{Error, IoContext, Result};
use crate::fsutil::TempFile;
use otasync_signing::{History, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The state file's name in the state directory.
const STATE_FILE: &str = "state.json";
/// Largest state file read.
const MAX_STATE_BYTES: u64 = 1 << 20;

/// Where an installation is (ota-agent.md §2.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Phase {
    /// The target is marked bad and being written.
    Writing,
    /// Every slot is written and its image hash verified.
    Verified,
    /// The bootloader boots the target next, with limited attempts.
    Activated,
    /// Running the new slot, not yet marked good.
    Trial,
    /// Marked good: the security floor is raised.
    Committed,
    /// The installation failed, or the new slot was marked bad.
    Failed,
    /// The bootloader fell back to the previous slot before the new one was committed.
    RolledBack,
}

/// The installation in progress, or the last one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Journal {
    /// Where it is.
    pub(crate) phase: Phase,
    /// SHA-256 of the manifest's bytes: another manifest restarts the installation (S9).
    pub(crate) manifest_sha256: String,
    /// The manifest's metadata version.
    pub(crate) version: u64,
    /// The manifest's security version, made the floor at commit.
    pub(crate) security_version: u64,
    /// The manifest's `issued_at`.
    pub(crate) issued_at: u64,
    /// The human release name.
    pub(crate) release: String,
    /// The bootname being installed.
    pub(crate) target: String,
    /// The bootname that was running when it started.
    pub(crate) booted: String,
    /// Per slot class: chunks known written and synced from the start of the image.
    #[serde(default)]
    pub(crate) next_chunk: BTreeMap<String, u64>,
    /// Per slot class: the image was fully written and its hash verified.
    #[serde(default)]
    pub(crate) verified: Vec<String>,
    /// Runs that worked on this manifest.
    pub(crate) attempts: u32,
    /// Why it failed, when it did.
    #[serde(default)]
    pub(crate) error: Option<String>,
    /// The boot id when the target was activated: a different one means a reboot happened.
    #[serde(default)]
    pub(crate) activated_boot_id: Option<String>,
}

/// Byte counts of the last installation run, for `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Transfer {
    /// Bytes of all images being installed.
    pub(crate) bytes_total: u64,
    /// Bytes of them known in place.
    pub(crate) bytes_done: u64,
    /// Bytes taken from seeds (the running slot, the target's old content).
    pub(crate) bytes_from_seeds: u64,
    /// Bytes already in place in the target (earlier attempts, same-offset content).
    pub(crate) bytes_in_place: u64,
    /// Uncompressed bytes of the chunks fetched from stores.
    pub(crate) bytes_from_network: u64,
    /// What was downloaded: compressed chunks plus manifest, signature and indexes.
    pub(crate) bytes_downloaded: u64,
    /// Chunks fetched.
    pub(crate) chunks_fetched: u64,
    /// Times a resumed image did not verify, so that every chunk was checked again (a
    /// checkpoint vouched for data the medium lost).
    #[serde(default)]
    pub(crate) rechecks: u64,
}

/// What a slot holds, as far as the agent knows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SlotRecord {
    /// Release name installed there.
    pub(crate) release: String,
    /// Manifest version installed there.
    pub(crate) version: u64,
    /// `ok` (verified), `writing`, `bad`.
    pub(crate) status: String,
}

/// The persisted signing history (see [`otasync_signing::History`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryRecord {
    /// Last accepted metadata version.
    pub(crate) metadata_version: u64,
    /// Lowest acceptable security version.
    pub(crate) security_floor: u64,
    /// Latest `issued_at` accepted, seconds since the epoch.
    pub(crate) last_issued_at: u64,
}

/// Everything in `state.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct State {
    /// Versions, floor and trusted time.
    pub(crate) history: HistoryRecord,
    /// Per bootname, then per class.
    #[serde(default)]
    pub(crate) slots: BTreeMap<String, BTreeMap<String, SlotRecord>>,
    /// The current or last installation.
    #[serde(default)]
    pub(crate) journal: Option<Journal>,
    /// The outcome of the last run of `update`, for `status`.
    #[serde(default)]
    pub(crate) last_result: Option<String>,
    /// Byte counts of the current or last installation.
    #[serde(default)]
    pub(crate) transfer: Transfer,
}

impl HistoryRecord {
    /// As the signing policy's type.
    pub(crate) fn to_history(self) -> History {
        History {
            metadata_version: self.metadata_version,
            security_floor: self.security_floor,
            last_issued_at: Timestamp(self.last_issued_at),
        }
    }

    /// From the signing policy's type.
    pub(crate) fn from_history(history: History) -> Self {
        Self {
            metadata_version: history.metadata_version,
            security_floor: history.security_floor,
            last_issued_at: history.last_issued_at.0,
        }
    }
}

/// Called before every write to the state directory; an error there is a simulated power cut
/// (the write does not happen). Only the power-loss tests set one.
pub(crate) type Fault = std::sync::Arc<dyn Fn() -> std::io::Result<()> + Send + Sync>;

/// The state directory.
#[derive(Clone)]
pub(crate) struct StateDir {
    root: PathBuf,
    fault: Option<Fault>,
}

impl StateDir {
    /// The state directory at `root`, created if missing.
    pub(crate) fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root.join("pending")).at("creating", root)?;
        std::fs::create_dir_all(root.join("slots")).at("creating", root)?;
        Ok(Self {
            root: root.to_owned(),
            fault: None,
        })
    }

    /// The same directory, with a power-cut injection point before every write.
    #[cfg(test)]
    pub(crate) fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// A file in the state directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Reads the state; a missing file is the empty state, a damaged one an error (we never
    /// silently forget a security floor).
    pub(crate) fn load(&self) -> Result<State> {
        let path = self.path(STATE_FILE);
        let mut bytes = Vec::new();
        match std::fs::File::open(&path) {
            Ok(file) => file
                .take(MAX_STATE_BYTES + 1)
                .read_to_end(&mut bytes)
                .at("reading", &path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(e).at("opening", &path),
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::InvalidInput {
            path: path.display().to_string(),
            reason: format!("damaged agent state: {e}"),
        })
    }

    /// Replaces the state atomically and durably.
    pub(crate) fn save(&self, state: &State) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| Error::Io {
            context: "encoding the agent state".into(),
            source: std::io::Error::other(e),
        })?;
        self.write_file(STATE_FILE, &bytes)
    }

    /// Writes `name` in the state directory atomically and durably.
    pub(crate) fn write_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(name);
        if let Some(fault) = &self.fault {
            fault().at("writing", &path)?;
        }
        let temp = TempFile::create_for(&path, 0o600)?;
        let mut file = temp.file();
        file.write_all(bytes).at("writing", &path)?;
        temp.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let states = StateDir::open(dir.path()).unwrap();
        assert_eq!(states.load().unwrap(), State::default());
        let mut state = State::default();
        state.history.security_floor = 7;
        state.journal = Some(Journal {
            phase: Phase::Writing,
            manifest_sha256: "ab".into(),
            version: 3,
            security_version: 7,
            issued_at: 1,
            release: "r".into(),
            target: "B".into(),
            booted: "A".into(),
            next_chunk: [("rootfs".to_owned(), 12)].into(),
            verified: vec![],
            attempts: 1,
            error: None,
            activated_boot_id: None,
        });
        states.save(&state).unwrap();
        assert_eq!(states.load().unwrap(), state);
        std::fs::write(states.path(STATE_FILE), b"{\"history\":").unwrap();
        assert!(states.load().unwrap_err().to_string().contains("damaged"));
    }
}
