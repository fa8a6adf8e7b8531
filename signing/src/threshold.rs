//! Counting signatures toward a role's threshold (S1, S2).

use crate::error::{Error, Result};
use crate::keys::{KeyId, PublicKey};
use crate::sigfile::SignatureFile;
use alloc::vec::Vec;

/// Checks that at least `threshold` distinct keys of `keys` made a valid signature over the raw
/// `message`. Signatures by other keys are ignored, a key counts once however often it signed,
/// and each signature is checked with `verify_strict`. When the threshold is not met, an invalid
/// signature by one of `keys` is reported as [`Error::SignatureInvalid`], since it means
/// tampering rather than missing signatures.
pub(crate) fn check(
    role: &'static str,
    keys: &[PublicKey],
    threshold: usize,
    message: &[u8],
    signatures: &SignatureFile,
) -> Result<()> {
    let mut valid: Vec<KeyId> = Vec::new();
    let mut invalid = None;
    for (_, signature) in &signatures.blocks {
        let Some(key) = keys.iter().find(|k| k.keynum == signature.keynum) else {
            continue;
        };
        let id = key.id();
        if valid.contains(&id) {
            continue;
        }
        match key.key.verify_strict(message, &signature.signature) {
            Ok(()) => valid.push(id),
            Err(_) => invalid = invalid.or(Some(id)),
        }
        if valid.len() >= threshold {
            return Ok(());
        }
    }
    Err(match invalid {
        Some(key_id) => Error::SignatureInvalid { key_id },
        None => Error::ThresholdNotMet {
            role,
            valid: valid.len(),
            threshold,
        },
    })
}
