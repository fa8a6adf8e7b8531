//! `otasync update`: one installation run (ota-agent.md §6.2). In order: verify the manifest
//! (signature over the raw bytes, bindings, expiry, versions: S1–S9, S21, S23) → fetch each
//! slot's `.caibx`, pinned (S9, S10, S13) → refuse what does not fit (S12, S16) → mark the
//! target bad and persist the journal → assemble each image into the target from the running
//! slot, the target's own content and the stores, checkpointing → re-hash every image with
//! the cache dropped → one bootloader commit making the target primary. A run that finds a
//! journal for the same manifest resumes it; a different manifest starts over.

use super::config::{DeviceConfig, SlotConfig};
use super::fetch::{Fetcher, sibling};
use super::slot_io::{SlotIo, hash_slot};
use super::state::{HistoryRecord, Journal, Phase, SlotRecord, State, StateDir, Transfer};
use super::writer::CheckpointSink;
use crate::assemble::{
    AssembleStats, DEVICE_BATCH, Sources, Workers, assemble_from, chunks_to_fetch,
};
use crate::boot::Bootloader;
use crate::error::{Error, IoContext, Result};
use crate::progress::Progress;
use crate::seed::{SeedSet, cut_seed};
use crate::store::http::{HttpClient, HttpStore, is_url};
use crate::store::{ChunkStore, LocalStore, StoreChain};
use otasync_core::{DigestAlgorithm, Index};
use otasync_signing::{
    ChunkDigest, Clock, Manifest, Outcome, Rotation, TrustRoot, verify_manifest,
};
use std::collections::HashSet;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Trust root rotations applied in one run, at most.
const MAX_ROTATIONS: u64 = 16;
/// Bytes of the target's current content copied aside for reuse, at most.
const TARGET_COPY_CAP: u64 = 256 << 20;

/// Opens slots for writing (block devices and files; a power-cutting simulation in tests).
pub(crate) trait SlotOpener: Sync {
    /// Opens `slot` for writing.
    fn open_for_writing(&self, slot: &SlotConfig) -> Result<Box<dyn SlotIo>>;
}

/// The real slots.
pub(crate) struct DeviceSlots;

impl SlotOpener for DeviceSlots {
    fn open_for_writing(&self, slot: &SlotConfig) -> Result<Box<dyn SlotIo>> {
        Ok(Box::new(super::slot_io::FileSlot::open_for_writing(
            &slot.device,
        )?))
    }
}

/// Everything an agent run works with.
pub(crate) struct Agent<'a> {
    /// The device configuration.
    pub(crate) config: &'a DeviceConfig,
    /// The state directory.
    pub(crate) states: StateDir,
    /// The bootloader.
    pub(crate) boot: Box<dyn Bootloader>,
    /// Fetches release files.
    pub(crate) fetcher: Fetcher,
    /// The HTTP client for chunk stores.
    pub(crate) http: Option<Arc<HttpClient>>,
    /// Opens slots for writing.
    pub(crate) slots: &'a dyn SlotOpener,
    /// The clocks, read once at the start (S7).
    pub(crate) clock: Clock,
    /// The running group's bootname.
    pub(crate) booted: String,
    /// The kernel's boot id now.
    pub(crate) boot_id: String,
    /// Worker threads for assembling.
    pub(crate) threads: usize,
    /// The manifest's location (the configured release URL unless overridden).
    pub(crate) release_url: String,
    /// Bytes written between checkpoints ([`super::writer::CHECKPOINT_EVERY`]; smaller in tests).
    pub(crate) checkpoint_every: u64,
}

/// What an update run did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Updated {
    /// The newest release is installed (or being tried) already.
    UpToDate(String),
    /// The release is written, verified and activated: reboot into it.
    Installed(String),
}

/// A release verified for installation.
struct Release {
    manifest: Manifest,
    manifest_sha256: String,
    /// Per manifest slot: its class, the slot it goes to and its index.
    images: Vec<Image>,
    /// Bytes of manifest, signature and indexes downloaded.
    metadata_bytes: u64,
}

/// One image of a release.
struct Image {
    class: String,
    target: SlotConfig,
    index: Index,
    index_bytes: Vec<u8>,
    sha256: [u8; 32],
}

