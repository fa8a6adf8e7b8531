//! Index files made by Debian's casync (in the fuzz seed corpus) decode and re-encode to the
//! same bytes; corrupted and truncated variants each map to their specific error.

use otasync_core::DigestAlgorithm;
use otasync_core::index::{Index, IndexErrorKind};

fn fixture(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/index/");
    std::fs::read(format!("{path}{name}")).unwrap()
}

#[test]
fn casync_made_indexes_round_trip() {
    for (name, chunks, size, digest) in [
        ("empty.caibx", 0, 0, DigestAlgorithm::Sha512_256),
        ("one-byte.caibx", 1, 1, DigestAlgorithm::Sha512_256),
        ("small-chunks.caibx", 24, 5000, DigestAlgorithm::Sha512_256),
        ("sha256.caibx", 13, 200_000, DigestAlgorithm::Sha256),
        ("fixed.caibx", 5, 5000, DigestAlgorithm::Sha512_256),
    ] {
        let bytes = fixture(name);
        let index = Index::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(index.chunks.len(), chunks, "{name}");
        assert_eq!(index.blob_size(), size, "{name}");
        assert_eq!(index.header.digest(), digest, "{name}");
        assert_eq!(index.encode(), bytes, "{name}");
    }
}

#[test]
fn corrupt_indexes_are_refused_with_their_error() {
    let kind = |name: &str| Index::decode(&fixture(name)).unwrap_err().kind;
    assert_eq!(kind("truncated.caibx"), IndexErrorKind::Truncated);
    assert!(matches!(
        kind("bad-offset.caibx"),
        IndexErrorKind::NonIncreasingOffset { item: 1, .. }
    ));
    assert!(matches!(
        kind("bad-flags.caibx"),
        IndexErrorKind::UnknownFeatureFlags(_)
    ));
}
