//! Round trips of every file format, and tampering with any byte of a signed set.

mod common;

use common::*;
use otasync_signing::*;

#[test]
fn files_round_trip() {
    let f = Fixture::new();
    let manifest = manifest(3, 1);
    let bytes = manifest.to_json().unwrap();
    assert_eq!(Manifest::parse(&bytes), Ok(manifest));
    assert_eq!(TrustRoot::parse(&f.root.to_json()), Ok(f.root.clone()));
    let sig = sign(&bytes, &[&f.release_keys[0], &f.release_keys[1]]);
    assert_eq!(
        SignatureFile::parse(&sig).unwrap().to_file().as_bytes(),
        sig
    );
    let secret = key(5);
    let text = secret.to_file("signify secret key").unwrap();
    let again = SecretKey::from_file(&text).unwrap();
    assert_eq!(again.public(), secret.public());
    assert_eq!(again.sign(b"m"), secret.sign(b"m"));
    let public = secret.public().to_file("signify public key").unwrap();
    assert_eq!(PublicKey::from_file(&public), Ok(secret.public()));
    assert!(format!("{again:?}").contains(&secret.public().id().to_string()));
}

#[test]
fn generated_key_numbers_are_key_id_prefixes() {
    let public = key(9).public();
    assert_eq!(public.keynum[..], public.id().0[..8]);
    assert_eq!(KeyId::parse(&public.id().to_string()), Some(public.id()));
}

#[test]
fn every_flipped_manifest_byte_is_rejected() {
    let f = Fixture::new();
    let manifest = manifest_bytes(1, 0);
    let sig = sign(&manifest, &[&f.release_keys[0]]);
    for at in 0..manifest.len() {
        for bit in [0x01, 0x80] {
            let mut tampered = manifest.clone();
            tampered[at] ^= bit;
            assert!(
                matches!(
                    f.verify(&tampered, &sig),
                    Err(Error::SignatureInvalid { .. })
                ),
                "byte {at}"
            );
        }
    }
}

#[test]
fn every_flipped_signature_byte_is_rejected() {
    let f = Fixture::new();
    let manifest = manifest_bytes(1, 0);
    let sig = sign(&manifest, &[&f.release_keys[0]]);
    // The comment is untrusted and may change freely; everything after it is signed material.
    let line = sig.iter().position(|&b| b == b'\n').unwrap() + 1;
    for at in line..sig.len() {
        for bit in [0x01, 0x02, 0x20] {
            let mut tampered = sig.clone();
            tampered[at] ^= bit;
            assert!(f.verify(&manifest, &tampered).is_err(), "byte {at} ^ {bit}");
        }
    }
    let mut comment = sig.clone();
    comment[line - 2] ^= 0x01;
    assert!(f.verify(&manifest, &comment).is_ok());
}

#[test]
fn every_flipped_key_id_byte_in_the_trust_root_is_rejected() {
    let f = Fixture::new();
    let json = f.root.to_json();
    let id = f.release_keys[0].public().id().to_string();
    let text = String::from_utf8(json.clone()).unwrap();
    let mut starts: Vec<usize> = text.match_indices(&id).map(|(i, _)| i).collect();
    assert_eq!(starts.len(), 2, "in keys and in the release role");
    for start in starts.drain(..) {
        for at in start..start + id.len() {
            let mut tampered = json.clone();
            tampered[at] ^= 0x01;
            assert!(TrustRoot::parse(&tampered).is_err(), "byte {at}");
        }
    }
}

#[test]
fn every_flipped_byte_of_a_rotated_root_is_rejected() {
    let f = Fixture::new();
    let roots: Vec<&SecretKey> = f.root_keys.iter().collect();
    let next = root(2, &roots, 2, &[&f.release_keys[1]], 1).to_json();
    let sig = sign(&next, &roots);
    assert!(f.root.rotate(&next, &sig).is_ok());
    for at in 0..next.len() {
        let mut tampered = next.clone();
        tampered[at] ^= 0x04;
        assert!(
            matches!(
                f.root.rotate(&tampered, &sig),
                Err(Error::SignatureInvalid { .. })
            ),
            "byte {at}"
        );
    }
}

#[test]
fn signature_file_add_replaces_and_caps() {
    let message = b"m";
    let mut file = SignatureFile::default();
    let k = key(1);
    file.add("first", k.sign(message)).unwrap();
    file.add("again", k.sign(message)).unwrap();
    assert_eq!(file.blocks.len(), 1);
    assert!(file.add("two\nlines", key(2).sign(message)).is_err());
    for n in 2..=MAX_SIGNATURES as u8 {
        file.add("k", key(n).sign(message)).unwrap();
    }
    assert!(matches!(
        file.add("k", key(100).sign(message)),
        Err(Error::TooLarge { .. })
    ));
    assert!(SignatureFile::parse(file.to_file().as_bytes()).is_ok());
}

#[test]
fn key_files_are_strict() {
    let secret = key(3).to_file("c").unwrap();
    let public = key(3).public().to_file("c").unwrap();
    assert!(SecretKey::from_file(&public).is_err());
    assert!(PublicKey::from_file(&secret).is_err());
    assert!(PublicKey::from_file(&format!("{public}\n")).is_err());
    assert!(PublicKey::from_file(&public.replace('\n', "\r\n")).is_err());
    assert!(
        PublicKey::from_file(&public.replace("untrusted comment: c", "untrusted comment: "))
            .is_err()
    );
}
