//! The GRUB backend: RAUC's variables in `grubenv` (ota-agent.md §2.2, §3.3).
//!
//! - `ORDER`: space-separated bootnames;
//! - `<x>_OK`: 1 when the slot may be booted, 0 when it is bad;
//! - `<x>_TRY`: set to 1 by `grub.cfg` when it boots the slot, back to 0 on mark-good.
//!
//! `grub.cfg` boots the first slot of `ORDER` with `OK=1` and `TRY=0`, so a slot has one try
//! at most. Each operation writes `grubenv.new` (1024 bytes), `fsync`s it, renames it over
//! `grubenv` and `fsync`s the directory. (`grubenv` has no checksum; on FAT the rename is not
//! guaranteed atomic.)

use super::{BootError, BootState, Bootloader, SlotBootState, known, split_order};
use otasync_core::bootenv::{Env, grub};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::PathBuf;

/// The boot order variable.
const ORDER: &str = "ORDER";

/// The `grubenv` file.
#[derive(Debug)]
pub(super) struct GrubBackend {
    path: PathBuf,
    bootnames: Vec<String>,
}

impl GrubBackend {
    /// The environment at `path`, for these bootnames.
    pub(super) fn new(path: PathBuf, bootnames: Vec<String>) -> Self {
        Self { path, bootnames }
    }

    fn read(&self) -> Result<Env, BootError> {
        let file = File::open(&self.path).map_err(|e| BootError::io(&self.path, "opening", e))?;
        let mut block = Vec::with_capacity(grub::BLOCK_SIZE + 1);
        file.take(grub::BLOCK_SIZE as u64 + 1)
            .read_to_end(&mut block)
            .map_err(|e| BootError::io(&self.path, "reading", e))?;
        grub::parse(&block).map_err(|source| BootError::Env {
            path: self.path.clone(),
            source,
        })
    }

    /// One commit: applies `change` and, if that changed anything, replaces the file.
    fn commit(
        &self,
        change: impl FnOnce(&mut Env) -> Result<(), BootError>,
    ) -> Result<(), BootError> {
        let current = self.read()?;
        let mut env = current.clone();
        change(&mut env)?;
        if env == current {
            return Ok(());
        }
        let block = grub::to_block(&env).map_err(|source| BootError::Env {
            path: self.path.clone(),
            source,
        })?;
        let mut name = self.path.file_name().unwrap_or_default().to_owned();
        name.push(".new");
        let tmp = self.path.with_file_name(name);
        let permissions = fs::metadata(&self.path)
            .map_err(|e| BootError::io(&self.path, "reading metadata of", e))?
            .permissions();
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            file.set_permissions(permissions)?;
            file.write_all(&block)?;
            file.sync_all()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(BootError::io(&tmp, "writing", e));
        }
        fs::rename(&tmp, &self.path).map_err(|e| BootError::io(&self.path, "renaming over", e))?;
        let dir = crate::fsutil::parent_dir(&self.path);
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| BootError::io(dir, "syncing directory", e))?;
        let back = self.read().map_err(|e| BootError::Verify {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        if back != env {
            return Err(BootError::Verify {
                path: self.path.clone(),
                reason: "the variables differ from those written".into(),
            });
        }
        Ok(())
    }
}

impl Bootloader for GrubBackend {
    fn state(&mut self) -> Result<BootState, BootError> {
        Ok(boot_state(&self.read()?, &self.bootnames))
    }

    fn mark_bad(&mut self, bootname: &str) -> Result<(), BootError> {
        let bootname = known(&self.bootnames, bootname)?;
        self.commit(|env| set_ok_try(env, bootname, false))
    }

    fn set_primary(&mut self, bootname: &str) -> Result<(), BootError> {
        let bootname = known(&self.bootnames, bootname)?;
        self.commit(|env| {
            let mut order = vec![bootname.to_owned()];
            let listed = env.get(ORDER).map(split_order).unwrap_or_default();
            for other in listed.into_iter().chain(self.bootnames.iter().cloned()) {
                if !order.contains(&other) {
                    order.push(other);
                }
            }
            set(env, ORDER, &order.join(" "))?;
            set_ok_try(env, bootname, true)
        })
    }

    fn mark_good(&mut self, bootname: &str) -> Result<(), BootError> {
        let bootname = known(&self.bootnames, bootname)?;
        self.commit(|env| set_ok_try(env, bootname, true))
    }
}

/// Whether `<bootname>_<suffix>` holds the number `want` (blanks around it ignored); unset
/// counts as 0, as RAUC's `grub.cfg` defaults it.
fn is(env: &Env, bootname: &str, suffix: &str, want: u32) -> bool {
    let value = env
        .get(format!("{bootname}_{suffix}"))
        .map(|v| String::from_utf8_lossy(v).trim().to_owned());
    match value.as_deref() {
        None | Some("") => want == 0,
        Some(text) => text.parse::<u32>() == Ok(want),
    }
}

/// RAUC's reading of grubenv: a slot has one boot left when `OK=1` and `TRY=0`, and is good
/// when `ORDER` also lists it.
pub(super) fn boot_state(env: &Env, bootnames: &[String]) -> BootState {
    let order = env.get(ORDER).map(split_order).unwrap_or_default();
    let slots = bootnames
        .iter()
        .map(|bootname| {
            let in_order = order.contains(bootname);
            let bootable = is(env, bootname, "OK", 1) && is(env, bootname, "TRY", 0);
            SlotBootState {
                bootname: bootname.clone(),
                in_order,
                attempts_left: u32::from(bootable),
                good: in_order && bootable,
            }
        })
        .collect();
    BootState { order, slots }
}

/// `<x>_OK=1|0` and `<x>_TRY=0`.
fn set_ok_try(env: &mut Env, bootname: &str, ok: bool) -> Result<(), BootError> {
    set(env, &format!("{bootname}_OK"), if ok { "1" } else { "0" })?;
    set(env, &format!("{bootname}_TRY"), "0")
}

fn set(env: &mut Env, name: &str, value: &str) -> Result<(), BootError> {
    env.set(name, value)
        .map_err(|e| BootError::Config(format!("{name}: {e}")))
}
