//! Power-loss simulation (ota-agent.md §6.3, F tests): the installer runs against a simulated
//! slot whose unsynced writes are dropped or torn at sector granularity when the power is cut,
//! a simulated bootloader whose commits are atomic (a redundant environment), and the real state
//! directory whose writes stop at the cut. For every k, the power goes at the k-th write, sync,
//! state write or bootloader commit; after the "reboot" the agent runs again. It must converge
//! to the right image, and the bootloader must never have been told to boot a slot whose
//! durable content was not the verified image.

use super::config::{DeviceConfig, SlotConfig};
use super::fetch::Fetcher;
use super::slot_io::SlotIo;
use super::state::{Phase, StateDir};
use super::update::{Agent, SlotOpener, Updated};
use crate::boot::{BootError, BootState, Bootloader, SlotBootState};
use crate::chunking::{ChunkJob, chunk_stream};
use crate::compression::{Compression, DEFAULT_LEVEL};
use crate::error::Result;
use crate::store::LocalStore;
use otasync_core::index::IndexHeader;
use otasync_core::{ChunkSizes, DigestAlgorithm, Index};
use otasync_signing::{
    ChunkDigest, Clock, IndexRef, Manifest, Pinned, SecretKey, Sha256, SignatureFile, Slot,
    Timestamp, TrustRoot,
};
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Sector size of the simulated medium: a torn write keeps a prefix of whole sectors.
const SECTOR: usize = 512;

/// The power supply: the `budget`-th operation is cut, and nothing works afterwards.
struct Power {
    budget: AtomicI64,
    cut: AtomicBool,
    used: AtomicU64,
}

impl Power {
    fn new(budget: i64) -> Arc<Self> {
        Arc::new(Self {
            budget: AtomicI64::new(budget),
            cut: AtomicBool::new(false),
            used: AtomicU64::new(0),
        })
    }

    fn tick(&self) -> io::Result<()> {
        if self.cut.load(Ordering::SeqCst) || self.budget.fetch_sub(1, Ordering::SeqCst) <= 1 {
            self.cut.store(true, Ordering::SeqCst);
            return Err(io::Error::other("power cut"));
        }
        self.used.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn alive(&self) -> io::Result<()> {
        match self.cut.load(Ordering::SeqCst) {
            true => Err(io::Error::other("power cut")),
            false => Ok(()),
        }
    }
}

/// A medium: what survives a cut, what the running system sees, and the unsynced writes.
struct Disk {
    durable: Vec<u8>,
    current: Vec<u8>,
    unsynced: Vec<(usize, usize)>,
}

impl Disk {
    fn new(content: Vec<u8>) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self {
            durable: content.clone(),
            current: content,
            unsynced: Vec::new(),
        }))
    }

    /// The power came back: each unsynced write survived whole, not at all, or torn.
    fn reboot(&mut self, seed: &mut u64) {
        for &(at, len) in &self.unsynced {
            let kept = match next_random(seed) % 3 {
                0 => len,
                1 => 0,
                _ => (next_random(seed) as usize % (len / SECTOR + 1)) * SECTOR,
            };
            let kept = kept.min(len);
            let (durable, current) = (&mut self.durable, &self.current);
            durable[at..at + kept].copy_from_slice(&current[at..at + kept]);
        }
        self.unsynced.clear();
        self.current = self.durable.clone();
    }
}

fn next_random(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// A slot on a simulated medium.
struct SimSlot {
    disk: Arc<Mutex<Disk>>,
    power: Arc<Power>,
}

impl SlotIo for SimSlot {
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.power.tick()?;
        let mut disk = self.disk.lock().unwrap();
        let at = offset as usize;
        disk.current[at..at + data.len()].copy_from_slice(data);
        disk.unsynced.push((at, data.len()));
        Ok(())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.power.alive()?;
        let disk = self.disk.lock().unwrap();
        let at = offset as usize;
        buf.copy_from_slice(&disk.current[at..at + buf.len()]);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.power.tick()?;
        let mut disk = self.disk.lock().unwrap();
        disk.durable = disk.current.clone();
        disk.unsynced.clear();
        Ok(())
    }

    fn capacity(&self) -> u64 {
        self.disk.lock().unwrap().current.len() as u64
    }

    fn drop_cache(&self) -> io::Result<()> {
        self.power.alive()
    }

    fn file(&self) -> Option<&File> {
        None
    }
}

struct SimSlots {
    disk: Arc<Mutex<Disk>>,
    power: Arc<Power>,
}

impl SlotOpener for SimSlots {
    fn open_for_writing(&self, _slot: &SlotConfig) -> Result<Box<dyn SlotIo>> {
        Ok(Box::new(SimSlot {
            disk: Arc::clone(&self.disk),
            power: Arc::clone(&self.power),
        }))
    }
}

/// A bootloader environment with atomic commits; it checks, at every commit that makes B
/// primary, that B's durable content is the expected image.
struct SimBoot {
    env: Arc<Mutex<Vec<(String, u32)>>>,
    power: Arc<Power>,
    disk: Arc<Mutex<Disk>>,
    expected: Vec<u8>,
    violations: Arc<AtomicU64>,
}

