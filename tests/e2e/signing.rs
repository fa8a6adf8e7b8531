//! The signing verbs end to end: keygen, root create/rotate, manifest create, sign, verify (its
//! exit codes), and signify-openbsd checking our signatures.

use crate::support::{fails, ok, otasync, random_bytes, s};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

const NOW: &str = "--now=2026-09-01T00:00:00Z";

/// A release set-up in a temporary directory: root key r1, release keys a and b, root.json
/// (release threshold `threshold`), an image, its index and an unsigned manifest.json.
struct Release {
    dir: tempfile::TempDir,
}

impl Release {
    fn new(threshold: &str) -> Self {
        let release = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        for name in ["r1", "r2", "a", "b"] {
            release.keygen(name);
        }
        let (r1, a, b) = (
            release.path("r1.pub"),
            release.path("a.pub"),
            release.path("b.pub"),
        );
        ok(otasync(&[
            "root",
            "create",
            s(&release.path("root.json")),
            "--expires=2030-01-01T00:00:00Z",
            "--root-key",
            s(&r1),
            "--release-key",
            s(&a),
            "--release-key",
            s(&b),
            "--release-threshold",
            threshold,
        ]));
        let image = release.path("rootfs.img");
        std::fs::write(&image, random_bytes(300_000, 7)).unwrap();
        let store = release.path("store");
        let index = release.path("rootfs.caibx");
        ok(otasync(&[
            "make",
            "--store",
            s(&store),
            s(&index),
            s(&image),
        ]));
        release.manifest(5);
        release
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn keygen(&self, name: &str) -> String {
        ok(otasync(&[
            "keygen",
            "--secret-key",
            s(&self.path(&format!("{name}.sec"))),
            "--public-key",
            s(&self.path(&format!("{name}.pub"))),
        ]))
    }

    /// (Re)writes manifest.json with metadata version `version`.
    fn manifest(&self, version: u64) {
        let slot = format!(
            "rootfs={}:{}",
            s(&self.path("rootfs.caibx")),
            s(&self.path("rootfs.img"))
        );
        let mut cmd = otasync(&["manifest", "create", s(&self.path("manifest.json")), &slot]);
        cmd.args(["--product=acme-gw", "--release=2026.08.1"])
            .arg(format!("--metadata-version={version}"))
            .args([
                "--issued-at=2026-08-20T10:00:00Z",
                "--expires=2026-09-20T10:00:00Z",
            ]);
        ok(cmd);
    }

    fn sign(&self, file: &str, keys: &[&str], append: bool) {
        let mut cmd = otasync(&["sign", s(&self.path(file))]);
        for key in keys {
            cmd.arg("--key").arg(self.path(&format!("{key}.sec")));
        }
        if append {
            cmd.arg("--append");
        }
        ok(cmd);
    }

    fn verify(&self, extra: &[&str]) -> Command {
        let root = format!("--root={}", s(&self.path("root.json")));
        let mut cmd = otasync(&["verify", &root, "--compatible=acme-gw", NOW]);
        cmd.args(extra).arg(self.path("manifest.json"));
        cmd
    }
}

#[test]
fn keygen_writes_a_private_secret_key_and_prints_only_the_key_id() {
    let release = Release::new("1");
    let printed = release.keygen("c");
    let secret = std::fs::read_to_string(release.path("c.sec")).unwrap();
    let mode = std::fs::metadata(release.path("c.sec"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(printed.trim().len(), 64, "a key id: {printed}");
    assert!(!printed.contains(secret.lines().nth(1).unwrap()));
    // Never overwrites a key.
    let again = otasync(&[
        "keygen",
        "--secret-key",
        s(&release.path("c.sec")),
        "--public-key",
        s(&release.path("c2.pub")),
    ]);
    fails(again, 1);
    assert_eq!(
        std::fs::read_to_string(release.path("c.sec")).unwrap(),
        secret
    );
}

#[test]
fn verify_accepts_a_signed_manifest_and_exit_codes_say_why_not() {
    let release = Release::new("1");
    release.sign("manifest.json", &["a"], false);
    let out = ok(release.verify(&[]));
    assert!(out.starts_with("update: acme-gw version 5"), "{out}");
    assert!(ok(release.verify(&["--last-version=5"])).starts_with("up-to-date"));
    fails(release.verify(&["--last-version=6"]), 8);
    fails(release.verify(&["--security-floor=1"]), 8);
    fails(release.verify(&["--now=2026-09-20T10:00:00Z"]), 7);
    fails(release.verify(&["--build-epoch=2026-10-01T00:00:00Z"]), 7);
    fails(release.verify(&["--compatible=acme-cam"]), 9);
    // A root key cannot sign releases.
    release.sign("manifest.json", &["r1"], false);
    fails(release.verify(&[]), 6);
    // Tampering after signing.
    release.sign("manifest.json", &["b"], false);
    let manifest = release.path("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("2026.08.1", "2026.08.2")).unwrap();
    fails(release.verify(&[]), 6);
    // A newer format, correctly signed, is unsupported.
    std::fs::write(&manifest, text.replace("\"format\": 1", "\"format\": 2")).unwrap();
    release.sign("manifest.json", &["b"], false);
    fails(release.verify(&[]), 10);
}

#[test]
fn a_threshold_of_two_needs_two_distinct_signers() {
    let release = Release::new("2");
    release.sign("manifest.json", &["a"], false);
    fails(release.verify(&[]), 6);
    release.sign("manifest.json", &["a"], true);
    fails(release.verify(&[]), 6);
    release.sign("manifest.json", &["b"], true);
    ok(release.verify(&["--json"]));
    let sig = std::fs::read_to_string(release.path("manifest.json.sig")).unwrap();
    assert_eq!(sig.lines().count(), 4, "{sig}");
}

#[test]
fn root_rotation_needs_old_and_new_root_keys() {
    let release = Release::new("1");
    let (r2, a) = (release.path("r2.pub"), release.path("a.pub"));
    let next = release.path("2.root.json");
    ok(otasync(&[
        "root",
        "create",
        s(&next),
        "--version=2",
        "--expires=2030-01-01T00:00:00Z",
        "--root-key",
        s(&r2),
        "--release-key",
        s(&a),
    ]));
    let trusted = release.path("root.json");
    let rotate = || otasync(&["root", "rotate", "--trusted", s(&trusted), s(&next)]);
    release.sign("2.root.json", &["r2"], false);
    fails(rotate(), 6);
    release.sign("2.root.json", &["r1"], false);
    fails(rotate(), 6);
    release.sign("2.root.json", &["r2"], true);
    // The release key set changed (b was dropped): the version floor resets.
    release.sign("manifest.json", &["a"], false);
    let update = format!("--root-update={}", s(&next));
    ok(release.verify(&[&update, "--last-version=9", "--json"]));
    let out = ok(rotate());
    assert!(out.contains("trust root version 2"), "{out}");
    assert_eq!(
        std::fs::read(&trusted).unwrap(),
        std::fs::read(&next).unwrap()
    );
    // b was revoked by version 2.
    release.sign("manifest.json", &["b"], false);
    fails(release.verify(&[]), 6);
}

#[test]
fn signify_openbsd_verifies_our_signatures() {
    let release = Release::new("1");
    release.sign("manifest.json", &["a", "b"], false);
    let status = Command::new("signify-openbsd")
        .args(["-V", "-q"])
        .arg("-p")
        .arg(release.path("a.pub"))
        .arg("-x")
        .arg(release.path("manifest.json.sig"))
        .arg("-m")
        .arg(release.path("manifest.json"))
        .status();
    let Ok(status) = status else {
        assert!(
            std::env::var_os("CI").is_none(),
            "signify-openbsd must be installed in CI (apt-get install signify-openbsd)"
        );
        eprintln!("SKIPPED: signify-openbsd is not installed (apt-get install signify-openbsd)");
        return;
    };
    assert!(status.success());
    // The second block, on its own, checks with the second key.
    let sig = std::fs::read_to_string(release.path("manifest.json.sig")).unwrap();
    let second: Vec<&str> = sig.lines().skip(2).collect();
    let path = release.path("b.sig");
    std::fs::write(&path, second.join("\n") + "\n").unwrap();
    let status = Command::new("signify-openbsd")
        .args(["-V", "-q", "-p", s(&release.path("b.pub")), "-x", s(&path)])
        .args(["-m", s(&release.path("manifest.json"))])
        .status()
        .unwrap();
    assert!(status.success());
}
