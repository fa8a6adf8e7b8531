//! The release manifest (ota-agent.md §1.4): what a release is for, its versions and validity,
//! and every slot's index and image pinned by SHA-256 and length.
//!
//! Parse it only after [`crate::TrustRoot::verify_release`] accepted its raw bytes;
//! [`crate::verify_manifest`] does both in that order. Unknown fields are refused; an unknown
//! `format`, `digest` or `compression` is [`crate::Error::Unsupported`] (S23).

use crate::encoding::{hex_decode, hex_encode};
use crate::error::{Result, malformed};
use crate::json::{parse_document, unique_map};
use crate::time::Timestamp;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// The only manifest format version understood.
pub const MANIFEST_FORMAT: u32 = 1;
/// casync's hard limit on a chunk's size (`CA_CHUNK_SIZE_LIMIT_MAX`).
pub const CHUNK_SIZE_LIMIT: u64 = 128 << 20;
/// Most slots, and most chunk stores, in one manifest.
pub const MAX_ENTRIES: usize = 16;

/// A signed release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version: [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Must equal the device's `compatible`, exactly (S4).
    pub product: String,
    /// If present, must contain the device's hardware id (S4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<Vec<String>>,
    /// If present, must contain the device's id or one of its groups (S21).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<String>>,
    /// Metadata version, strictly increasing (S5); at least 1.
    pub version: u64,
    /// Anti-rollback floor for the software (S6).
    pub security_version: u64,
    /// Human-readable release name, never compared.
    pub release: String,
    /// When it was signed; becomes the device's trusted time floor once accepted (§1.6).
    pub issued_at: Timestamp,
    /// When it stops being valid (S7).
    pub expires: Timestamp,
    /// Chunk id algorithm; must match the indexes' flag.
    pub digest: ChunkDigest,
    /// How chunks are stored.
    pub compression: Compression,
    /// Chunk store URLs, tried in order.
    pub chunk_stores: Vec<String>,
    /// Slot name to what to write there.
    #[serde(deserialize_with = "unique_map")]
    pub slots: BTreeMap<String, Slot>,
}

/// The chunk id algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkDigest {
    /// SHA-512/256, casync's default.
    #[serde(rename = "sha512-256")]
    Sha512_256,
    /// SHA-256.
    #[serde(rename = "sha256")]
    Sha256,
}

/// The chunk compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Compression {
    /// zstd frames (`.cacnk`).
    #[serde(rename = "zstd")]
    Zstd,
    /// Stored as is.
    #[serde(rename = "none")]
    None,
}

/// One slot's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    /// The `.caibx` to fetch.
    pub index: IndexRef,
    /// The image it assembles, for the check after writing.
    pub image: Pinned,
    /// Largest chunk in the index; at most [`CHUNK_SIZE_LIMIT`].
    pub chunk_size_max: u64,
}

/// A `.caibx`: where it is, relative to the manifest, and what it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexRef {
    /// Relative path without `..`, `.` or empty components.
    pub path: String,
    /// Its SHA-256.
    pub sha256: Sha256,
    /// Its exact length in bytes.
    pub size: u64,
}

/// Content pinned by SHA-256 and length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pinned {
    /// Its SHA-256.
    pub sha256: Sha256,
    /// Its exact length in bytes.
    pub size: u64,
}

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256(pub [u8; 32]);

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex_encode(&self.0))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex_decode(&text)
            .map(Self)
            .ok_or_else(|| de::Error::custom("a sha256 is 64 lowercase hex digits"))
    }
}

impl Manifest {
    /// Parses and checks a manifest's bytes (at most 64 KiB). Call only on verified bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let allowed: &[(&str, &[&str])] = &[
            ("format", &["1"]),
            ("digest", &["sha512-256", "sha256"]),
            ("compression", &["zstd", "none"]),
        ];
        let manifest: Self = parse_document(bytes, "manifest", allowed)?;
        manifest.check()?;
        Ok(manifest)
    }

    /// The JSON document (pretty-printed) to sign.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        self.check()?;
        let mut out = serde_json::to_vec_pretty(self).expect("plain data serializes");
        out.push(b'\n');
        Ok(out)
    }

    /// The consistency rules serde cannot express.
    fn check(&self) -> Result<()> {
        let bad = |reason: &str| Err(malformed("manifest", reason));
        if self.format != MANIFEST_FORMAT {
            return Err(crate::Error::Unsupported {
                what: "format",
                value: alloc::format!("{}", self.format),
            });
        }
        if self.product.is_empty() {
            return bad("empty product");
        }
        if self.version == 0 {
            return bad("metadata versions start at 1");
        }
        if self.issued_at > self.expires {
            return bad("issued after it expires");
        }
        if self.slots.is_empty() {
            return bad("no slots");
        }
        if self.slots.len() > MAX_ENTRIES || self.chunk_stores.len() > MAX_ENTRIES {
            return bad("more than 16 slots or chunk stores");
        }
        for (name, slot) in &self.slots {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return bad("slot names are ASCII letters, digits, '-', '_' and '.'");
            }
            if !is_plain_relative(&slot.index.path) {
                return bad("an index path must be relative, without '.', '..' or empty parts");
            }
            if slot.chunk_size_max == 0 || slot.chunk_size_max > CHUNK_SIZE_LIMIT {
                return bad("chunk_size_max must be between 1 and 128 MiB");
            }
        }
        Ok(())
    }
}

/// A relative path that cannot leave the directory it is resolved in.
fn is_plain_relative(path: &str) -> bool {
    !path.contains(['\\', '\0', '?', '#'])
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}