impl SimBoot {
    fn commit(&self, change: impl FnOnce(&mut Vec<(String, u32)>)) -> Result<(), BootError> {
        self.power
            .tick()
            .map_err(|e| BootError::io("sim-env", "committing", e))?;
        change(&mut self.env.lock().unwrap());
        Ok(())
    }
}

impl Bootloader for SimBoot {
    fn state(&mut self) -> Result<BootState, BootError> {
        let env = self.env.lock().unwrap();
        Ok(BootState {
            order: env
                .iter()
                .filter(|e| e.1 > 0)
                .map(|e| e.0.clone())
                .collect(),
            slots: env
                .iter()
                .map(|(name, left)| SlotBootState {
                    bootname: name.clone(),
                    in_order: *left > 0,
                    attempts_left: *left,
                    good: *left > 0,
                })
                .collect(),
        })
    }

    fn mark_bad(&mut self, bootname: &str) -> Result<(), BootError> {
        self.commit(|env| {
            env.iter_mut()
                .filter(|e| e.0 == bootname)
                .for_each(|e| e.1 = 0);
        })
    }

    fn set_primary(&mut self, bootname: &str) -> Result<(), BootError> {
        if self.disk.lock().unwrap().durable != self.expected {
            self.violations.fetch_add(1, Ordering::SeqCst);
        }
        self.commit(|env| {
            env.sort_by_key(|e| e.0 != bootname);
            env[0].1 = 3;
        })
    }

    fn mark_good(&mut self, bootname: &str) -> Result<(), BootError> {
        self.commit(|env| {
            env.iter_mut()
                .filter(|e| e.0 == bootname)
                .for_each(|e| e.1 = 3);
        })
    }
}

/// Deterministic pseudo-random bytes.
fn bytes(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len).map(|_| next_random(&mut seed) as u8).collect()
}

/// A release on disk: v1 in slot A (booted), v2 published, B holding something else.
struct Fixture {
    dir: tempfile::TempDir,
    v1: Vec<u8>,
    v2: Vec<u8>,
    old_b: Vec<u8>,
    config: DeviceConfig,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let v1 = bytes(768 << 10, 1);
    let mut v2 = v1.clone();
    v2[100_000..160_000].copy_from_slice(&bytes(60_000, 2));
    v2[500_000..505_000].fill(7);
    let old_b = bytes(768 << 10, 3);
    std::fs::write(path("a.img"), &v1).unwrap();
    std::fs::write(path("b.img"), &old_b).unwrap();
    let store = LocalStore::new(path("store"));
    store.create().unwrap();
    let header = IndexHeader {
        feature_flags: DigestAlgorithm::Sha512_256.flag(),
        sizes: ChunkSizes::derive(2048, 8192, 32768).unwrap(),
    };
    let job = ChunkJob {
        sizes: header.sizes,
        digest: DigestAlgorithm::Sha512_256,
        store: Some((&store, Compression::Zstd(DEFAULT_LEVEL))),
        stream_digest: false,
        threads: 2,
    };
    let mut index = Index::new(header);
    index.chunks = chunk_stream(&v2[..], &job).unwrap().entries;
    let index_bytes = index.encode();
    std::fs::write(path("v2.caibx"), &index_bytes).unwrap();
    let key = SecretKey::from_seed(&[9; 32]);
    let root_key = SecretKey::from_seed(&[8; 32]);
    let root = TrustRoot::new(
        1,
        Timestamp(4_000_000_000),
        (&[root_key.public()], 1),
        (&[key.public()], 1),
    )
    .unwrap();
    std::fs::write(path("root.json"), root.to_json()).unwrap();
    let sha = |b: &[u8]| Sha256(DigestAlgorithm::Sha256.digest(b).0);
    let manifest = Manifest {
        format: otasync_signing::MANIFEST_FORMAT,
        product: "sim".into(),
        hardware: None,
        devices: None,
        version: 2,
        security_version: 1,
        release: "v2".into(),
        issued_at: Timestamp(1_700_000_000),
        expires: Timestamp(3_000_000_000),
        digest: ChunkDigest::Sha512_256,
        compression: otasync_signing::Compression::Zstd,
        chunk_stores: vec![],
        slots: [(
            "rootfs".to_owned(),
            Slot {
                index: IndexRef {
                    path: "v2.caibx".into(),
                    sha256: sha(&index_bytes),
                    size: index_bytes.len() as u64,
                },
                image: Pinned {
                    sha256: sha(&v2),
                    size: v2.len() as u64,
                },
                chunk_size_max: 32768,
            },
        )]
        .into(),
    };
    let manifest_bytes = manifest.to_json().unwrap();
    let mut signatures = SignatureFile::default();
    signatures.add("sim", key.sign(&manifest_bytes)).unwrap();
    std::fs::write(path("manifest.json"), &manifest_bytes).unwrap();
    std::fs::write(path("manifest.json.sig"), signatures.to_file()).unwrap();
    std::fs::write(path("cmdline"), "otasync.slot=A").unwrap();
    let d = dir.path().display();
    let config = serde_json::from_str(&format!(
        r#"{{"compatible":"sim","slots":[
            {{"class":"rootfs","bootname":"A","device":"{d}/a.img"}},
            {{"class":"rootfs","bootname":"B","device":"{d}/b.img"}}],
          "booted":{{"cmdline":"{d}/cmdline"}},
          "bootloader":{{"backend":"custom","script":"/bin/false"}},
          "release_url":"{d}/manifest.json","stores":["{d}/store"],
          "trust_root":"{d}/root.json","state_dir":"{d}/state"}}"#
    ))
    .unwrap();
    Fixture {
        dir,
        v1,
        v2,
        old_b,
        config,
    }
}

