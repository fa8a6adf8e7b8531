//! Chunk IDs and the two digests casync names them with (spec §1.4, §3.3).

use crate::flags::SHA512_256;
use crate::hex;
use core::fmt;
use sha2::Digest as _;

/// The digest algorithm of an index or archive, signalled by the [`SHA512_256`] feature flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// FIPS 180-4 SHA-512/256 (casync's default; not truncated SHA-512).
    #[default]
    Sha512_256,
    /// SHA-256 (`--digest=sha256`).
    Sha256,
}

impl DigestAlgorithm {
    /// The algorithm the feature flags select.
    pub fn from_flags(feature_flags: u64) -> Self {
        if feature_flags & SHA512_256 != 0 {
            Self::Sha512_256
        } else {
            Self::Sha256
        }
    }

    /// The feature flag bit this algorithm sets.
    pub fn flag(self) -> u64 {
        match self {
            Self::Sha512_256 => SHA512_256,
            Self::Sha256 => 0,
        }
    }

    /// casync's name for it (`--digest=`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha512_256 => "sha512-256",
            Self::Sha256 => "sha256",
        }
    }

    /// Parses casync's name for it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha512-256" => Some(Self::Sha512_256),
            "sha256" => Some(Self::Sha256),
            _ => None,
        }
    }

    /// Digest of `data` in one go.
    pub fn digest(self, data: &[u8]) -> ChunkId {
        let mut hasher = self.hasher();
        hasher.update(data);
        hasher.finalize()
    }

    /// An incremental hasher.
    pub fn hasher(self) -> Hasher {
        match self {
            Self::Sha512_256 => Hasher::Sha512_256(sha2::Sha512_256::new()),
            Self::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
        }
    }
}

/// An incremental hasher for either algorithm.
#[derive(Clone, Debug)]
pub enum Hasher {
    /// SHA-512/256 state.
    Sha512_256(sha2::Sha512_256),
    /// SHA-256 state.
    Sha256(sha2::Sha256),
}

impl Hasher {
    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha512_256(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
        }
    }

    /// The digest of everything fed.
    pub fn finalize(self) -> ChunkId {
        ChunkId(match self {
            Self::Sha512_256(h) => h.finalize().into(),
            Self::Sha256(h) => h.finalize().into(),
        })
    }
}

/// A 32-byte chunk ID (or archive/payload digest): the digest of the uncompressed bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut id = [0u8; 32];
        hex::decode_into(text.as_bytes(), &mut id).then_some(Self(id))
    }

    /// The 64 lowercase hex digits, without allocating.
    pub fn to_hex(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        hex::encode_into(&self.0, &mut out);
        out
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        // Hex digits are ASCII.
        f.write_str(core::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn empty_input_digests() {
        assert_eq!(
            DigestAlgorithm::Sha512_256.digest(b"").to_string(),
            "c672b8d1ef56ed28ab87c3622c5114069bdd3ad7b8f9737498d0c01ecef0967a"
        );
        assert_eq!(
            DigestAlgorithm::Sha256.digest(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn flag_selects_algorithm() {
        assert_eq!(
            DigestAlgorithm::from_flags(0xb000000000000000),
            DigestAlgorithm::Sha512_256
        );
        assert_eq!(
            DigestAlgorithm::from_flags(0x9000000000000000),
            DigestAlgorithm::Sha256
        );
    }

    #[test]
    fn hex_round_trip() {
        let id = DigestAlgorithm::Sha256.digest(b"x");
        let text = id.to_string();
        assert_eq!(ChunkId::from_hex(&text), Some(id));
        assert_eq!(ChunkId::from_hex(&text.to_uppercase()), Some(id));
        assert_eq!(ChunkId::from_hex(&text[1..]), None);
        assert_eq!(ChunkId::from_hex(&text.replace('0', "g")), None);
    }
}
