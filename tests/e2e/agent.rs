//! The OTA agent end to end (ota-agent.md §1.5, §6): a device with two file-backed slots, a
//! redundant U-Boot environment read and written by Debian's fw_printenv/fw_setenv too, and a
//! release server on 127.0.0.1. Each S-requirement of §1.5 that concerns the agent has a test
//! named after it; they run over plain HTTP so that TLS is not what they rely on (S22 has its
//! own HTTPS test).

use crate::fault_server::{Fault, FaultServer};
use crate::support::{fails, ok, otasync, random_bytes, s};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const EXIT_FAILURE: i32 = 1;
const EXIT_INVALID_INPUT: i32 = 3;
const EXIT_CHUNK_CORRUPT: i32 = 5;
const EXIT_SIGNATURE: i32 = 6;
const EXIT_EXPIRED: i32 = 7;
const EXIT_ROLLBACK: i32 = 8;
const EXIT_INCOMPATIBLE: i32 = 9;

/// Bytes of each slot (the images are smaller).
const SLOT_SIZE: usize = 40 << 20;

/// A device and its release server's files, in one temporary directory.
pub(crate) struct Device {
    pub(crate) dir: tempfile::TempDir,
}

impl Device {
    /// Keys, trust root, images v0 (in B), v1 (in A, booted), v2 (published later), a redundant
    /// U-Boot environment booting A then B, and a store of v1's chunks on the server.
    pub(crate) fn new() -> Option<Self> {
        if Command::new("mkfs.ext4").arg("-V").output().is_err()
            || Command::new("fw_printenv").arg("-V").output().is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI installs e2fsprogs and libubootenv-tool"
            );
            eprintln!("SKIPPED: needs mkfs.ext4 (e2fsprogs) and fw_printenv (libubootenv-tool)");
            return None;
        }
        let device = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        for dir in ["www/store", "images", "state"] {
            std::fs::create_dir_all(device.path(dir)).unwrap();
        }
        for name in ["root", "release"] {
            ok(otasync(&[
                "keygen",
                "--secret-key",
                s(&device.path(&format!("{name}.sec"))),
                "--public-key",
                s(&device.path(&format!("{name}.pub"))),
            ]));
        }
        ok(otasync(&[
            "root",
            "create",
            s(&device.path("root.json")),
            "--root-key",
            s(&device.path("root.pub")),
            "--release-key",
            s(&device.path("release.pub")),
        ]));
        device.image("v0", 0);
        device.image("v1", 1);
        device.image("v2", 2);
        device.slot("a.img", "v1");
        device.slot("b.img", "v0");
        // The redundant environment: copy 0 valid, copy 1 blank.
        let text = device.path("env.txt");
        std::fs::write(&text, "BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n").unwrap();
        let copy = device.path("env0.bin");
        ok(Command::new("mkenvimage").args(["-r", "-s", "0x4000", "-o", s(&copy), s(&text)]));
        let mut env = std::fs::read(&copy).unwrap();
        env.resize(0x8000, 0);
        std::fs::write(device.path("uboot.env"), env).unwrap();
        let env = device.path("uboot.env");
        std::fs::write(
            device.path("fw_env.config"),
            format!("{0} 0x0000 0x4000\n{0} 0x4000 0x4000\n", s(&env)),
        )
        .unwrap();
        device.reboot_into("A");
        Some(device)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An ext4 image `images/NAME.img` of 32 MiB whose files depend on `version`: most stay
    /// the same from one version to the next, some change, some are added.
    fn image(&self, name: &str, version: u64) {
        let tree = self.path(&format!("images/{name}.d"));
        std::fs::create_dir_all(tree.join("usr/lib")).unwrap();
        for i in 0..40u64 {
            let seed = if i % 10 == 3 { 1000 * version + i } else { i };
            let file = tree.join(format!("usr/lib/lib{i}.so"));
            std::fs::write(file, random_bytes(200_000 + (i as usize) * 997, seed)).unwrap();
        }
        std::fs::write(tree.join("etc-version"), format!("release {version}\n")).unwrap();
        let image = self.path(&format!("images/{name}.img"));
        ok(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-b", "4096", "-d", s(&tree)])
            .args([
                "-U",
                "0b9d2a4e-6c1e-4a3c-9e55-1f2f3a4b5c6d",
                "-E",
                "hash_seed=0b9d2a4e-6c1e-4a3c-9e55-1f2f3a4b5c6d",
            ])
            .arg(&image)
            .arg("32M")
            .env("E2FSPROGS_FAKE_TIME", "1700000000"));
    }

    /// A slot file holding image `name`, padded to [`SLOT_SIZE`].
    fn slot(&self, slot: &str, name: &str) {
        let mut bytes = std::fs::read(self.path(&format!("images/{name}.img"))).unwrap();
        bytes.resize(SLOT_SIZE, 0xa5);
        std::fs::write(self.path(slot), bytes).unwrap();
    }

    /// The kernel command line and boot id of a boot into `bootname`.
    pub(crate) fn reboot_into(&self, bootname: &str) {
        std::fs::write(
            self.path("cmdline"),
            format!("console=ttyS0 otasync.slot={bootname} ro"),
        )
        .unwrap();
        let id = format!("{:016x}", rand_id());
        std::fs::write(self.path("boot_id"), id).unwrap();
    }

    /// Publishes image `name` as metadata version `version` into www/ (index, chunks, signed
    /// manifest); `extra` goes to `manifest create`.
    pub(crate) fn publish(&self, name: &str, version: u64, extra: &[&str]) {
        let index = self.path(&format!("www/{name}.caibx"));
        let image = self.path(&format!("images/{name}.img"));
        ok(otasync(&[
            "make",
            "--store",
            s(&self.path("www/store")),
            s(&index),
            s(&image),
        ]));
        let slot = format!("rootfs={}:{}", s(&index), s(&image));
        let mut create = otasync(&[
            "manifest",
            "create",
            s(&self.path("www/manifest.json")),
            &slot,
        ]);
        create
            .args(["--product=acme-gw", &format!("--release={name}")])
            .arg(format!("--metadata-version={version}"))
            .args(extra);
        ok(create);
        self.sign();
    }

    /// Signs www/manifest.json with the release key.
    pub(crate) fn sign(&self) {
        ok(otasync(&[
            "sign",
            s(&self.path("www/manifest.json")),
            "--key",
            s(&self.path("release.sec")),
        ]));
    }

    /// Writes system.json for a release at `base` (…/manifest.json, …/store), plus `extra`
    /// top-level fields (JSON text starting with a comma).
    pub(crate) fn configure(&self, base: &str, extra: &str) -> PathBuf {
        let d = s(self.dir.path());
        let config = format!(
            r#"{{"compatible":"acme-gw","hardware_id":"revB","groups":["beta"],
              "slots":[{{"class":"rootfs","bootname":"A","device":"{d}/a.img"}},
                       {{"class":"rootfs","bootname":"B","device":"{d}/b.img"}}],
              "booted":{{"cmdline":"{d}/cmdline","boot_id":"{d}/boot_id"}},
              "bootloader":{{"backend":"uboot","fw_env_config":"{d}/fw_env.config","boot_attempts":3}},
              "release_url":"{base}/manifest.json","stores":["{base}/store"],
              "trust_root":"{d}/root.json","state_dir":"{d}/state",
              "deadline_s":60{extra}}}"#
        );
        let path = self.path("system.json");
        std::fs::write(&path, config).unwrap();
        path
    }

    /// `otasync VERB --config=system.json`.
    pub(crate) fn agent(&self, verb: &str) -> Command {
        let mut cmd = otasync(&[verb]);
        cmd.arg(format!("--config={}", s(&self.path("system.json"))));
        cmd
    }

    /// `otasync status --json`.
    pub(crate) fn status(&self) -> Value {
        let mut cmd = otasync(&["--json", "status"]);
        cmd.arg(format!("--config={}", s(&self.path("system.json"))));
        serde_json::from_str(&ok(cmd)).unwrap()
    }

    /// The U-Boot environment as Debian's fw_printenv reads it.
    pub(crate) fn env(&self) -> String {
        ok(Command::new("fw_printenv").args(["-c", s(&self.path("fw_env.config"))]))
    }

    /// One variable of the environment.
    pub(crate) fn env_var(&self, name: &str) -> String {
        self.env()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_owned))
            .unwrap_or_default()
    }

    /// True when slot B holds image `name` (and padding after it).
    pub(crate) fn b_holds(&self, name: &str) -> bool {
        let image = std::fs::read(self.path(&format!("images/{name}.img"))).unwrap();
        let slot = std::fs::read(self.path("b.img")).unwrap();
        slot.len() == SLOT_SIZE && slot[..image.len()] == image[..]
    }
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// A device whose server publishes v2 (metadata version 2, security version 1) over plain HTTP.
fn with_v2(fault: Fault) -> Option<(Device, FaultServer)> {
    let device = Device::new()?;
    device.publish("v2", 2, &["--security-version=1"]);
    let server = FaultServer::start(device.path("www"), fault);
    device.configure(server.url("").trim_end_matches('/'), "");
    Some((device, server))
}

