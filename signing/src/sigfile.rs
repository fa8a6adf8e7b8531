//! Detached signature files: one or more signify signature blocks, one after the other.
//!
//! ```text
//! untrusted comment: verify with release-1.pub
//! RWQ…(base64 of "Ed" ‖ keynum[8] ‖ signature[64])
//! untrusted comment: verify with release-2.pub
//! RWQ…
//! ```
//!
//! A file with one block is exactly what `signify -S` writes, and `signify -V` reads only the
//! first block of a longer file, so each block, cut out on its own, checks with
//! `signify -V -p KEY.pub -x BLOCK.sig -m FILE`. Files are capped at [`MAX_SIGNATURE_FILE`] bytes
//! and [`MAX_SIGNATURES`] blocks, checked before any signature is verified (S2, S10).

use crate::error::{Error, Result, malformed};
use crate::keys::KeyNum;
use crate::signify::{ALGORITHM, check_comment, read_block, write_block};
use alloc::string::String;
use alloc::vec::Vec;

/// Largest signature file read (S10).
pub const MAX_SIGNATURE_FILE: usize = 4096;
/// Most signatures in one file (S2).
pub const MAX_SIGNATURES: usize = 16;

/// Payload length of a signify signature: `"Ed"`, keynum, signature.
const SIGNATURE_LEN: usize = 2 + 8 + 64;

/// One Ed25519 signature and the key number of the key that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    /// Which key signed, as signify numbers keys.
    pub keynum: KeyNum,
    /// The signature over the whole message.
    pub signature: ed25519_dalek::Signature,
}

/// A detached signature file: signatures with their (untrusted) comments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureFile {
    /// The blocks in file order.
    pub blocks: Vec<(String, Signature)>,
}

impl SignatureFile {
    /// Parses a file of signify signature blocks, refusing oversized files before reading them.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let what = "signature file";
        if bytes.len() > MAX_SIGNATURE_FILE {
            return Err(Error::TooLarge {
                what,
                limit: MAX_SIGNATURE_FILE,
            });
        }
        let mut text = core::str::from_utf8(bytes).map_err(|_| malformed(what, "not UTF-8"))?;
        let mut file = Self::default();
        while !text.is_empty() {
            if file.blocks.len() == MAX_SIGNATURES {
                return Err(Error::TooLarge {
                    what: "signature count",
                    limit: MAX_SIGNATURES,
                });
            }
            let block = read_block(text, SIGNATURE_LEN, what)?;
            let signature = Signature {
                keynum: block.bytes[2..10].try_into().expect("8 bytes"),
                signature: ed25519_dalek::Signature::from_slice(&block.bytes[10..])
                    .expect("64 bytes"),
            };
            file.blocks.push((block.comment.into(), signature));
            text = block.rest;
        }
        if file.blocks.is_empty() {
            return Err(malformed(what, "no signature"));
        }
        Ok(file)
    }

    /// Adds a signature, replacing an earlier one by the same key number. Refuses a comment
    /// signify could not read, and a file that [`Self::parse`] would refuse as too large.
    pub fn add(&mut self, comment: &str, signature: Signature) -> Result<()> {
        check_comment(comment).map_err(|reason| malformed("comment", reason))?;
        let mut next = self.clone();
        next.blocks.retain(|(_, s)| s.keynum != signature.keynum);
        next.blocks.push((comment.into(), signature));
        if next.blocks.len() > MAX_SIGNATURES {
            return Err(Error::TooLarge {
                what: "signature count",
                limit: MAX_SIGNATURES,
            });
        }
        if next.to_file().len() > MAX_SIGNATURE_FILE {
            return Err(Error::TooLarge {
                what: "signature file",
                limit: MAX_SIGNATURE_FILE,
            });
        }
        *self = next;
        Ok(())
    }

    /// The file's bytes; [`Self::parse`] of them gives back `self`.
    pub fn to_file(&self) -> String {
        let mut out = String::new();
        for (comment, signature) in &self.blocks {
            let mut payload = [0u8; SIGNATURE_LEN];
            payload[..2].copy_from_slice(ALGORITHM);
            payload[2..10].copy_from_slice(&signature.keynum);
            payload[10..].copy_from_slice(&signature.signature.to_bytes());
            write_block(&mut out, comment, &payload);
        }
        out
    }
}
