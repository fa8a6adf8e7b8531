//! Interoperability with OpenBSD signify (Debian package `signify-openbsd`): our signatures and
//! keys check with it, and its keys and signatures work with us. Skipped with a message when
//! the tool is missing, except in CI (`CI` set), which installs it.

mod common;

use common::*;
use otasync_signing::*;
use std::path::Path;
use std::process::{Command, Output};

fn signify(args: &[&Path]) -> Option<Output> {
    let output = Command::new("signify-openbsd").args(args).output();
    match output {
        Ok(out) => Some(out),
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "signify-openbsd must be installed in CI (apt-get install signify-openbsd): {e}"
            );
            eprintln!(
                "SKIPPED: signify-openbsd is not installed (apt-get install signify-openbsd)"
            );
            None
        }
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `signify-openbsd -V -p PUB -x SIG -m MSG` succeeds.
fn signify_verifies(public: &Path, sig: &Path, message: &Path) -> Option<bool> {
    let p = Path::new;
    let out = signify(&[
        p("-V"),
        p("-q"),
        p("-p"),
        public,
        p("-x"),
        sig,
        p("-m"),
        message,
    ])?;
    Some(out.status.success())
}

#[test]
fn signify_verifies_each_block_of_our_signature_files() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (key(11), key(12));
    let manifest = manifest_bytes(1, 0);
    let m = write(dir.path(), "manifest.json", &manifest);
    let pa = write(
        dir.path(),
        "a.pub",
        a.public().to_file("a").unwrap().as_bytes(),
    );
    let pb = write(
        dir.path(),
        "b.pub",
        b.public().to_file("b").unwrap().as_bytes(),
    );
    let both = sign(&manifest, &[&a, &b]);
    let whole = write(dir.path(), "manifest.json.sig", &both);
    // signify reads the first block of the file.
    let Some(ok) = signify_verifies(&pa, &whole, &m) else {
        return;
    };
    assert!(ok, "signify rejects our signature");
    assert_eq!(signify_verifies(&pb, &whole, &m), Some(false), "wrong key");
    // Each block on its own is a complete signify signature file.
    let text = String::from_utf8(both).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let second = write(
        dir.path(),
        "b.sig",
        format!("{}\n{}\n", lines[2], lines[3]).as_bytes(),
    );
    assert_eq!(signify_verifies(&pb, &second, &m), Some(true));
    let tampered = write(dir.path(), "tampered.json", &manifest_bytes(2, 0));
    assert_eq!(signify_verifies(&pb, &second, &tampered), Some(false));
}

#[test]
fn keys_and_signatures_made_by_signify_work_with_us() {
    let dir = tempfile::tempdir().unwrap();
    let (public, secret) = (dir.path().join("k.pub"), dir.path().join("k.sec"));
    let p = Path::new;
    let Some(out) = signify(&[p("-G"), p("-n"), p("-p"), &public, p("-s"), &secret]) else {
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = PublicKey::from_file(&std::fs::read_to_string(&public).unwrap()).unwrap();
    let their_secret = SecretKey::from_file(&std::fs::read_to_string(&secret).unwrap()).unwrap();
    assert_eq!(their_secret.public(), theirs);
    let manifest = manifest_bytes(1, 0);
    let m = write(dir.path(), "manifest.json", &manifest);
    let sig = dir.path().join("manifest.json.sig");
    let out = signify(&[p("-S"), p("-s"), &secret, p("-m"), &m, p("-x"), &sig]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signature = std::fs::read(&sig).unwrap();
    // signify signs exactly as we do: Ed25519 is deterministic.
    let ours = SignatureFile::parse(&signature).unwrap();
    assert_eq!(ours.blocks[0].1, their_secret.sign(&manifest));
    let root = TrustRoot::new(
        1,
        ts("2030-01-01T00:00:00Z"),
        (&[key(1).public()], 1),
        (&[theirs], 1),
    )
    .unwrap();
    let result = verify_manifest(
        &root,
        &manifest,
        &signature,
        &device(),
        &History::default(),
        clock(),
    );
    assert!(matches!(result, Ok(Outcome::Update(_))));
}
