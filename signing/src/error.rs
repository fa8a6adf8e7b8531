//! Why a manifest, trust root, key or signature file was refused.
//!
//! Each variant names one attack or failure class (Uptane asks for error codes that name the
//! attack), so that the agent can report it and the CLI can map it to an exit code.

use crate::keys::KeyId;
use crate::time::Timestamp;
use alloc::string::String;
use core::fmt;

/// Everything verification, parsing or policy can refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An input is larger than its cap (S10), or a list is longer than allowed (S2).
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit, in bytes or items.
        limit: usize,
    },
    /// An input does not follow its format; `reason` says where.
    Malformed {
        /// What could not be read.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A format version, digest, compression or algorithm that is not allow-listed (S23).
    Unsupported {
        /// Which field.
        what: &'static str,
        /// The refused value.
        value: String,
    },
    /// A small-order public key (S3).
    WeakKey {
        /// The key's id.
        key_id: KeyId,
    },
    /// A signature by a trusted key does not verify, and the threshold is not met (S1).
    SignatureInvalid {
        /// The key whose signature failed.
        key_id: KeyId,
    },
    /// Fewer distinct trusted keys signed than the role requires (S1, S2, S19).
    ThresholdNotMet {
        /// The role: "root" or "release".
        role: &'static str,
        /// Distinct trusted keys with a valid signature.
        valid: usize,
        /// How many the role requires.
        threshold: usize,
    },
    /// The expiry is not after the trusted time floor (S7).
    Expired {
        /// "manifest" or "trust root".
        what: &'static str,
        /// When it expired.
        expires: Timestamp,
        /// The time floor it was checked against.
        now: Timestamp,
    },
    /// A version below what was already accepted (S5, S6).
    RollbackRejected {
        /// Which counter: "metadata version", "security version" or "trust root version".
        what: &'static str,
        /// The refused value.
        found: u64,
        /// The lowest value that would be accepted.
        minimum: u64,
    },
    /// A trust root update that is not exactly the next version (fast-forward, S19).
    VersionSkipped {
        /// The only acceptable version.
        expected: u64,
        /// The version found.
        found: u64,
    },
    /// The manifest is for another product, hardware or device (S4, S21).
    Incompatible {
        /// Which binding: "product", "hardware" or "devices".
        what: &'static str,
        /// What this device is.
        device: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { what, limit } => write!(f, "{what} exceeds the limit of {limit}"),
            Self::Malformed { what, reason } => write!(f, "malformed {what}: {reason}"),
            Self::Unsupported { what, value } => write!(f, "unsupported {what}: {value:?}"),
            Self::WeakKey { key_id } => write!(f, "weak (small-order) public key {key_id}"),
            Self::SignatureInvalid { key_id } => {
                write!(f, "invalid signature by trusted key {key_id}")
            }
            Self::ThresholdNotMet {
                role,
                valid,
                threshold,
            } => write!(
                f,
                "{valid} valid signature(s) by distinct {role} keys, {threshold} required"
            ),
            Self::Expired { what, expires, now } => {
                write!(f, "{what} expired at {expires} (trusted time is {now})")
            }
            Self::RollbackRejected {
                what,
                found,
                minimum,
            } => write!(
                f,
                "rollback rejected: {what} {found}, at least {minimum} required"
            ),
            Self::VersionSkipped { expected, found } => write!(
                f,
                "trust root version {found} does not follow the trusted one (expected {expected})"
            ),
            Self::Incompatible { what, device } => {
                write!(
                    f,
                    "incompatible: the manifest's {what} does not include {device:?}"
                )
            }
        }
    }
}

impl core::error::Error for Error {}

/// A [`Error::Malformed`] with a formatted reason.
pub(crate) fn malformed(what: &'static str, reason: impl fmt::Display) -> Error {
    Error::Malformed {
        what,
        reason: alloc::format!("{reason}"),
    }
}

/// Shorthand results.
pub type Result<T, E = Error> = core::result::Result<T, E>;