impl Agent<'_> {
    /// One update run.
    pub(crate) fn update(&mut self) -> Result<Updated> {
        let mut state = self.states.load()?;
        self.reconcile(&mut state)?;
        if let Some(j) = &state.journal
            && j.phase == Phase::Trial
        {
            return Err(Error::Usage(format!(
                "release {} is on trial in slot {}: run mark-good or mark-bad first",
                j.release, j.target
            )));
        }
        let result = self.update_with(&mut state);
        state.last_result = Some(match &result {
            Ok(Updated::UpToDate(release)) => format!("up to date ({release})"),
            Ok(Updated::Installed(release)) => format!("installed {release}; reboot to run it"),
            Err(e) => format!("failed: {e}"),
        });
        // A failure to write the state after a power cut changes nothing: report the first.
        let saved = self.states.save(&state);
        let updated = result?;
        saved?;
        Ok(updated)
    }

    fn update_with(&mut self, state: &mut State) -> Result<Updated> {
        let root = self.trust_root(state)?;
        let (manifest_bytes, signature) = self.fetcher.manifest(&self.release_url)?;
        let manifest_sha256 = hex(&DigestAlgorithm::Sha256.digest(&manifest_bytes).0);
        let history = state.history.to_history();
        let outcome = verify_manifest(
            &root,
            &manifest_bytes,
            &signature,
            &self.config.device(),
            &history,
            self.clock,
        )
        .map_err(|source| Error::Signing {
            path: self.release_url.clone(),
            source,
        })?;
        let resuming = state.journal.as_ref().filter(|j| {
            j.manifest_sha256 == manifest_sha256
                && matches!(j.phase, Phase::Writing | Phase::Verified)
        });
        let manifest = match outcome {
            Outcome::Update(manifest) => manifest,
            Outcome::UpToDate(manifest) if resuming.is_some() => manifest,
            Outcome::UpToDate(manifest) => return Ok(Updated::UpToDate(manifest.release)),
        };
        let metadata_bytes = (manifest_bytes.len() + signature.len()) as u64;
        let target = match resuming {
            Some(j) => j.target.clone(),
            None => self.choose_target()?,
        };
        if target == self.booted {
            return Err(refused(format!(
                "slot {target} is the running one; it is never written"
            )));
        }
        let release = self.fetch_release(manifest, manifest_sha256, metadata_bytes, &target)?;
        self.install(state, &release, &target)
    }

    /// The trust root: the shipped one, or a newer rotation kept in the state directory, moved
    /// forward through rotations published beside the manifest (`roots/N.json` + `.sig`).
    fn trust_root(&self, state: &mut State) -> Result<TrustRoot> {
        let shipped = read_root(&self.config.trust_root)?;
        let kept_path = self.states.path("root.json");
        let mut root = match std::fs::read(&kept_path) {
            Ok(bytes) => match TrustRoot::parse(&bytes) {
                Ok(kept) if kept.version() > shipped.version() => kept,
                _ => shipped,
            },
            Err(_) => shipped,
        };
        for _ in 0..MAX_ROTATIONS {
            let next = sibling(
                &self.release_url,
                &format!("roots/{}.json", root.version() + 1),
            );
            let Some(bytes) = self
                .fetcher
                .get(&next, otasync_signing::MAX_DOCUMENT as u64)?
            else {
                break;
            };
            let signature = self.fetcher.require(
                &format!("{next}.sig"),
                otasync_signing::MAX_SIGNATURE_FILE as u64,
            )?;
            let rotation: Rotation =
                root.rotate(&bytes, &signature)
                    .map_err(|source| Error::Signing {
                        path: next.clone(),
                        source,
                    })?;
            log::info!("trust root rotated to version {}", rotation.root.version());
            let mut history = state.history.to_history();
            history.after_rotation(&rotation);
            state.history = HistoryRecord::from_history(history);
            self.states.write_file("root.json", &bytes)?;
            self.states.save(state)?;
            root = rotation.root;
        }
        Ok(root)
    }

    /// The group to install into: the first that is not running.
    fn choose_target(&self) -> Result<String> {
        self.config
            .bootnames()
            .into_iter()
            .find(|b| *b != self.booted)
            .ok_or_else(|| refused("no slot group besides the running one".into()))
    }

    /// Checks the manifest against the device and fetches its indexes.
    fn fetch_release(
        &self,
        manifest: Manifest,
        manifest_sha256: String,
        mut metadata_bytes: u64,
        target: &str,
    ) -> Result<Release> {
        let digest = match manifest.digest {
            ChunkDigest::Sha512_256 => DigestAlgorithm::Sha512_256,
            ChunkDigest::Sha256 => DigestAlgorithm::Sha256,
        };
        // Every slot the manifest names must be one this device has (S16), before any fetch.
        for class in manifest.slots.keys() {
            if self.config.slot(class, target).is_none() {
                return Err(refused(format!(
                    "the manifest has a slot {class:?}, which this device does not have"
                )));
            }
        }
        let mut images = Vec::new();
        for (class, slot) in &manifest.slots {
            let location = sibling(&self.release_url, &slot.index.path);
            let bytes = self
                .fetcher
                .pinned(&location, &slot.index.sha256, slot.index.size)?;
            metadata_bytes += bytes.len() as u64;
            let index = crate::commands::decode_index(&location, &bytes)?;
            let invalid = |reason: String| Error::InvalidInput {
                path: location.clone(),
                reason,
            };
            if index.header.digest() != digest {
                return Err(invalid(format!(
                    "chunks named by {}, the manifest says {}",
                    index.header.digest().name(),
                    digest.name()
                )));
            }
            if index.blob_size() != slot.image.size {
                return Err(invalid(format!(
                    "describes {} bytes, the manifest's image has {}",
                    index.blob_size(),
                    slot.image.size
                )));
            }
            if index.header.sizes.max > slot.chunk_size_max {
                return Err(invalid(format!(
                    "chunks up to {} bytes, the manifest allows {}",
                    index.header.sizes.max, slot.chunk_size_max
                )));
            }
            let target = self
                .config
                .slot(class, target)
                .cloned()
                .ok_or_else(|| refused(format!("no slot {class:?} for {target}")))?;
            images.push(Image {
                class: class.clone(),
                target,
                index,
                index_bytes: bytes,
                sha256: slot.image.sha256.0,
            });
        }
        Ok(Release {
            manifest,
            manifest_sha256,
            images,
            metadata_bytes,
        })
    }

    /// Marks the target bad, writes and verifies every image, then activates the target.
    fn install(&mut self, state: &mut State, release: &Release, target: &str) -> Result<Updated> {
        let manifest = &release.manifest;
        let resumed = match state.journal.as_mut() {
            Some(j)
                if j.manifest_sha256 == release.manifest_sha256
                    && matches!(j.phase, Phase::Writing | Phase::Verified) =>
            {
                j.attempts += 1;
                if j.attempts > self.config.max_attempts {
                    j.phase = Phase::Failed;
                    j.error = Some(format!("given up after {} attempts", j.attempts - 1));
                    return Err(Error::Usage(format!(
                        "release {}: given up after {} installation attempts",
                        manifest.release,
                        j.attempts - 1
                    )));
                }
                log::info!(
                    "resuming the installation of {} into {target}",
                    manifest.release
                );
                true
            }
            _ => false,
        };
        // The target is made unbootable before its first byte changes (§6.2 step 3).
        self.boot.mark_bad(target).map_err(Error::boot)?;
        if !resumed {
            state.journal = Some(Journal {
                phase: Phase::Writing,
                manifest_sha256: release.manifest_sha256.clone(),
                version: manifest.version,
                security_version: manifest.security_version,
                issued_at: manifest.issued_at.0,
                release: manifest.release.clone(),
                target: target.to_owned(),
                booted: self.booted.clone(),
                next_chunk: Default::default(),
                verified: Vec::new(),
                attempts: 1,
                error: None,
                activated_boot_id: None,
            });
            let mut history = state.history.to_history();
            history.accept(manifest);
            state.history = HistoryRecord::from_history(history);
            state.transfer = Transfer {
                bytes_total: release.images.iter().map(|i| i.index.blob_size()).sum(),
                ..Transfer::default()
            };
        }
        state.transfer.bytes_downloaded += release.metadata_bytes;
        for image in &release.images {
            state.slots.entry(target.to_owned()).or_default().insert(
                image.class.clone(),
                SlotRecord {
                    release: manifest.release.clone(),
                    version: manifest.version,
                    status: "writing".into(),
                },
            );
        }
        self.states.save(state)?;

        let stores = self.stores(manifest)?;
        for image in &release.images {
            let verified = state
                .journal
                .as_ref()
                .is_some_and(|j| j.verified.contains(&image.class));
            if !verified {
                self.write_image(state, image, &stores)?;
            }
        }
        stores.finish()?;

        // Every image verified: one bootloader commit activates the target (§6.2 step 7).
        set_phase(state, Phase::Verified);
        self.states.save(state)?;
        self.boot.set_primary(target).map_err(Error::boot)?;
        let boot_state = self.boot.state().map_err(Error::boot)?;
        if boot_state.order.first().map(String::as_str) != Some(target) {
            return Err(Error::Io {
                context: "activating the new slot".into(),
                source: std::io::Error::other(format!(
                    "the bootloader environment does not boot {target} first after the commit"
                )),
            });
        }
        if let Some(j) = state.journal.as_mut() {
            j.phase = Phase::Activated;
            j.activated_boot_id = Some(self.boot_id.clone());
        }
        for record in state
            .slots
            .entry(target.to_owned())
            .or_default()
            .values_mut()
        {
            record.status = "activated".into();
        }
        self.states.save(state)?;
        log::info!("release {} installed into {target}", manifest.release);
        Ok(Updated::Installed(manifest.release.clone()))
    }

    /// The chunk stores: the configured ones, else the manifest's (S16).
    fn stores(&self, manifest: &Manifest) -> Result<StoreChain> {
        let locators: Vec<String> = match self.config.stores.is_empty() {
            false => self.config.stores.clone(),
            true => manifest
                .chunk_stores
                .iter()
                .map(|s| match is_url(s) || s.starts_with('/') {
                    true => s.clone(),
                    false => sibling(&self.release_url, s),
                })
                .collect(),
        };
        let mut stores: Vec<Box<dyn ChunkStore>> = Vec::new();
        for locator in locators {
            if self.config.tls.https_only && !locator.starts_with("https://") {
                return Err(refused(format!(
                    "chunk store {locator} is not HTTPS, and https_only is set"
                )));
            }
            if is_url(&locator) {
                let client = self
                    .http
                    .clone()
                    .ok_or_else(|| Error::Usage("no HTTP client for the chunk stores".into()))?;
                stores.push(Box::new(HttpStore::new(&locator, client)));
            } else {
                stores.push(Box::new(LocalStore::new(locator)));
            }
        }
        if stores.is_empty() {
            return Err(refused(
                "no chunk store is configured or named by the manifest".into(),
            ));
        }
        Ok(StoreChain::new(None, stores))
    }

    /// Writes one image into its target slot and verifies it (§6.2 steps 2, 4–6).
    fn write_image(&self, state: &mut State, image: &Image, stores: &StoreChain) -> Result<()> {
        let io = self.slots.open_for_writing(&image.target)?;
        let size = image.index.blob_size();
        if size > io.capacity() {
            return Err(refused(format!(
                "the {} image has {size} bytes; slot {} holds {}",
                image.class,
                image.target.device.display(),
                io.capacity()
            )));
        }
        let first = state
            .journal
            .as_ref()
            .and_then(|j| j.next_chunk.get(&image.class).copied())
            .unwrap_or(0)
            .min(image.index.chunks.len() as u64) as usize;
        let started = std::time::Instant::now();
        // What the target held before, when the agent wrote it and nothing has been written
        // since (a resumed run has changed it).
        let target_known = match first {
            0 => self.known_index(&image.target.bootname, &image.class, &image.index.header),
            _ => None,
        };
        let assumed = target_known
            .as_ref()
            .map(|known| in_place_offsets(image, known))
            .unwrap_or_default();
        let seeds = self.seeds(image, io.as_ref(), target_known.as_ref(), &assumed)?;
        log::info!(
            "{}: seeds ready in {:.2} s",
            image.class,
            started.elapsed().as_secs_f64()
        );
        let base = state.transfer.bytes_done;
        let started = std::time::Instant::now();
        let stats = self.assemble(
            state,
            image,
            io.as_ref(),
            first,
            &assumed,
            &seeds,
            stores,
            base,
        )?;
        record_transfer(state, &stats);
        log::info!(
            "{}: written in {:.2} s",
            image.class,
            started.elapsed().as_secs_f64()
        );
        let started = std::time::Instant::now();
        let mut actual = hash_slot(io.as_ref(), size).context(|| "re-reading the slot".into())?;
        log::info!(
            "{}: verified in {:.2} s",
            image.class,
            started.elapsed().as_secs_f64()
        );
        if actual != image.sha256 && (first > 0 || !assumed.is_empty()) {
            // A checkpoint or the target's recorded index vouched for content that is not
            // there (a slot mounted read-write changes): check every chunk.
            log::warn!("the image does not verify; checking every chunk");
            state.transfer.rechecks += 1;
            let none = HashSet::new();
            let stats = self.assemble(state, image, io.as_ref(), 0, &none, &seeds, stores, base)?;
            record_transfer(state, &stats);
            actual = hash_slot(io.as_ref(), size).context(|| "re-reading the slot".into())?;
        }
        if actual != image.sha256 {
            if let Some(j) = state.journal.as_mut() {
                j.phase = Phase::Failed;
                j.error = Some(format!("the written {} image does not verify", image.class));
            }
            return Err(Error::ChunkCorrupt {
                id: otasync_core::ChunkId(actual),
                store: image.target.device.display().to_string(),
                reason: format!(
                    "the written {} image's SHA-256 differs from the manifest's",
                    image.class
                ),
            });
        }
        // The index now describes the slot: the next update seeds from it without reading.
        let name = known_index_name(&image.target.bootname, &image.class);
        self.states.write_file(&name, &image.index_bytes)?;
        if let Some(j) = state.journal.as_mut() {
            j.verified.push(image.class.clone());
        }
        state.transfer.bytes_done = state.transfer.bytes_total.min(base + size);
        self.states.save(state)?;
        Ok(())
    }

    /// Runs the assembly from chunk `first`, checkpointing into the journal (`base`: bytes of
    /// the images installed before this one).
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        &self,
        state: &mut State,
        image: &Image,
        io: &dyn SlotIo,
        first: usize,
        assumed: &HashSet<u64>,
        seeds: &SeedSet,
        stores: &StoreChain,
        base: u64,
    ) -> Result<AssembleStats> {
        let starts: Vec<u64> = image.index.spans().skip(first).map(|s| s.start).collect();
        let shared = Mutex::new(state.clone());
        let record = |next: u64| -> Result<()> {
            let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(j) = state.journal.as_mut() {
                j.next_chunk.insert(image.class.clone(), next);
            }
            let done = match next as usize {
                0 => 0,
                n => image.index.chunks.get(n - 1).map_or(0, |c| c.end),
            };
            state.transfer.bytes_done = base + done;
            self.states.save(&state)
        };
        let sink = CheckpointSink::new(io, first, starts, self.checkpoint_every, &record);
        let sources = Sources {
            in_place: io.file(),
            output: io.file(),
            seeds,
            stores,
        };
        let progress = Progress::start("installing", image.index.blob_size(), false);
        let stats = assemble_from(
            &image.index,
            first,
            assumed,
            &sources,
            &sink,
            Workers {
                threads: self.threads,
                batch: DEVICE_BATCH,
            },
            &progress,
        );
        // What is written stays recorded even when the assembly failed part-way.
        let checkpoint = sink.checkpoint();
        *state = shared.into_inner().unwrap_or_else(|p| p.into_inner());
        let stats = stats?;
        checkpoint?;
        Ok(stats)
    }

    /// Seeds for one image: the running slot of its class (described by the index it was
    /// installed from, else cut once and the result kept), and chunks of the target's current
    /// content (`target_known`) that the image needs elsewhere than at the `assumed` offsets,
    /// copied aside before they are overwritten. All verified on use (S15).
    fn seeds(
        &self,
        image: &Image,
        io: &dyn SlotIo,
        target_known: Option<&Index>,
        assumed: &HashSet<u64>,
    ) -> Result<SeedSet> {
        let header = &image.index.header;
        let mut seeds = SeedSet::empty();
        if let Some(running) = self.config.slot(&image.class, &self.booted) {
            let file = File::open(&running.device).at("opening seed", &running.device)?;
            let index = match self.known_index(&self.booted, &image.class, header) {
                Some(index) => index,
                None => {
                    let index = cut_seed(&file, &running.device, header, self.threads)?;
                    // The running slot does not change: the next update need not read it whole.
                    self.states.write_file(
                        &known_index_name(&self.booted, &image.class),
                        &index.encode(),
                    )?;
                    index
                }
            };
            seeds.add(format!("slot {}", self.booted), file, &index);
        }
        // From here on the target's content changes: its index no longer describes it.
        let stale = self
            .states
            .path(&known_index_name(&image.target.bootname, &image.class));
        if let Err(e) = std::fs::remove_file(&stale)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(e).at("removing", &stale);
        }
        let (Some(target), Some(target_known)) = (io.file(), target_known) else {
            return Ok(seeds);
        };
        let wanted: HashSet<otasync_core::ChunkId> = chunks_to_fetch(&image.index, &seeds)
            .iter()
            .filter(|s| !assumed.contains(&s.start))
            .map(|s| s.id)
            .collect();
        if wanted.is_empty() {
            return Ok(seeds);
        }
        let copied = seeds.add_target_copies(target, target_known, &wanted, TARGET_COPY_CAP)?;
        log::info!("{copied} bytes of the target's old content kept aside for reuse");
        Ok(seeds)
    }

    /// The index a slot was installed from, when the agent wrote and verified it.
    fn known_index(
        &self,
        bootname: &str,
        class: &str,
        header: &otasync_core::index::IndexHeader,
    ) -> Option<Index> {
        let path: PathBuf = self.states.path(&known_index_name(bootname, class));
        let bytes = std::fs::read(path).ok()?;
        let index = Index::decode(&bytes).ok()?;
        (index.header.digest() == header.digest() && index.header.sizes == header.sizes)
            .then_some(index)
    }
}

