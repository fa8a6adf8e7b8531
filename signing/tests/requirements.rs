//! One named test per requirement row of ota-agent.md §1.5 that the signing layer owns:
//! S1, S2, S3, S5, S7, S10, S23 (S8 and S19 are in rotation.rs; S4, S6, S21 in policy.rs).

mod common;

use common::*;
use otasync_signing::*;

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 0x01;
    out
}

#[test]
fn s1_flipped_manifest_byte_is_rejected() {
    let f = Fixture::new();
    let manifest = manifest_bytes(1, 0);
    let sig = sign(&manifest, &[&f.release_keys[0]]);
    assert!(matches!(f.verify(&manifest, &sig), Ok(Outcome::Update(_))));
    let tampered = flip(&manifest, manifest.len() / 2);
    assert_eq!(
        f.verify(&tampered, &sig),
        Err(Error::SignatureInvalid {
            key_id: f.release_keys[0].public().id()
        })
    );
}

#[test]
fn s1_flipped_signature_byte_is_rejected() {
    let f = Fixture::new();
    let manifest = manifest_bytes(1, 0);
    let mut file = SignatureFile::parse(&sign(&manifest, &[&f.release_keys[0]])).unwrap();
    let mut bytes = file.blocks[0].1.signature.to_bytes();
    bytes[10] ^= 0x80;
    file.blocks[0].1.signature = ed25519_dalek::Signature::from_bytes(&bytes);
    assert!(matches!(
        f.verify(&manifest, file.to_file().as_bytes()),
        Err(Error::SignatureInvalid { .. })
    ));
}

#[test]
fn s1_flipped_key_number_is_rejected() {
    let f = Fixture::new();
    let manifest = manifest_bytes(1, 0);
    let mut file = SignatureFile::parse(&sign(&manifest, &[&f.release_keys[0]])).unwrap();
    file.blocks[0].1.keynum[0] ^= 0x01;
    // An unknown key is ignored (TUF), so nothing counts toward the threshold.
    assert_eq!(
        f.verify(&manifest, file.to_file().as_bytes()),
        Err(Error::ThresholdNotMet {
            role: "release",
            valid: 0,
            threshold: 1
        })
    );
}

