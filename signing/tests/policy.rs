//! Device bindings (S4, S21), the security version floor (S6) and manifest strictness.

mod common;

use common::*;
use otasync_signing::*;

#[test]
fn s4_other_product_or_hardware_is_incompatible() {
    let f = Fixture::new();
    let manifest = manifest_bytes(1, 0);
    let sig = sign(&manifest, &[&f.release_keys[0]]);
    let history = History::default();
    let mut other = device();
    other.compatible = "acme-cam".into();
    let result = verify_manifest(&f.root, &manifest, &sig, &other, &history, clock());
    assert!(matches!(
        result,
        Err(Error::Incompatible {
            what: "product",
            ..
        })
    ));
    let mut other = device();
    other.hardware_id = Some("acme-gw-revA".into());
    let result = verify_manifest(&f.root, &manifest, &sig, &other, &history, clock());
    assert!(matches!(
        result,
        Err(Error::Incompatible {
            what: "hardware",
            ..
        })
    ));
    other.hardware_id = None;
    let result = verify_manifest(&f.root, &manifest, &sig, &other, &history, clock());
    assert!(matches!(
        result,
        Err(Error::Incompatible {
            what: "hardware",
            ..
        })
    ));
}

#[test]
fn s6_security_floor_is_raised_only_at_commit() {
    let f = Fixture::new();
    let mut history = History::default();
    let run = |version: u64, sv: u64, history: &History| {
        let manifest = manifest_bytes(version, sv);
        let sig = sign(&manifest, &[&f.release_keys[0]]);
        verify_manifest(&f.root, &manifest, &sig, &device(), history, clock())
    };
    history.commit(&manifest(1, 6));
    let Ok(Outcome::Update(m)) = run(2, 7, &history) else {
        panic!("sv 7 over floor 6");
    };
    history.accept(&m);
    // Not committed (fell back): an sv 6 release still installs.
    assert!(matches!(run(3, 6, &history), Ok(Outcome::Update(_))));
    history.commit(&m);
    assert_eq!(
        run(3, 6, &history),
        Err(Error::RollbackRejected {
            what: "security version",
            found: 6,
            minimum: 7
        })
    );
}

#[test]
fn s21_manifest_for_another_group_is_rejected() {
    let f = Fixture::new();
    let mut for_b = manifest(1, 0);
    for_b.devices = Some(vec!["group-b".into()]);
    let bytes = for_b.to_json().unwrap();
    let sig = sign(&bytes, &[&f.release_keys[0]]);
    assert!(matches!(
        f.verify(&bytes, &sig),
        Err(Error::Incompatible {
            what: "devices",
            ..
        })
    ));
    let mut for_a = for_b.clone();
    for_a.devices = Some(vec!["group-b".into(), "group-a".into()]);
    let bytes = for_a.to_json().unwrap();
    assert!(
        f.verify(&bytes, &sign(&bytes, &[&f.release_keys[0]]))
            .is_ok()
    );
}

#[test]
fn manifest_fields_are_strict() {
    let good = String::from_utf8(manifest_bytes(1, 0)).unwrap();
    for (from, to) in [
        ("\"version\": 1", "\"version\": 1, \"extra\": true"),
        ("\"version\": 1", "\"version\": 0"),
        ("\"version\": 1", "\"version\": -1"),
        ("rootfs-2026.08.1.caibx", "../etc/passwd"),
        ("\"rootfs\": {", "\"rootfs\": {}, \"rootfs\": {"),
        (
            "\"chunk_size_max\": 262144",
            "\"chunk_size_max\": 134217729",
        ),
        (
            "\"expires\": \"2026-09-20T10:00:00Z\"",
            "\"expires\": \"2026-08-01T10:00:00Z\"",
        ),
        ("\"product\": \"acme-gw\"", "\"product\": \"\""),
    ] {
        assert!(good.contains(from), "{from}");
        let bytes = good.replace(from, to);
        assert!(
            matches!(
                Manifest::parse(bytes.as_bytes()),
                Err(Error::Malformed { .. })
            ),
            "{to}"
        );
    }
}
