//! Trust root rotation: S8 (fast-forward reset) and S19 (key compromise, revocation).

mod common;

use common::*;
use otasync_signing::*;

/// Signs `next`'s JSON with `keys` and rotates `from` to it.
fn rotate(from: &TrustRoot, next: &TrustRoot, keys: &[&SecretKey]) -> Result<Rotation> {
    let bytes = next.to_json();
    from.rotate(&bytes, &sign(&bytes, keys))
}

#[test]
fn s19_root_chain_1_2_3_is_accepted() {
    let k: Vec<SecretKey> = (1..=6).map(key).collect();
    let (r11, r12, r13) = (key(11), key(12), key(13));
    let v1 = root(1, &[&k[0], &k[1], &k[2]], 2, &[&r11], 1);
    let v2 = root(2, &[&k[1], &k[2], &k[3]], 2, &[&r11, &r12], 1);
    let v3 = root(3, &[&k[3], &k[4], &k[5]], 2, &[&r13], 1);
    // v1 keys 2 and 3 are also v2 keys: one pair meets both thresholds.
    let step = rotate(&v1, &v2, &[&k[1], &k[2]]).unwrap();
    assert_eq!(step.root, v2);
    let step = rotate(&step.root, &v3, &[&k[2], &k[3], &k[4]]).unwrap();
    assert_eq!(step.root.version(), 3);
    assert!(step.release_keys_changed);
    step.root.check_expiry(clock().system).unwrap();
    let manifest = manifest_bytes(1, 0);
    let result = verify_manifest(
        &step.root,
        &manifest,
        &sign(&manifest, &[&r13]),
        &device(),
        &History::default(),
        clock(),
    );
    assert!(matches!(result, Ok(Outcome::Update(_))));
}

#[test]
fn s19_root_signed_only_by_new_keys_is_rejected() {
    let f = Fixture::new();
    let (n4, n5, n6) = (key(4), key(5), key(6));
    let rel = &f.release_keys[0];
    let v2 = root(2, &[&n4, &n5, &n6], 2, &[rel], 1);
    assert_eq!(
        rotate(&f.root, &v2, &[&n4, &n5, &n6]),
        Err(Error::ThresholdNotMet {
            role: "root",
            valid: 0,
            threshold: 2
        })
    );
    // One old key is not a threshold either.
    assert!(matches!(
        rotate(&f.root, &v2, &[&f.root_keys[0], &n4, &n5]),
        Err(Error::ThresholdNotMet {
            role: "root",
            valid: 1,
            ..
        })
    ));
    // A root that lowers the threshold to 1 without old-key signatures.
    let lowered = root(2, &[&n4], 1, &[rel], 1);
    assert!(rotate(&f.root, &lowered, &[&n4]).is_err());
}

#[test]
fn s19_root_signed_only_by_old_keys_is_rejected() {
    let f = Fixture::new();
    let (n4, n5) = (key(4), key(5));
    let v2 = root(2, &[&n4, &n5], 2, &[&f.release_keys[0]], 1);
    let old: Vec<&SecretKey> = f.root_keys.iter().collect();
    assert!(matches!(
        rotate(&f.root, &v2, &old),
        Err(Error::ThresholdNotMet {
            role: "root",
            valid: 0,
            threshold: 2
        })
    ));
    let mut both = old.clone();
    both.extend([&n4, &n5]);
    assert!(rotate(&f.root, &v2, &both).is_ok());
}

#[test]
fn s19_root_version_must_be_exactly_the_next() {
    let f = Fixture::new();
    let signers: Vec<&SecretKey> = f.root_keys.iter().collect();
    let (roots, rel) = (&signers, &f.release_keys[0]);
    let same = root(1, roots, 2, &[rel], 1);
    let skip = root(3, roots, 2, &[rel], 1);
    assert!(matches!(
        rotate(&f.root, &same, roots),
        Err(Error::RollbackRejected {
            what: "trust root version",
            found: 1,
            minimum: 2
        })
    ));
    assert_eq!(
        rotate(&f.root, &skip, roots),
        Err(Error::VersionSkipped {
            expected: 2,
            found: 3
        })
    );
}

#[test]
fn s19_manifest_signed_by_revoked_key_is_rejected() {
    let f = Fixture::new();
    let roots: Vec<&SecretKey> = f.root_keys.iter().collect();
    let (revoked, kept) = (&f.release_keys[0], &f.release_keys[1]);
    let v2 = root(2, &roots, 2, &[kept], 1);
    let rotation = rotate(&f.root, &v2, &roots).unwrap();
    let manifest = manifest_bytes(1, 0);
    let verify = |keys: &[&SecretKey]| {
        let sig = sign(&manifest, keys);
        verify_manifest(
            &rotation.root,
            &manifest,
            &sig,
            &device(),
            &History::default(),
            clock(),
        )
    };
    assert!(matches!(
        verify(&[revoked]),
        Err(Error::ThresholdNotMet { .. })
    ));
    assert!(verify(&[kept]).is_ok());
}

#[test]
fn s8_release_key_rotation_resets_the_metadata_version_floor() {
    let f = Fixture::new();
    let compromised = &f.release_keys[0];
    let mut history = History::default();
    // The compromised key fast-forwards the device to version u64::MAX.
    let inflated = manifest_bytes(u64::MAX, 3);
    let sig = sign(&inflated, &[compromised]);
    let Ok(Outcome::Update(m)) =
        verify_manifest(&f.root, &inflated, &sig, &device(), &history, clock())
    else {
        panic!("validly signed");
    };
    history.accept(&m);
    history.commit(&m);
    // Root v2 replaces the release key.
    let fresh = key(20);
    let roots: Vec<&SecretKey> = f.root_keys.iter().collect();
    let rotation = rotate(&f.root, &root(2, &roots, 2, &[&fresh], 1), &roots).unwrap();
    assert!(rotation.release_keys_changed);
    let manifest = manifest_bytes(1, 3);
    let sig = sign(&manifest, &[&fresh]);
    let before = verify_manifest(
        &rotation.root,
        &manifest,
        &sig,
        &device(),
        &history,
        clock(),
    );
    assert!(matches!(before, Err(Error::RollbackRejected { .. })));
    history.after_rotation(&rotation);
    assert_eq!(history.metadata_version, 0);
    assert_eq!(history.security_floor, 3, "the security floor is not reset");
    let after = verify_manifest(
        &rotation.root,
        &manifest,
        &sig,
        &device(),
        &history,
        clock(),
    );
    assert!(matches!(after, Ok(Outcome::Update(m)) if m.version == 1));
}

#[test]
fn s8_rotation_keeping_release_keys_keeps_the_floor() {
    let f = Fixture::new();
    let roots: Vec<&SecretKey> = f.root_keys.iter().collect();
    let releases: Vec<&SecretKey> = f.release_keys.iter().rev().collect();
    let rotation = rotate(&f.root, &root(2, &roots, 1, &releases, 2), &roots).unwrap();
    assert!(!rotation.release_keys_changed);
    let mut history = History {
        metadata_version: 9,
        ..History::default()
    };
    history.after_rotation(&rotation);
    assert_eq!(history.metadata_version, 9);
}