/// Offsets where the target, by the index it was installed from (`known`), already holds the
/// chunk the image needs: taken as in place without reading (the final re-hash checks them; a
/// slot changed since costs one recheck of every chunk).
fn in_place_offsets(image: &Image, known: &Index) -> HashSet<u64> {
    let here: HashSet<(u64, otasync_core::ChunkId)> =
        known.spans().map(|s| (s.start, s.id)).collect();
    image
        .index
        .spans()
        .filter(|s| here.contains(&(s.start, s.id)))
        .map(|s| s.start)
        .collect()
}

/// The state directory's file holding the index of what a slot holds.
fn known_index_name(bootname: &str, class: &str) -> String {
    format!("slots/{bootname}.{class}.caibx")
}

/// Adds an assembly's figures to the state's transfer counts.
fn record_transfer(state: &mut State, stats: &AssembleStats) {
    let t = &mut state.transfer;
    t.bytes_from_seeds += stats.seeds.iter().map(|s| s.bytes).sum::<u64>();
    t.bytes_in_place += stats.in_place.bytes + stats.zero.bytes;
    t.bytes_from_network += stats.stores.iter().map(|s| s.bytes).sum::<u64>();
    t.chunks_fetched += stats.stores.iter().map(|s| s.chunks).sum::<u64>();
    t.bytes_downloaded += stats.store_bytes.iter().sum::<u64>();
}

fn set_phase(state: &mut State, phase: Phase) {
    if let Some(j) = state.journal.as_mut() {
        j.phase = phase;
    }
}

/// Reads a trust root file.
pub(crate) fn read_root(path: &std::path::Path) -> Result<TrustRoot> {
    let bytes = std::fs::read(path).at("reading the trust root", path)?;
    TrustRoot::parse(&bytes).map_err(|source| Error::Signing {
        path: path.display().to_string(),
        source,
    })
}

/// An installation this device refuses.
pub(crate) fn refused(reason: String) -> Error {
    Error::Refused(reason)
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
