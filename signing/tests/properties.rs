//! Property tests: the parsers never panic, and what they accept round-trips.

mod common;

use common::*;
use otasync_signing::{fuzzing, *};
use proptest::prelude::*;

/// Valid inputs with a few bytes overwritten, inserted or cut.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = seed.len();
    (
        prop::collection::vec((0..len, any::<u8>(), 0u8..3), 1..6),
        0..=len,
    )
        .prop_map(move |(edits, cut)| {
            let mut out = seed.clone();
            for (at, byte, kind) in edits {
                let at = at.min(out.len().saturating_sub(1));
                match kind {
                    0 if !out.is_empty() => out[at] = byte,
                    1 => out.insert(at, byte),
                    _ if !out.is_empty() => {
                        out.remove(at);
                    }
                    _ => {}
                }
            }
            if cut < out.len() / 2 {
                out.truncate(out.len() - cut);
            }
            out
        })
}

fn signed_set() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let f = Fixture::new();
    let manifest = manifest_bytes(1, 0);
    let sig = sign(&manifest, &[&f.release_keys[0], &f.release_keys[1]]);
    (manifest, f.root.to_json(), sig)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzzing::manifest(&data);
        fuzzing::trust_root(&data);
        fuzzing::signature(&data);
        if let Ok(text) = std::str::from_utf8(&data) {
            let _ = PublicKey::from_file(text);
            let _ = SecretKey::from_file(text);
            let _ = PublicKey::from_base64(text);
            let _ = Timestamp::parse(text);
        }
    }

    #[test]
    fn mutated_manifests_never_panic_or_verify(data in mutated(signed_set().0)) {
        fuzzing::manifest(&data);
        let (manifest, _, sig) = signed_set();
        if data != manifest {
            prop_assert!(Fixture::new().verify(&data, &sig).is_err());
        }
    }

    #[test]
    fn mutated_trust_roots_never_panic(data in mutated(signed_set().1)) {
        fuzzing::trust_root(&data);
    }

    #[test]
    fn mutated_signature_files_never_panic(data in mutated(signed_set().2)) {
        fuzzing::signature(&data);
        let _ = Fixture::new().verify(&signed_set().0, &data);
    }

    #[test]
    fn timestamps_round_trip(secs in 0u64..=253_402_300_799) {
        let t = Timestamp(secs);
        prop_assert_eq!(Timestamp::parse(&t.to_string()), Some(t));
    }

    #[test]
    fn signature_files_round_trip(
        comments in prop::collection::vec("[ -~]{1,40}", 1..=MAX_SIGNATURES),
        message in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut file = SignatureFile::default();
        for (n, comment) in comments.iter().enumerate() {
            file.add(comment, key(n as u8).sign(&message)).unwrap();
        }
        let text = file.to_file();
        prop_assert_eq!(SignatureFile::parse(text.as_bytes()), Ok(file));
    }
}
