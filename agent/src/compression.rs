//! Chunk compression as casync stores it: one zstd frame per chunk (no checksum), level 3 by
//! default. Decompression is bounded by the size the
//! index promises, so a small chunk file cannot expand into a huge buffer (zstd bomb).

use std::fmt;
use zstd::zstd_safe::zstd_sys::ZSTD_EndDirective;
use zstd::zstd_safe::{self, CCtx, DCtx, InBuffer, OutBuffer, ResetDirective};

/// zstd's frame magic, `28 b5 2f fd`.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// xz's stream magic (casync `--compression=xz`), recognised only to name it in errors.
const XZ_MAGIC: [u8; 6] = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
/// gzip's magic (casync `--compression=gzip`), recognised only to name it in errors.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// casync's zstd level.
pub(crate) const DEFAULT_LEVEL: i32 = 3;

/// How chunks are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    /// zstd at the given level, under `<id>.cacnk`.
    Zstd(i32),
    /// Raw bytes under the bare `<id>` (casync reads these too).
    None,
}

/// Why a stored chunk could not be turned back into its bytes.
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// The data is in a format we do not read.
    Unsupported(&'static str),
    /// Neither zstd nor any other known format.
    UnknownFormat,
    /// The frame decodes to more bytes than the index says the chunk has.
    TooLarge { limit: usize },
    /// The frame decodes to a different size than the index says.
    WrongSize { expected: usize, actual: usize },
    /// zstd reported corruption.
    Corrupt(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported(name) => write!(f, "{name}-compressed chunks are not supported"),
            Self::UnknownFormat => f.write_str("not a zstd frame"),
            Self::TooLarge { limit } => write!(f, "decompresses to more than {limit} bytes"),
            Self::WrongSize { expected, actual } => {
                write!(f, "decompresses to {actual} bytes, expected {expected}")
            }
            Self::Corrupt(reason) => write!(f, "zstd: {reason}"),
        }
    }
}

/// A reusable zstd compression context (one per worker thread).
pub(crate) struct Compressor {
    context: CCtx<'static>,
    level: i32,
}

impl Compressor {
    pub(crate) fn new(level: i32) -> Self {
        Self {
            context: CCtx::create(),
            level,
        }
    }

    /// Compresses `data` into `out` (cleared first) as one zstd frame in a single pass: zstd
    /// sees the whole chunk at once, sizes its tables for it and reads it in place (casync
    /// streams the chunk in, which copies it and hides its size; both frames read the same).
    pub(crate) fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let ctx = &mut self.context;
        let zerr = |code| DecodeError::Corrupt(zstd_safe::get_error_name(code));
        ctx.reset(ResetDirective::SessionOnly).map_err(zerr)?;
        ctx.set_parameter(zstd_safe::CParameter::CompressionLevel(self.level))
            .map_err(zerr)?;
        out.clear();
        out.reserve(zstd_safe::compress_bound(data.len()));
        let mut input = InBuffer::around(data);
        loop {
            let mut output = OutBuffer::around_pos(out, out.len());
            let remaining = ctx
                .compress_stream2(&mut output, &mut input, ZSTD_EndDirective::ZSTD_e_end)
                .map_err(zerr)?;
            if remaining == 0 {
                return Ok(());
            }
            out.reserve(remaining.max(4096));
        }
    }
}

/// A reusable zstd decompression context (one per worker thread).
pub(crate) struct Decompressor {
    context: DCtx<'static>,
}

impl Default for Decompressor {
    fn default() -> Self {
        Self {
            context: DCtx::create(),
        }
    }
}

impl Decompressor {
    /// Decodes a stored chunk into `out`, which must end up exactly `expected` bytes long.
    /// `compressed` says whether it came from a `.cacnk` file (else the bytes are raw).
    pub(crate) fn decode(
        &mut self,
        stored: &[u8],
        compressed: bool,
        expected: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), DecodeError> {
        out.clear();
        if !compressed {
            if stored.len() != expected {
                return Err(DecodeError::WrongSize {
                    expected,
                    actual: stored.len(),
                });
            }
            out.extend_from_slice(stored);
            return Ok(());
        }
        if !stored.starts_with(&ZSTD_MAGIC) {
            return Err(if stored.starts_with(&XZ_MAGIC) {
                DecodeError::Unsupported("xz")
            } else if stored.starts_with(&GZIP_MAGIC) {
                DecodeError::Unsupported("gzip")
            } else {
                DecodeError::UnknownFormat
            });
        }
        // Room for one byte beyond `expected` tells "too large" apart from "exactly right";
        // zstd writes into the spare capacity (not zeroed first) and never past it.
        out.reserve_exact(expected + 1);
        let written =
            self.context.decompress(out, stored).map_err(
                |code| match zstd_safe::get_error_name(code) {
                    "Destination buffer is too small" => DecodeError::TooLarge { limit: expected },
                    name => DecodeError::Corrupt(name),
                },
            )?;
        if written > expected {
            out.clear();
            return Err(DecodeError::TooLarge { limit: expected });
        }
        if written != expected {
            return Err(DecodeError::WrongSize {
                expected,
                actual: written,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_gives_exactly_the_expected_size_or_an_error() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut stored = Vec::new();
        Compressor::new(3).compress(&data, &mut stored).unwrap();
        let mut decoder = Decompressor::default();
        // A buffer with room to spare from an earlier, larger chunk.
        let mut out = Vec::with_capacity(1 << 20);
        decoder.decode(&stored, true, data.len(), &mut out).unwrap();
        assert!(out == data);
        let err = decoder.decode(&stored, true, data.len() - 1, &mut out);
        assert!(matches!(err, Err(DecodeError::TooLarge { limit }) if limit == data.len() - 1));
        assert!(out.is_empty());
        let err = decoder.decode(&stored, true, data.len() + 1, &mut out);
        assert!(matches!(err, Err(DecodeError::WrongSize { .. })));
        let mut fresh = Vec::new();
        assert!(matches!(
            decoder.decode(&stored, true, 10, &mut fresh),
            Err(DecodeError::TooLarge { limit: 10 })
        ));
        decoder
            .decode(&data, false, data.len(), &mut fresh)
            .unwrap();
        assert!(fresh == data);
    }
}
