//! Reproducible test input from spec §1.6.

use alloc::vec::Vec;
use sha2::{Digest, Sha256};

/// `vec.bin`: SHA-256(le64(i)) for i in 0..65536, 2 MiB.
pub(crate) fn vec_bin() -> Vec<u8> {
    vec_bin_prefix(2 * 1024 * 1024)
}

/// The first `len` bytes of `vec.bin`.
pub(crate) fn vec_bin_prefix(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(&Sha256::digest(i.to_le_bytes()));
        i += 1;
    }
    out.truncate(len);
    out
}

#[test]
fn vec_bin_matches_spec() {
    use alloc::string::ToString;
    let data = vec_bin();
    assert_eq!(
        crate::DigestAlgorithm::Sha256.digest(&data).to_string(),
        "ac228632779f6d3578c581e26b4349bc9bb9ace7b6ab98ea878da0a490878bb9"
    );
}