#[test]
fn update_installs_activates_and_commits_over_https() {
    let Some(device) = Device::new() else { return };
    device.publish("v2", 2, &["--security-version=1"]);
    let pki = crate::tls::TestPki::new(device.dir.path());
    let served = crate::http::Served::start(
        &device.path("www"),
        &[
            &format!("--tls-cert={}", s(&pki.server_cert)),
            &format!("--tls-key={}", s(&pki.server_key)),
        ],
    );
    assert!(served.base.starts_with("https://"));
    let tls = format!(r#","tls":{{"ca":"{}","https_only":true}}"#, s(&pki.ca));
    device.configure(served.base.trim_end_matches('/'), &tls);
    ok(otasync(&[
        "check-config",
        "--on-device",
        s(&device.path("system.json")),
    ]));

    let out = ok(device.agent("update"));
    assert!(out.contains("installed v2"), "{out}");
    assert!(device.b_holds("v2"));
    assert_eq!(device.env_var("BOOT_ORDER"), "B A");
    assert_eq!(device.env_var("BOOT_B_LEFT"), "3");
    let status = device.status();
    assert_eq!(status["journal"]["phase"], "activated");
    let progress = &status["progress"];
    let from_network = progress["bytes_from_network"].as_u64().unwrap();
    let total = progress["bytes_total"].as_u64().unwrap();
    assert_eq!(total, 32 << 20);
    // Only what A and B lack is fetched: a few changed files, not the image.
    assert!(from_network > 0 && from_network < total / 4, "{progress}");
    let reused = progress["bytes_from_seeds"].as_u64().unwrap()
        + progress["bytes_in_place"].as_u64().unwrap();
    assert!(reused + from_network >= total, "{progress}");

    // Running the update again before the reboot changes nothing.
    assert!(ok(device.agent("update")).contains("up to date"));

    // Reboot into B: on trial; mark-good commits and raises the security floor.
    device.reboot_into("B");
    assert_eq!(device.status()["journal"]["phase"], "trial");
    assert_eq!(device.status()["history"]["security_floor"], 0);
    ok(device.agent("mark-good"));
    let status = device.status();
    assert_eq!(status["journal"]["phase"], "committed");
    assert_eq!(status["history"]["security_floor"], 1);
    assert_eq!(device.env_var("BOOT_ORDER"), "B A");
}

#[test]
fn s1_a_flipped_byte_in_the_manifest_is_rejected_before_any_fetch() {
    let Some((device, server)) = with_v2(Fault::None) else {
        return;
    };
    let env_before = std::fs::read(device.path("uboot.env")).unwrap();
    let manifest = device.path("www/manifest.json");
    let mut bytes = std::fs::read(&manifest).unwrap();
    let at = bytes.iter().position(|&b| b == b'v').unwrap();
    bytes[at] = b'w';
    std::fs::write(&manifest, bytes).unwrap();
    fails(device.agent("update"), EXIT_SIGNATURE);
    assert_eq!(server.count(".caibx"), 0);
    assert_eq!(std::fs::read(device.path("uboot.env")).unwrap(), env_before);
    assert!(device.b_holds("v0"));
}

#[test]
fn s4_another_product_or_hardware_is_incompatible_and_nothing_is_fetched() {
    let Some((device, server)) = with_v2(Fault::None) else {
        return;
    };
    let env_before = std::fs::read(device.path("uboot.env")).unwrap();
    device.publish("v2", 2, &["--hardware=revA"]);
    fails(device.agent("update"), EXIT_INCOMPATIBLE);
    let mut create = otasync(&["manifest", "create", s(&device.path("www/manifest.json"))]);
    create
        .arg(format!(
            "rootfs={}:{}",
            s(&device.path("www/v2.caibx")),
            s(&device.path("images/v2.img"))
        ))
        .args(["--product=other-gw", "--release=v2", "--metadata-version=2"]);
    ok(create);
    device.sign();
    fails(device.agent("update"), EXIT_INCOMPATIBLE);
    assert_eq!(server.count(".caibx"), 0);
    assert_eq!(std::fs::read(device.path("uboot.env")).unwrap(), env_before);
}

#[test]
fn s5_older_metadata_is_rejected_and_the_same_is_up_to_date() {
    let Some((device, _server)) = with_v2(Fault::None) else {
        return;
    };
    device.publish("v2", 6, &[]);
    ok(device.agent("update"));
    device.publish("v1", 5, &[]);
    fails(device.agent("update"), EXIT_ROLLBACK);
    device.publish("v2", 6, &[]);
    assert!(ok(device.agent("update")).contains("up to date"));
}

#[test]
fn s6_a_fallback_before_commit_keeps_the_floor_and_lower_security_versions_fail_after() {
    let Some((device, _server)) = with_v2(Fault::None) else {
        return;
    };
    device.publish("v2", 2, &["--security-version=7"]);
    ok(device.agent("update"));
    // The boot script exhausted B's attempts and fell back to A.
    ok(Command::new("fw_setenv").args([
        "-c",
        s(&device.path("fw_env.config")),
        "BOOT_B_LEFT",
        "0",
    ]));
    device.reboot_into("A");
    let status = device.status();
    assert_eq!(status["journal"]["phase"], "rolled-back");
    assert_eq!(status["history"]["security_floor"], 0);
    assert_eq!(device.env_var("BOOT_ORDER").split(' ').next(), Some("A"));
    // Installed again and committed: the floor is 7, and a release with 6 is refused.
    device.publish("v2", 3, &["--security-version=7"]);
    ok(device.agent("update"));
    device.reboot_into("B");
    ok(device.agent("mark-good"));
    assert_eq!(device.status()["history"]["security_floor"], 7);
    device.publish("v1", 4, &["--security-version=6"]);
    fails(device.agent("update"), EXIT_ROLLBACK);
}

#[test]
fn s7_an_expired_manifest_is_refused() {
    let Some((device, _server)) = with_v2(Fault::None) else {
        return;
    };
    device.publish(
        "v2",
        2,
        &[
            "--issued-at=2020-01-01T00:00:00Z",
            "--expires=2020-02-01T00:00:00Z",
        ],
    );
    fails(device.agent("update"), EXIT_EXPIRED);
    assert!(device.b_holds("v0"));
}

#[test]
fn s8_a_rotated_release_key_resets_an_inflated_metadata_version() {
    let Some((device, _server)) = with_v2(Fault::None) else {
        return;
    };
    // The old release key signs an absurd version, and the device accepts it.
    device.publish("v2", u64::MAX, &[]);
    ok(device.agent("update"));
    assert_eq!(device.status()["history"]["metadata_version"], u64::MAX);
    // Root v2 replaces the release key (signed by the root key, which stays).
    ok(otasync(&[
        "keygen",
        "--secret-key",
        s(&device.path("release2.sec")),
        "--public-key",
        s(&device.path("release2.pub")),
    ]));
    std::fs::create_dir_all(device.path("www/roots")).unwrap();
    let root2 = device.path("www/roots/2.json");
    ok(otasync(&[
        "root",
        "create",
        s(&root2),
        "--version=2",
        "--root-key",
        s(&device.path("root.pub")),
        "--release-key",
        s(&device.path("release2.pub")),
    ]));
    ok(otasync(&[
        "sign",
        s(&root2),
        "--key",
        s(&device.path("root.sec")),
    ]));
    // Version 1 signed by the new key is accepted; by the old key it is not.
    device.publish("v1", 1, &[]);
    fails(device.agent("update"), EXIT_SIGNATURE);
    ok(otasync(&[
        "sign",
        s(&device.path("www/manifest.json")),
        "--key",
        s(&device.path("release2.sec")),
    ]));
    ok(device.agent("update"));
    assert!(device.b_holds("v1"));
    assert_eq!(device.status()["history"]["metadata_version"], 1);
}

#[test]
fn s9_an_index_from_another_release_is_refused_and_a_new_manifest_restarts() {
    let Some((device, server)) = with_v2(Fault::None) else {
        return;
    };
    // Replace v2's index with v1's (also validly made) after signing.
    ok(otasync(&[
        "make",
        "--store",
        s(&device.path("www/store")),
        s(&device.path("www/v2.caibx")),
        s(&device.path("images/v1.img")),
    ]));
    let err = fails(device.agent("update"), EXIT_INVALID_INPUT);
    assert!(err.contains("v2.caibx"), "{err}");
    assert!(device.b_holds("v0"));
    assert_eq!(device.env_var("BOOT_ORDER"), "A B");
    drop(server);
    // A newer manifest replaces the interrupted installation and completes.
    device.publish("v2", 3, &[]);
    let server = FaultServer::start(device.path("www"), Fault::None);
    device.configure(server.url("").trim_end_matches('/'), "");
    ok(device.agent("update"));
    assert!(device.b_holds("v2"));
    assert_eq!(device.status()["journal"]["version"], 3);
}

#[test]
fn s10_endless_manifests_and_overlong_indexes_are_cut_off() {
    let Some((device, _server)) = with_v2(Fault::None) else {
        return;
    };
    let endless = FaultServer::start(device.path("www"), Fault::Endless);
    device.configure(endless.url("").trim_end_matches('/'), "");
    let started = std::time::Instant::now();
    let err = fails(device.agent("update"), EXIT_INVALID_INPUT);
    assert!(err.contains("limit"), "{err}");
    assert!(started.elapsed().as_secs() < 30);
    // An index one byte longer than the manifest says.
    let server = FaultServer::start(device.path("www"), Fault::None);
    device.configure(server.url("").trim_end_matches('/'), "");
    let index = device.path("www/v2.caibx");
    let mut bytes = std::fs::read(&index).unwrap();
    bytes.push(0);
    std::fs::write(&index, bytes).unwrap();
    let err = fails(device.agent("update"), EXIT_INVALID_INPUT);
    assert!(err.contains("limit"), "{err}");
    assert!(device.b_holds("v0"));
}

#[test]
fn s12_an_image_larger_than_its_slot_is_refused_before_any_write() {
    let Some((device, _server)) = with_v2(Fault::None) else {
        return;
    };
    let b = std::fs::OpenOptions::new()
        .write(true)
        .open(device.path("b.img"))
        .unwrap();
    b.set_len(16 << 20).unwrap();
    let before = std::fs::read(device.path("b.img")).unwrap();
    let err = fails(device.agent("update"), EXIT_INCOMPATIBLE);
    assert!(err.contains("holds"), "{err}");
    assert_eq!(std::fs::read(device.path("b.img")).unwrap(), before);
    assert_eq!(device.env_var("BOOT_ORDER").split(' ').next(), Some("A"));
}

#[test]
fn s13_a_malformed_index_is_rejected_even_when_pinned() {
    let Some((device, _server)) = with_v2(Fault::None) else {
        return;
    };
    let env_before = std::fs::read(device.path("uboot.env")).unwrap();
    // A truncated index, pinned (hash and length) by a correctly signed manifest: `manifest
    // create` refuses such an index, so the pin is edited in and the manifest signed again.
    let index = device.path("www/v2.caibx");
    let mut bytes = std::fs::read(&index).unwrap();
    bytes.truncate(bytes.len() - 40);
    std::fs::write(&index, &bytes).unwrap();
    let manifest_path = device.path("www/manifest.json");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let sha256 = otasync_core::DigestAlgorithm::Sha256
        .digest(&bytes)
        .to_string();
    manifest["slots"]["rootfs"]["index"]["sha256"] = sha256.into();
    manifest["slots"]["rootfs"]["index"]["size"] = bytes.len().into();
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    device.sign();
    let err = fails(device.agent("update"), EXIT_INVALID_INPUT);
    assert!(err.contains("v2.caibx"), "{err}");
    assert_eq!(std::fs::read(device.path("uboot.env")).unwrap(), env_before);
    assert!(device.b_holds("v0"));
}

#[test]
fn s14_s17_corrupt_or_failing_mirrors_fall_through_and_all_bad_is_an_abort() {
    let Some((device, good)) = with_v2(Fault::None) else {
        return;
    };
    let corrupt = FaultServer::start(device.path("www"), Fault::Corrupt);
    let failing = FaultServer::start(device.path("www"), Fault::Status(500));
    let base = good.url("").trim_end_matches('/').to_owned();
    // Every mirror corrupt: abort, B not activated.
    let config = device.configure(&base, r#","min_rate_bps":1"#);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!(r#""stores":["{base}/store"]"#),
        &format!(r#""stores":["{}"]"#, corrupt.url("store")),
    );
    std::fs::write(&config, text).unwrap();
    fails(device.agent("update"), EXIT_CHUNK_CORRUPT);
    assert_eq!(device.env_var("BOOT_ORDER").split(' ').next(), Some("A"));
    assert_eq!(device.env_var("BOOT_B_LEFT"), "0");
    // 500s, then corrupt chunks, then a good mirror: completes from the good one.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!(r#""stores":["{}"]"#, corrupt.url("store")),
        &format!(
            r#""stores":["{}","{}","{base}/store"]"#,
            failing.url("store"),
            corrupt.url("store")
        ),
    );
    std::fs::write(&config, text).unwrap();
    ok(device.agent("update"));
    assert!(device.b_holds("v2"));
    assert!(failing.count("/store/") > 0 && corrupt.count("/store/") > 0);
}

#[test]
fn s15_a_corrupted_seed_chunk_comes_from_the_store() {
    let Some((device, server)) = with_v2(Fault::None) else {
        return;
    };
    // Damage A in the middle of a file both versions share.
    let mut a = std::fs::read(device.path("a.img")).unwrap();
    for b in &mut a[4 << 20..(4 << 20) + 4096] {
        *b ^= 0xff;
    }
    std::fs::write(device.path("a.img"), a).unwrap();
    ok(device.agent("update"));
    assert!(device.b_holds("v2"));
    assert!(server.count("/store/") > 0);
}

#[test]
fn a_target_changed_since_its_installation_is_caught_by_the_final_hash_and_rechecked() {
    let Some((device, _server)) = with_v2(Fault::None) else {
        return;
    };
    ok(device.agent("update"));
    assert!(device.b_holds("v2"));
    assert_eq!(device.status()["progress"]["rechecks"], 0);
    // B changes behind the agent's back (mounted read-write), then v1 is released again: the
    // chunks B's recorded index promises in place are taken unread, the image hash fails, and
    // every chunk is checked again.
    device.publish("v1", 3, &[]);
    let spans = |name: &str| {
        let bytes = std::fs::read(device.path(&format!("www/{name}.caibx"))).unwrap();
        let index = otasync_core::Index::decode(&bytes).unwrap();
        index
            .spans()
            .map(|s| (s.start, s.end, s.id))
            .collect::<Vec<_>>()
    };
    let v2 = spans("v2");
    // A non-zero chunk both releases have at the same offset: taken unread from B.
    let image = std::fs::read(device.path("images/v1.img")).unwrap();
    let shared = spans("v1")
        .into_iter()
        .filter(|c| v2.contains(c))
        .find(|&(start, end, _)| image[start as usize..end as usize].iter().any(|&b| b != 0))
        .expect("v1 and v2 share a chunk at the same offset");
    let mut b = std::fs::read(device.path("b.img")).unwrap();
    let middle = ((shared.0 + shared.1) / 2) as usize;
    for byte in &mut b[middle..middle + 100] {
        *byte ^= 0x5a;
    }
    std::fs::write(device.path("b.img"), b).unwrap();
    ok(device.agent("update"));
    assert!(device.b_holds("v1"));
    let progress = device.status()["progress"].clone();
    assert_eq!(progress["rechecks"], 1, "{progress}");
}

#[test]
fn s16_unknown_slots_and_redirects_are_refused() {
    let Some((device, _server)) = with_v2(Fault::None) else {
        return;
    };
    let mut create = otasync(&["manifest", "create", s(&device.path("www/manifest.json"))]);
    create
        .arg(format!(
            "appfs={}:{}",
            s(&device.path("www/v2.caibx")),
            s(&device.path("images/v2.img"))
        ))
        .args(["--product=acme-gw", "--release=v2", "--metadata-version=2"]);
    ok(create);
    device.sign();
    let err = fails(device.agent("update"), EXIT_INCOMPATIBLE);
    assert!(err.contains("appfs"), "{err}");
    // A server redirecting elsewhere is not followed.
    device.publish("v2", 2, &[]);
    let target = FaultServer::start(device.path("www"), Fault::None);
    let redirect = FaultServer::start(device.path("www"), Fault::RedirectTo(target.port));
    device.configure(redirect.url("").trim_end_matches('/'), "");
    fails(device.agent("update"), EXIT_FAILURE);
    assert_eq!(target.count("manifest"), 0);
}

#[test]
fn s18_a_trickling_server_is_abandoned_and_the_next_run_resumes() {
    let Some((device, _server)) = with_v2(Fault::None) else {
        return;
    };
    let slow = FaultServer::start(device.path("www"), Fault::Trickle);
    let config = device.configure(slow.url("").trim_end_matches('/'), r#","deadline_s":4"#);
    let started = std::time::Instant::now();
    assert!(!device.agent("update").status().unwrap().success());
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    drop(config);
    let server = FaultServer::start(device.path("www"), Fault::None);
    device.configure(server.url("").trim_end_matches('/'), "");
    ok(device.agent("update"));
    assert!(device.b_holds("v2"));
}

#[test]
fn s20_nothing_is_activated_until_every_slot_is_written() {
    let Some((device, server)) = with_v2(Fault::None) else {
        return;
    };
    // Remove the store's chunks: writing fails part-way.
    std::fs::rename(device.path("www/store"), device.path("www/store.away")).unwrap();
    assert!(!device.agent("update").status().unwrap().success());
    assert_eq!(device.env_var("BOOT_ORDER").split(' ').next(), Some("A"));
    assert_eq!(device.status()["journal"]["phase"], "writing");
    // The chunks come back: the next run resumes and activates.
    std::fs::rename(device.path("www/store.away"), device.path("www/store")).unwrap();
    ok(device.agent("update"));
    assert_eq!(device.env_var("BOOT_ORDER"), "B A");
    drop(server);
}

#[test]
fn s21_a_release_for_another_group_is_refused() {
    let Some((device, _server)) = with_v2(Fault::None) else {
        return;
    };
    device.publish("v2", 2, &["--device=group-b"]);
    fails(device.agent("update"), EXIT_INCOMPATIBLE);
    device.publish("v2", 3, &["--device=beta"]);
    ok(device.agent("update"));
}

#[test]
fn s22_a_server_outside_the_pinned_ca_fails_tls() {
    let Some(device) = Device::new() else { return };
    device.publish("v2", 2, &[]);
    let pki = crate::tls::TestPki::new(device.dir.path());
    let served = crate::http::Served::start(
        &device.path("www"),
        &[
            &format!("--tls-cert={}", s(&pki.server_cert)),
            &format!("--tls-key={}", s(&pki.server_key)),
        ],
    );
    let tls = format!(r#","tls":{{"ca":"{}"}}"#, s(&pki.other_ca));
    device.configure(served.base.trim_end_matches('/'), &tls);
    fails(device.agent("update"), EXIT_FAILURE);
    assert!(device.b_holds("v0"));
}

#[test]
fn the_running_slot_is_never_the_target_and_mark_bad_gives_it_up() {
    let Some((device, _server)) = with_v2(Fault::None) else {
        return;
    };
    ok(device.agent("update"));
    device.reboot_into("B");
    ok(device.agent("mark-bad"));
    let status = device.status();
    assert_eq!(status["journal"]["phase"], "failed");
    assert_eq!(status["history"]["security_floor"], 0);
    assert_eq!(device.env_var("BOOT_B_LEFT"), "0");
    assert_eq!(device.env_var("BOOT_ORDER").split(' ').next(), Some("A"));
}

#[test]
fn killed_at_random_points_the_installation_resumes_and_converges() {
    let Some((device, _server)) = with_v2(Fault::None) else {
        return;
    };
    for delay_ms in [30u64, 80, 150, 250, 400] {
        let mut child = device.agent("update").spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let order = device.env_var("BOOT_ORDER");
        if order.starts_with('B') {
            assert!(device.b_holds("v2"), "B activated while not holding v2");
        }
    }
    ok(device.agent("update"));
    assert!(device.b_holds("v2"));
    assert_eq!(device.env_var("BOOT_ORDER"), "B A");
    assert_eq!(device.status()["journal"]["phase"], "activated");
}

#[test]
fn check_config_validates_every_board_configuration() {
    let boards = Path::new(env!("CARGO_MANIFEST_DIR")).join("../board-configs");
    let Ok(entries) = std::fs::read_dir(&boards) else {
        return;
    };
    let mut checked = 0;
    for entry in entries {
        let config = entry.unwrap().path().join("system.json");
        if config.exists() {
            ok(otasync(&["check-config", s(&config)]));
            checked += 1;
        }
    }
    assert!(checked >= 4, "{checked} board configurations");
    // And a broken one is named as such.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("system.json");
    std::fs::write(&bad, r#"{"compatible":"x","slots":[]}"#).unwrap();
    fails(otasync(&["check-config", s(&bad)]), EXIT_INVALID_INPUT);
}
