//! OpenBSD signify's file framing: `untrusted comment: <text>\n<base64>\n`.
//!
//! Every signify file (public key, secret key, signature) is one such block whose decoded bytes
//! start with the algorithm `"Ed"`. The comment is not authenticated and is never interpreted.
//! The reader is stricter than signify's: canonical base64, no carriage returns, and the
//! decoded length must be the one expected for the kind of file.

use crate::encoding::{base64_decode, base64_encode};
use crate::error::{Error, Result, malformed};
use alloc::string::String;
use alloc::vec::Vec;

/// The prefix of the first line.
pub(crate) const COMMENT_HEADER: &str = "untrusted comment: ";
/// signify's algorithm tag: Ed25519 over the whole message.
pub(crate) const ALGORITHM: &[u8; 2] = b"Ed";
/// Longest comment signify accepts (`COMMENTMAXLEN` - 1).
pub(crate) const COMMENT_MAX: usize = 1023;

/// One decoded block and what follows it.
pub(crate) struct Block<'a> {
    /// The comment, without the header.
    pub(crate) comment: &'a str,
    /// The decoded bytes, `"Ed"` included.
    pub(crate) bytes: Vec<u8>,
    /// The text after the block's second newline.
    pub(crate) rest: &'a str,
}

/// Reads the block at the start of `text`, whose payload must be `len` bytes starting `"Ed"`.
pub(crate) fn read_block<'a>(text: &'a str, len: usize, what: &'static str) -> Result<Block<'a>> {
    let Some(after) = text.strip_prefix(COMMENT_HEADER) else {
        return Err(malformed(
            what,
            "the first line must start with \"untrusted comment: \"",
        ));
    };
    let (comment, after) = after
        .split_once('\n')
        .ok_or_else(|| malformed(what, "no line after the comment"))?;
    let (line, rest) = after
        .split_once('\n')
        .ok_or_else(|| malformed(what, "the base64 line does not end with a newline"))?;
    check_comment(comment).map_err(|reason| malformed(what, reason))?;
    let bytes = base64_decode(line.as_bytes())
        .ok_or_else(|| malformed(what, "the second line is not canonical base64"))?;
    if bytes.len() != len {
        return Err(malformed(
            what,
            alloc::format!("{} bytes where {len} were expected", bytes.len()),
        ));
    }
    if bytes[..2] != ALGORITHM[..] {
        return Err(Error::Unsupported {
            what: "signify algorithm",
            value: String::from_utf8_lossy(&bytes[..2]).into_owned(),
        });
    }
    Ok(Block {
        comment,
        bytes,
        rest,
    })
}

/// Whether signify would accept `comment`: one line, 1 to 1023 bytes, no NUL.
pub(crate) fn check_comment(comment: &str) -> core::result::Result<(), &'static str> {
    if comment.is_empty() || comment.len() > COMMENT_MAX {
        Err("the comment must be 1 to 1023 bytes long")
    } else if comment.contains(['\n', '\r', '\0']) {
        Err("the comment must be one line without NUL or carriage return")
    } else {
        Ok(())
    }
}

/// Appends the block for `bytes` (which start with `"Ed"`) to `out`.
pub(crate) fn write_block(out: &mut String, comment: &str, bytes: &[u8]) {
    out.push_str(COMMENT_HEADER);
    out.push_str(comment);
    out.push('\n');
    out.push_str(&base64_encode(bytes));
    out.push('\n');
}
