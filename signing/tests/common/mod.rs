//! Shared fixtures: deterministic keys, trust roots, manifests and signature files.
#![allow(dead_code, unreachable_pub)]

use otasync_signing::*;
use std::collections::BTreeMap;

/// The deterministic key number `n`.
pub fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

/// Public halves.
pub fn publics(keys: &[&SecretKey]) -> Vec<PublicKey> {
    keys.iter().map(|k| k.public()).collect()
}

pub fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

/// A trust root with the given root and release keys and thresholds, expiring in 2030.
pub fn root(
    version: u64,
    root: &[&SecretKey],
    rt: usize,
    release: &[&SecretKey],
    relt: usize,
) -> TrustRoot {
    TrustRoot::new(
        version,
        ts("2030-01-01T00:00:00Z"),
        (&publics(root), rt),
        (&publics(release), relt),
    )
    .unwrap()
}

/// A detached signature file with one block per key, in order.
pub fn sign(message: &[u8], keys: &[&SecretKey]) -> Vec<u8> {
    let mut file = SignatureFile::default();
    for key in keys {
        file.blocks.push((
            format!("verify with {}", key.public().id()),
            key.sign(message),
        ));
    }
    file.to_file().into_bytes()
}

/// A valid manifest for product "acme-gw", issued 2026-08-20, expiring 2026-09-20.
pub fn manifest(version: u64, security_version: u64) -> Manifest {
    let pinned = Pinned {
        sha256: Sha256([0xab; 32]),
        size: 536_870_912,
    };
    Manifest {
        format: 1,
        product: "acme-gw".into(),
        hardware: Some(vec!["acme-gw-revB".into(), "acme-gw-revC".into()]),
        devices: None,
        version,
        security_version,
        release: "2026.08.1".into(),
        issued_at: ts("2026-08-20T10:00:00Z"),
        expires: ts("2026-09-20T10:00:00Z"),
        digest: ChunkDigest::Sha512_256,
        compression: Compression::Zstd,
        chunk_stores: vec!["https://cdn-a.example/store/".into()],
        slots: BTreeMap::from([(
            "rootfs".into(),
            Slot {
                index: IndexRef {
                    path: "rootfs-2026.08.1.caibx".into(),
                    sha256: Sha256([0xcd; 32]),
                    size: 131_072,
                },
                image: pinned,
                chunk_size_max: 262_144,
            },
        )]),
    }
}

/// The manifest's bytes.
pub fn manifest_bytes(version: u64, security_version: u64) -> Vec<u8> {
    manifest(version, security_version).to_json().unwrap()
}

/// An "acme-gw" revB device.
pub fn device() -> Device {
    Device {
        compatible: "acme-gw".into(),
        hardware_id: Some("acme-gw-revB".into()),
        device_id: Some("gw-0001".into()),
        groups: vec!["group-a".into()],
    }
}

/// Clock inside the manifest's validity.
pub fn clock() -> Clock {
    Clock {
        system: ts("2026-09-01T00:00:00Z"),
        build_epoch: ts("2026-01-01T00:00:00Z"),
    }
}

/// The standard fixture: root keys 1..=3 (2-of-3), release keys 11, 12 (1-of-2).
pub struct Fixture {
    pub root_keys: Vec<SecretKey>,
    pub release_keys: Vec<SecretKey>,
    pub root: TrustRoot,
}

impl Fixture {
    pub fn new() -> Self {
        let root_keys = vec![key(1), key(2), key(3)];
        let release_keys = vec![key(11), key(12)];
        let root = root(
            1,
            &root_keys.iter().collect::<Vec<_>>(),
            2,
            &release_keys.iter().collect::<Vec<_>>(),
            1,
        );
        Self {
            root_keys,
            release_keys,
            root,
        }
    }

    /// Verifies `manifest` signed by `sig` with the default device, empty history and clock.
    pub fn verify(&self, manifest: &[u8], sig: &[u8]) -> Result<Outcome> {
        verify_manifest(
            &self.root,
            manifest,
            sig,
            &device(),
            &History::default(),
            clock(),
        )
    }
}
