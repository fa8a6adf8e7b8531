//! GRUB's environment block, `grubenv` (GRUB `grub-core/lib/envblk.c`,
//! `util/grub-editenv.c`; ota-agent.md §3.3).
//!
//! ```text
//! "# GRUB Environment Block\n"       signature
//! "name=value\n" ...                  variables; in a value `\` is written `\\` and a
//!                                     newline `\` + newline
//! "#..." lines                        comments (grub-editenv 2.06 writes a "# WARNING" line)
//! "#####..."                          padding up to exactly 1024 bytes
//! ```
//!
//! There is no checksum. This writer emits the signature, the variables sorted by name and
//! the padding (comments are not kept); the block is always [`BLOCK_SIZE`] bytes, and
//! variables that do not fit are an error, as in `grub-editenv`.

use super::{Env, EnvError, valid_name};

/// Size of a grubenv block as `grub-editenv create` makes it and GRUB's `save_env` rewrites
/// in place.
pub const BLOCK_SIZE: usize = 1024;
/// The first bytes of every block (`GRUB_ENVBLK_SIGNATURE`).
pub const SIGNATURE: &[u8] = b"# GRUB Environment Block\n";
/// The byte filling the free space.
const PADDING: u8 = b'#';

/// Parses a grubenv block the way GRUB's `grub_envblk_iterate` reads it: after the
/// signature, lines beginning with `#` are skipped, other lines are `name=value` with `\`
/// escaping the byte after it. Lines that GRUB would misread (no `=`, unterminated, NUL,
/// a name defined twice) are errors.
pub fn parse(block: &[u8]) -> Result<Env, EnvError> {
    if block.len() != BLOCK_SIZE {
        return Err(EnvError::GrubSize { size: block.len() });
    }
    if !block.starts_with(SIGNATURE) {
        return Err(EnvError::GrubSignature);
    }
    let mut env = Env::new();
    let mut pos = SIGNATURE.len();
    let mut value = alloc::vec::Vec::new();
    while pos < block.len() {
        if block[pos] == b'#' {
            pos = next_line(block, pos);
            continue;
        }
        let offset = pos;
        let eq = match block[pos..]
            .iter()
            .position(|&b| matches!(b, b'=' | b'\n' | 0))
        {
            Some(i) if block[pos + i] == b'=' => i,
            Some(i) if block[pos + i] == 0 => return Err(EnvError::GrubNul { offset: pos + i }),
            _ => return Err(EnvError::MissingSeparator { offset }),
        };
        let name = &block[pos..pos + eq];
        if !valid_name(name) {
            return Err(EnvError::BadName { offset });
        }
        pos += eq + 1;
        value.clear();
        loop {
            match block.get(pos) {
                None => return Err(EnvError::GrubUnterminatedLine { offset }),
                Some(b'\n') => break,
                Some(0) => return Err(EnvError::GrubNul { offset: pos }),
                Some(b'\\') => {
                    match block.get(pos + 1) {
                        None => return Err(EnvError::GrubUnterminatedLine { offset }),
                        Some(0) => return Err(EnvError::GrubNul { offset: pos + 1 }),
                        Some(&b) => value.push(b),
                    }
                    pos += 2;
                }
                Some(&b) => {
                    value.push(b);
                    pos += 1;
                }
            }
        }
        pos += 1;
        if env.insert_checked(name, &value).is_some() {
            return Err(EnvError::Duplicate { offset });
        }
    }
    Ok(env)
}

/// The start of the line after the one at `pos` (GRUB's `find_next_line`: a backslash also
/// escapes a newline in a comment).
fn next_line(block: &[u8], mut pos: usize) -> usize {
    while pos < block.len() {
        match block[pos] {
            b'\\' => pos += 2,
            b'\n' => break,
            _ => pos += 1,
        }
    }
    pos + 1
}

/// Bytes the signature and the variables take, without padding.
pub fn encoded_len(env: &Env) -> usize {
    SIGNATURE.len()
        + env
            .iter()
            .map(|(n, v)| n.len() + 2 + v.len() + escapes(v))
            .sum::<usize>()
}

/// Number of bytes of `value` that need a backslash before them.
fn escapes(value: &[u8]) -> usize {
    value
        .iter()
        .filter(|&&b| matches!(b, b'\\' | b'\n'))
        .count()
}

/// Serialises the variables into a whole block.
pub fn store(env: &Env, out: &mut [u8; BLOCK_SIZE]) -> Result<(), EnvError> {
    let needed = encoded_len(env);
    if needed > BLOCK_SIZE {
        return Err(EnvError::TooLarge {
            needed,
            capacity: BLOCK_SIZE,
        });
    }
    out[..SIGNATURE.len()].copy_from_slice(SIGNATURE);
    let mut pos = SIGNATURE.len();
    let mut put = |b: u8| {
        out[pos] = b;
        pos += 1;
    };
    for (name, value) in env.iter() {
        name.iter().for_each(|&b| put(b));
        put(b'=');
        for &b in value {
            if matches!(b, b'\\' | b'\n') {
                put(b'\\');
            }
            put(b);
        }
        put(b'\n');
    }
    out[pos..].fill(PADDING);
    Ok(())
}

/// [`store`] into a new block.
pub fn to_block(env: &Env) -> Result<[u8; BLOCK_SIZE], EnvError> {
    let mut block = [PADDING; BLOCK_SIZE];
    store(env, &mut block)?;
    Ok(block)
}
