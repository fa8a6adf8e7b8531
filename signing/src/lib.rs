//! The signing layer of otasync: signed release manifests, trust roots with thresholds and
//! rotation, and the update policy (anti-rollback, expiry without a trusted clock). The design
//! follows TUF and Uptane, collapsed into two signed objects (ota-agent.md §1.3):
//!
//! * a [`TrustRoot`] (`root.json`): keys, the `root` and `release` roles with thresholds, a
//!   version and an expiry. Shipped in the rootfs; version N+1 replaces N when signed by a
//!   threshold of both versions' root keys ([`TrustRoot::rotate`]).
//! * a [`Manifest`] (`manifest.json`), signed by the `release` role, which pins every slot's
//!   `.caibx` and image by SHA-256 and length.
//!
//! # Signatures: signify-compatible
//!
//! Every signed file has a detached `FILE.sig` made of one or more OpenBSD signify signature
//! blocks ([`SignatureFile`]): `untrusted comment: …` then base64 of `"Ed"` ‖ keynum[8] ‖
//! Ed25519 signature[64] over the file's exact bytes. Keys are signify `.pub`/`.sec` files
//! ([`PublicKey`], [`SecretKey`]). So an independent tool checks our signatures
//! (`signify-openbsd -V -p KEY.pub -x FILE.sig -m FILE` reads the first block; each block on its
//! own is a complete signify signature file), and keys made by `signify -G -n` sign for us.
//! A threshold of k needs k blocks by distinct keys in the one file. Chosen over minisign
//! (whose default prehashes with BLAKE2b, a second hash dependency) and over a JSON envelope
//! (no independent verifier). Since the bytes are signify's, there is no domain-separation
//! prefix: key separation by role is enforced instead (a key may not be both root and release).
//!
//! # Key ids
//!
//! [`KeyId`] is the lowercase hex SHA-256 of the raw 32-byte Ed25519 public key (not TUF's
//! canonical-JSON key object). Signatures find their key by signify key number, which must be
//! unique within a trust root; thresholds count distinct key ids.
//!
//! # Order of checks
//!
//! [`verify_manifest`]: size caps (manifest 64 KiB, signature file 4 KiB and 16 signatures),
//! then `verify_strict` of the raw bytes against the release keys, and only then parsing and the
//! policy: product/hardware/device bindings, expiry against
//! max(system clock, last accepted `issued_at`, build epoch), security version floor, metadata
//! version (equal means [`Outcome::UpToDate`]). Every refusal is a specific [`Error`].
//!
//! `#![no_std]` with `alloc`; the `keygen` feature adds key generation from the OS.

#![no_std]
#![forbid(unsafe_code)]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod encoding;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod json;
mod keys;
mod manifest;
mod policy;
mod root;
mod sigfile;
mod signify;
mod threshold;
mod time;

pub use error::{Error, Result};
pub use json::MAX_DOCUMENT;
pub use keys::{KeyId, KeyNum, PublicKey, SecretKey};
pub use manifest::{
    CHUNK_SIZE_LIMIT, ChunkDigest, Compression, IndexRef, MANIFEST_FORMAT, MAX_ENTRIES, Manifest,
    Pinned, Sha256, Slot,
};
pub use policy::{Clock, Device, History, Outcome, verify_manifest};
pub use root::{ROOT_FORMAT, Rotation, TrustRoot};
pub use sigfile::{MAX_SIGNATURE_FILE, MAX_SIGNATURES, Signature, SignatureFile};
pub use time::Timestamp;