#[test]
fn s1_signature_is_checked_before_any_field_is_parsed() {
    let f = Fixture::new();
    let garbage = b"{ this is not json".to_vec();
    let sig = sign(&manifest_bytes(1, 0), &[&f.release_keys[0]]);
    assert!(matches!(
        f.verify(&garbage, &sig),
        Err(Error::SignatureInvalid { .. })
    ));
    // Correctly signed garbage gets as far as the parser.
    let sig = sign(&garbage, &[&f.release_keys[0]]);
    assert!(matches!(
        f.verify(&garbage, &sig),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn s2_duplicate_signature_counts_once() {
    let (r, a, b) = (key(1), key(11), key(12));
    let root = root(1, &[&r], 1, &[&a, &b], 2);
    let manifest = manifest_bytes(1, 0);
    let verify = |sig: &[u8]| {
        verify_manifest(
            &root,
            &manifest,
            sig,
            &device(),
            &History::default(),
            clock(),
        )
    };
    let twice = sign(&manifest, &[&a, &a]);
    assert_eq!(
        verify(&twice),
        Err(Error::ThresholdNotMet {
            role: "release",
            valid: 1,
            threshold: 2
        })
    );
    assert!(verify(&sign(&manifest, &[&a, &b])).is_ok());
    assert!(verify(&sign(&manifest, &[&b, &a, &a])).is_ok());
}

#[test]
fn s2_signatures_by_unknown_keys_are_ignored() {
    let f = Fixture::new();
    let manifest = manifest_bytes(1, 0);
    let stranger = key(99);
    assert!(
        f.verify(
            &manifest,
            &sign(&manifest, &[&stranger, &f.release_keys[1]])
        )
        .is_ok()
    );
    assert!(matches!(
        f.verify(&manifest, &sign(&manifest, &[&stranger])),
        Err(Error::ThresholdNotMet { valid: 0, .. })
    ));
}

#[test]
fn s2_root_keys_cannot_sign_releases() {
    let f = Fixture::new();
    let manifest = manifest_bytes(1, 0);
    let sig = sign(&manifest, &[&f.root_keys[0], &f.root_keys[1]]);
    assert!(matches!(
        f.verify(&manifest, &sig),
        Err(Error::ThresholdNotMet { .. })
    ));
}

#[test]
fn s2_thousand_signatures_are_rejected_before_verification() {
    let f = Fixture::new();
    let manifest = manifest_bytes(1, 0);
    let one = sign(&manifest, &[&f.release_keys[0]]);
    let thousand = one.repeat(1000);
    assert_eq!(
        f.verify(&manifest, &thousand),
        Err(Error::TooLarge {
            what: "signature file",
            limit: MAX_SIGNATURE_FILE
        })
    );
    // Seventeen short blocks fit in 4 KiB but exceed the count cap.
    let mut short = SignatureFile::parse(&one).unwrap();
    short.blocks[0].0 = "x".into();
    let seventeen = short.to_file().repeat(MAX_SIGNATURES + 1);
    assert!(seventeen.len() <= MAX_SIGNATURE_FILE);
    assert_eq!(
        SignatureFile::parse(seventeen.as_bytes()),
        Err(Error::TooLarge {
            what: "signature count",
            limit: MAX_SIGNATURES
        })
    );
}

/// A trust root JSON whose release key is the given raw 32-byte point.
fn root_with_raw_release_key(raw: [u8; 32]) -> String {
    let point = ed25519_dalek::VerifyingKey::from_bytes(&raw).unwrap();
    let weak = PublicKey {
        keynum: [7; 8],
        key: point,
    };
    let good = key(1).public();
    format!(
        r#"{{"format":1,"version":1,"expires":"2030-01-01T00:00:00Z",
        "keys":{{"{}":"{}","{}":"{}"}},
        "roles":{{"root":{{"keyids":["{0}"],"threshold":1}},
                 "release":{{"keyids":["{2}"],"threshold":1}}}}}}"#,
        good.id(),
        good.to_base64(),
        weak.id(),
        weak.to_base64()
    )
}

#[test]
fn s3_small_order_key_in_trust_root_is_rejected() {
    // The identity point (y = 1) has order 1.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let json = root_with_raw_release_key(identity);
    assert!(matches!(
        TrustRoot::parse(json.as_bytes()),
        Err(Error::WeakKey { .. })
    ));
    // The same file with a real key loads.
    let json = root_with_raw_release_key(*key(11).public().key.as_bytes());
    assert!(TrustRoot::parse(json.as_bytes()).is_ok());
}

#[test]
fn s3_small_order_public_key_file_is_rejected() {
    let mut payload = b"Ed".to_vec();
    payload.extend_from_slice(&[0; 8]);
    let mut identity = [0u8; 32];
    identity[0] = 1;
    payload.extend_from_slice(&identity);
    let point = ed25519_dalek::VerifyingKey::from_bytes(&identity).unwrap();
    let file = PublicKey {
        keynum: [0; 8],
        key: point,
    }
    .to_file("weak")
    .unwrap();
    assert!(matches!(
        PublicKey::from_file(&file),
        Err(Error::WeakKey { .. })
    ));
}

#[test]
fn s3_malleated_signature_is_rejected() {
    // s + L: the same signature in non-canonical form.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let f = Fixture::new();
    let manifest = manifest_bytes(1, 0);
    let mut file = SignatureFile::parse(&sign(&manifest, &[&f.release_keys[0]])).unwrap();
    let mut bytes = file.blocks[0].1.signature.to_bytes();
    let mut carry = 0u16;
    for (s, l) in bytes[32..].iter_mut().zip(L) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    file.blocks[0].1.signature = ed25519_dalek::Signature::from_bytes(&bytes);
    assert!(matches!(
        f.verify(&manifest, file.to_file().as_bytes()),
        Err(Error::SignatureInvalid { .. })
    ));
}

#[test]
fn s5_older_version_is_rolled_back_and_same_version_is_up_to_date() {
    let f = Fixture::new();
    let mut history = History::default();
    let run = |version: u64, history: &History| {
        let manifest = manifest_bytes(version, 0);
        let sig = sign(&manifest, &[&f.release_keys[0]]);
        verify_manifest(&f.root, &manifest, &sig, &device(), history, clock())
    };
    let Ok(Outcome::Update(v6)) = run(6, &history) else {
        panic!("v6 is new");
    };
    history.accept(&v6);
    assert_eq!(
        run(5, &history),
        Err(Error::RollbackRejected {
            what: "metadata version",
            found: 5,
            minimum: 6
        })
    );
    assert!(matches!(run(6, &history), Ok(Outcome::UpToDate(m)) if m.version == 6));
    assert!(matches!(run(7, &history), Ok(Outcome::Update(m)) if m.version == 7));
}

#[test]
fn s7_expired_manifest_is_rejected() {
    let f = Fixture::new();
    let manifest = manifest_bytes(1, 0);
    let sig = sign(&manifest, &[&f.release_keys[0]]);
    let history = History::default();
    let late = Clock {
        system: ts("2026-09-20T10:00:00Z"),
        ..clock()
    };
    assert_eq!(
        verify_manifest(&f.root, &manifest, &sig, &device(), &history, late),
        Err(Error::Expired {
            what: "manifest",
            expires: ts("2026-09-20T10:00:00Z"),
            now: ts("2026-09-20T10:00:00Z")
        })
    );
}

#[test]
fn s7_clock_at_1970_still_expires_against_build_epoch_and_history() {
    let f = Fixture::new();
    let manifest = manifest_bytes(1, 0);
    let sig = sign(&manifest, &[&f.release_keys[0]]);
    let no_rtc = |build_epoch: &str| Clock {
        system: Timestamp(0),
        build_epoch: ts(build_epoch),
    };
    let verify = |history: &History, clock| {
        verify_manifest(&f.root, &manifest, &sig, &device(), history, clock)
    };
    let fresh = History::default();
    assert!(verify(&fresh, no_rtc("2026-01-01T00:00:00Z")).is_ok());
    let result = verify(&fresh, no_rtc("2026-10-01T00:00:00Z"));
    assert!(matches!(
        result,
        Err(Error::Expired {
            what: "manifest",
            ..
        })
    ));
    let seen_later = History {
        last_issued_at: ts("2026-10-01T00:00:00Z"),
        ..History::default()
    };
    let result = verify(&seen_later, no_rtc("2026-01-01T00:00:00Z"));
    assert!(matches!(
        result,
        Err(Error::Expired {
            what: "manifest",
            ..
        })
    ));
}

#[test]
fn s7_expired_trust_root_is_rejected() {
    let f = Fixture::new();
    let manifest = manifest_bytes(1, 0);
    let sig = sign(&manifest, &[&f.release_keys[0]]);
    let clock = Clock {
        system: ts("2030-01-01T00:00:00Z"),
        ..clock()
    };
    let result = verify_manifest(
        &f.root,
        &manifest,
        &sig,
        &device(),
        &History::default(),
        clock,
    );
    assert!(matches!(
        result,
        Err(Error::Expired {
            what: "trust root",
            ..
        })
    ));
}

#[test]
fn s10_oversized_manifest_is_rejected_before_verification() {
    let f = Fixture::new();
    let mut manifest = manifest_bytes(1, 0);
    manifest.resize(MAX_DOCUMENT + 1, b' ');
    let sig = sign(&manifest, &[&f.release_keys[0]]);
    assert_eq!(
        f.verify(&manifest, &sig),
        Err(Error::TooLarge {
            what: "manifest",
            limit: MAX_DOCUMENT
        })
    );
    manifest.truncate(MAX_DOCUMENT);
    assert!(
        f.verify(&manifest, &sign(&manifest, &[&f.release_keys[0]]))
            .is_ok()
    );
}

#[test]
fn s10_oversized_signature_file_is_rejected() {
    let f = Fixture::new();
    let manifest = manifest_bytes(1, 0);
    let mut sig = sign(&manifest, &[&f.release_keys[0]]);
    sig.resize(MAX_SIGNATURE_FILE + 1, b'\n');
    assert_eq!(
        f.verify(&manifest, &sig),
        Err(Error::TooLarge {
            what: "signature file",
            limit: MAX_SIGNATURE_FILE
        })
    );
    let root = f.root.to_json();
    assert!(matches!(
        f.root.rotate(&root, &sig),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn s23_unknown_format_digest_or_compression_is_unsupported() {
    let f = Fixture::new();
    let good = String::from_utf8(manifest_bytes(1, 0)).unwrap();
    for (from, to, field, value) in [
        ("\"format\": 1", "\"format\": 2", "format", "2"),
        ("\"format\": 1", "\"format\": \"1\"", "format", "1"),
        (
            "\"digest\": \"sha512-256\"",
            "\"digest\": \"md5\"",
            "digest",
            "md5",
        ),
        (
            "\"compression\": \"zstd\"",
            "\"compression\": \"xz\"",
            "compression",
            "xz",
        ),
    ] {
        assert!(good.contains(from), "{from}");
        let bytes = good.replace(from, to).into_bytes();
        let sig = sign(&bytes, &[&f.release_keys[0]]);
        let result = f.verify(&bytes, &sig);
        if value == "1" {
            // The right value with the wrong type is merely malformed.
            assert!(matches!(result, Err(Error::Malformed { .. })), "{to}");
        } else {
            assert_eq!(
                result,
                Err(Error::Unsupported {
                    what: field,
                    value: value.into()
                }),
                "{to}"
            );
        }
    }
    let root = String::from_utf8(f.root.to_json()).unwrap();
    let newer = root.replace("\"format\": 1", "\"format\": 2");
    assert!(matches!(
        TrustRoot::parse(newer.as_bytes()),
        Err(Error::Unsupported { what: "format", .. })
    ));
}
