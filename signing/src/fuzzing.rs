//! Fuzz entry points: one call per target, used by `fuzz/` (libFuzzer) and run as ordinary
//! tests over the checked-in seed corpus. Whatever parses must re-encode to something that
//! parses to the same value; nothing may panic.

use crate::{Manifest, SignatureFile, TrustRoot};

/// Parses arbitrary bytes as a manifest; an accepted one survives a JSON round trip.
pub fn manifest(data: &[u8]) {
    if let Ok(manifest) = Manifest::parse(data) {
        let json = manifest.to_json().expect("a parsed manifest is valid");
        assert_eq!(Manifest::parse(&json).as_ref(), Ok(&manifest));
    }
}

/// Parses arbitrary bytes as a trust root; an accepted one survives a JSON round trip.
pub fn trust_root(data: &[u8]) {
    if let Ok(root) = TrustRoot::parse(data) {
        assert_eq!(TrustRoot::parse(&root.to_json()).as_ref(), Ok(&root));
    }
}

/// Parses arbitrary bytes as a signature file; the reader is canonical, so an accepted file
/// re-encodes to the same bytes.
pub fn signature(data: &[u8]) {
    if let Ok(file) = SignatureFile::parse(data) {
        assert_eq!(file.to_file().as_bytes(), data);
    }
}