/// One agent run with this power budget.
fn run(
    fixture: &Fixture,
    state: &Path,
    disk: &Arc<Mutex<Disk>>,
    env: &Arc<Mutex<Vec<(String, u32)>>>,
    power: &Arc<Power>,
    violations: &Arc<AtomicU64>,
) -> Result<Updated> {
    let fault_power = Arc::clone(power);
    let states = StateDir::open(state)
        .unwrap()
        .with_fault(Arc::new(move || fault_power.tick()));
    let slots = SimSlots {
        disk: Arc::clone(disk),
        power: Arc::clone(power),
    };
    let mut agent = Agent {
        config: &fixture.config,
        states,
        boot: Box::new(SimBoot {
            env: Arc::clone(env),
            power: Arc::clone(power),
            disk: Arc::clone(disk),
            expected: fixture.v2.clone(),
            violations: Arc::clone(violations),
        }),
        fetcher: Fetcher::new(None),
        http: None,
        slots: &slots,
        clock: Clock {
            system: Timestamp(1_800_000_000),
            build_epoch: Timestamp(0),
        },
        booted: "A".into(),
        boot_id: "boot-1".into(),
        // One worker: the operations then come in the same order every run, so that the k-th
        // one is the same point of the installation in the counting run and in the cut runs.
        threads: 1,
        release_url: fixture.config.release_url.clone(),
        checkpoint_every: 64 << 10,
    };
    agent.update()
}

#[test]
fn installation_converges_after_a_power_cut_at_every_step() {
    let fixture = fixture();
    assert_ne!(fixture.v1, fixture.v2);
    // An uninterrupted run, to count the operations.
    let state = fixture.dir.path().join("state-full");
    let disk = Disk::new(fixture.old_b.clone());
    let env = Arc::new(Mutex::new(vec![("A".to_owned(), 3), ("B".to_owned(), 3)]));
    let violations = Arc::new(AtomicU64::new(0));
    let power = Power::new(i64::MAX);
    let updated = run(&fixture, &state, &disk, &env, &power, &violations).unwrap();
    assert_eq!(updated, Updated::Installed("v2".into()));
    assert_eq!(disk.lock().unwrap().durable, fixture.v2);
    let operations = power.used.load(Ordering::SeqCst) as i64;
    assert!(operations > 20, "only {operations} operations");
    eprintln!("power cut at each of {operations} operations");

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for k in 1..=operations {
        let state = fixture.dir.path().join(format!("state-{k}"));
        let disk = Disk::new(fixture.old_b.clone());
        let env = Arc::new(Mutex::new(vec![("A".to_owned(), 3), ("B".to_owned(), 3)]));
        let violations = Arc::new(AtomicU64::new(0));
        let cut = run(&fixture, &state, &disk, &env, &Power::new(k), &violations);
        assert!(cut.is_err(), "k={k}: the run survived its power cut");
        disk.lock().unwrap().reboot(&mut seed);
        // After the reboot, B is never the slot booted first unless it holds v2.
        let first = env.lock().unwrap()[0].clone();
        if first.0 == "B" && first.1 > 0 {
            assert_eq!(disk.lock().unwrap().durable, fixture.v2, "k={k}");
        }
        let again = run(
            &fixture,
            &state,
            &disk,
            &env,
            &Power::new(i64::MAX),
            &violations,
        )
        .unwrap_or_else(|e| panic!("k={k}: the run after the reboot failed: {e}"));
        assert!(
            matches!(again, Updated::Installed(_) | Updated::UpToDate(_)),
            "k={k}"
        );
        assert_eq!(
            disk.lock().unwrap().durable,
            fixture.v2,
            "k={k}: wrong image"
        );
        let env = env.lock().unwrap();
        assert_eq!(env[0], ("B".to_owned(), 3), "k={k}: B is not primary");
        assert_eq!(
            violations.load(Ordering::SeqCst),
            0,
            "k={k}: activated unverified"
        );
        let saved = StateDir::open(&state).unwrap().load().unwrap();
        assert_eq!(saved.journal.unwrap().phase, Phase::Activated, "k={k}");
        // Checkpoints only ever vouched for synced data: no resumed image needed a recheck.
        assert_eq!(
            saved.transfer.rechecks, 0,
            "k={k}: a checkpoint was ahead of the data"
        );
    }
}
