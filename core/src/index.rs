//! The `.caibx` (blob) and `.caidx` (archive) index format (casync `caindex.c`, spec §2).
//!
//! ```text
//! offset   size   field (all little-endian u64 unless noted)
//! 0        48     header: size = 48, type = INDEX, feature_flags, chunk_size_min/avg/max
//! 48       16     table:  size = u64::MAX, type = TABLE
//! 64       40*n   items:  end offset of the chunk in the stream, chunk id (32 bytes)
//! 64+40n   40     tail:   0, 0, index_offset = 48, table_size = 16 + 40n + 40, TAIL_MARKER
//! ```
//!
//! End offsets are cumulative: chunk `i` covers `[end[i-1], end[i])`. The decoder is strict: it
//! accepts exactly what casync writes and names the first thing that is wrong.

use crate::chunker::{ChunkSizeError, ChunkSizes};
use crate::digest::{ChunkId, DigestAlgorithm};
use crate::flags;
use alloc::vec::Vec;
use core::fmt;

/// Record type of the index header (`CA_FORMAT_INDEX`).
pub const CA_FORMAT_INDEX: u64 = 0x96824d9c7b129ff9;
/// Record type of the chunk table (`CA_FORMAT_TABLE`).
pub const CA_FORMAT_TABLE: u64 = 0xe75b9e112f17417d;
/// Last field of the table tail (`CA_FORMAT_TABLE_TAIL_MARKER`).
pub const CA_FORMAT_TABLE_TAIL_MARKER: u64 = 0x4b4f050e5549ecd1;
/// Size of the header record, also the tail's `index_offset`.
pub const HEADER_SIZE: usize = 48;
/// Size of the table record header, whose size field is `u64::MAX` (unknown while streaming).
pub const TABLE_HEADER_SIZE: usize = 16;
/// Size of one table item, and of the tail.
pub const ITEM_SIZE: usize = 40;
/// Size of an index with no chunks.
pub const EMPTY_INDEX_SIZE: usize = HEADER_SIZE + TABLE_HEADER_SIZE + ITEM_SIZE;

/// What the header says about the chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexHeader {
    /// Feature flags: the digest bit, and for archives the archive's metadata set.
    pub feature_flags: u64,
    /// Chunk size limits the stream was cut with.
    pub sizes: ChunkSizes,
}

impl IndexHeader {
    /// The algorithm that names the chunks.
    pub fn digest(&self) -> DigestAlgorithm {
        DigestAlgorithm::from_flags(self.feature_flags)
    }
}

/// One table item: where a chunk ends in the stream and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkEntry {
    /// Offset in the stream just past this chunk.
    pub end: u64,
    /// Digest of the chunk's uncompressed bytes.
    pub id: ChunkId,
}

/// A whole index: header plus chunk table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Index {
    /// Flags and chunk size limits.
    pub header: IndexHeader,
    /// Chunks in stream order.
    pub chunks: Vec<ChunkEntry>,
}

/// A decoding failure, with the byte offset where it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexError {
    /// Byte offset in the index file.
    pub offset: u64,
    /// What is wrong there.
    pub kind: IndexErrorKind,
}

/// What is wrong with an index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexErrorKind {
    /// The input ends before the header, an item or the tail is complete.
    Truncated,
    /// The header record's size field is not 48.
    BadHeaderSize(u64),
    /// The header record's type is not [`CA_FORMAT_INDEX`].
    NotAnIndex(u64),
    /// Feature flags with bits casync does not know.
    UnknownFeatureFlags(u64),
    /// Feature flags that are not in casync's normalized form.
    FlagsNotNormalized(u64),
    /// Chunk size limits out of range or out of order.
    BadChunkSizes(ChunkSizeError),
    /// The table record header is not `{u64::MAX, TABLE}`.
    BadTableHeader,
    /// An end offset not greater than the one before.
    NonIncreasingOffset {
        /// Index of the item.
        item: u64,
        /// Its end offset.
        end: u64,
        /// The end offset of the item before (0 for the first).
        previous: u64,
    },
    /// A chunk longer than the header's maximum.
    ChunkTooLarge {
        /// Index of the item.
        item: u64,
        /// Its size.
        size: u64,
        /// The header's maximum.
        max: u64,
    },
    /// A chunk other than the last shorter than the header's minimum (and than 48 bytes).
    ChunkTooSmall {
        /// Index of the item.
        item: u64,
        /// Its size.
        size: u64,
        /// The smallest size casync's chunker can produce with this header.
        min: u64,
    },
    /// The last record of the input is not a valid tail for the items before it.
    BadTail,
    /// Bytes after the tail.
    TrailingData,
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: ", self.offset)?;
        match self.kind {
            IndexErrorKind::Truncated => f.write_str("index is truncated (no table tail)"),
            IndexErrorKind::BadHeaderSize(size) => write!(f, "header size {size} is not 48"),
            IndexErrorKind::NotAnIndex(t) => write!(f, "not a casync index (record type {t:#x})"),
            IndexErrorKind::UnknownFeatureFlags(v) => write!(f, "unknown feature flags {v:#x}"),
            IndexErrorKind::FlagsNotNormalized(v) => {
                write!(f, "feature flags {v:#x} are not normalized")
            }
            IndexErrorKind::BadChunkSizes(e) => write!(f, "bad chunk sizes: {e}"),
            IndexErrorKind::BadTableHeader => f.write_str("bad chunk table header"),
            IndexErrorKind::NonIncreasingOffset {
                item,
                end,
                previous,
            } => write!(
                f,
                "chunk {item} ends at {end}, not after the previous end {previous}"
            ),
            IndexErrorKind::ChunkTooLarge { item, size, max } => {
                write!(
                    f,
                    "chunk {item} is {size} bytes, more than the maximum {max}"
                )
            }
            IndexErrorKind::ChunkTooSmall { item, size, min } => {
                write!(
                    f,
                    "chunk {item} is {size} bytes, less than the minimum {min}"
                )
            }
            IndexErrorKind::BadTail => f.write_str("the table tail is invalid"),
            IndexErrorKind::TrailingData => f.write_str("data after the table tail"),
        }
    }
}

impl core::error::Error for IndexError {}

fn le64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Encodes the header and the table record header.
pub fn encode_header(header: &IndexHeader) -> [u8; HEADER_SIZE + TABLE_HEADER_SIZE] {
    let mut out = [0u8; HEADER_SIZE + TABLE_HEADER_SIZE];
    let fields = [
        HEADER_SIZE as u64,
        CA_FORMAT_INDEX,
        header.feature_flags,
        header.sizes.min,
        header.sizes.avg,
        header.sizes.max,
        u64::MAX,
        CA_FORMAT_TABLE,
    ];
    for (slot, v) in out.chunks_exact_mut(8).zip(fields) {
        slot.copy_from_slice(&v.to_le_bytes());
    }
    out
}

/// Encodes one table item.
pub fn encode_item(entry: &ChunkEntry) -> [u8; ITEM_SIZE] {
    let mut out = [0u8; ITEM_SIZE];
    out[..8].copy_from_slice(&entry.end.to_le_bytes());
    out[8..].copy_from_slice(&entry.id.0);
    out
}

/// Encodes the tail that closes a table of `items` items.
pub fn encode_tail(items: u64) -> [u8; ITEM_SIZE] {
    let mut out = [0u8; ITEM_SIZE];
    out[16..24].copy_from_slice(&(HEADER_SIZE as u64).to_le_bytes());
    out[24..32].copy_from_slice(&table_size(items).to_le_bytes());
    out[32..].copy_from_slice(&CA_FORMAT_TABLE_TAIL_MARKER.to_le_bytes());
    out
}

/// The tail's `table_size` for `items` items: table header, items and tail.
fn table_size(items: u64) -> u64 {
    (TABLE_HEADER_SIZE as u64)
        .saturating_add(items.saturating_mul(ITEM_SIZE as u64))
        .saturating_add(ITEM_SIZE as u64)
}

/// Decodes and checks the header and table record header (the first 64 bytes).
pub fn decode_header(bytes: &[u8]) -> Result<IndexHeader, IndexError> {
    let err = |offset: u64, kind| Err(IndexError { offset, kind });
    if bytes.len() < HEADER_SIZE + TABLE_HEADER_SIZE {
        return err(bytes.len() as u64, IndexErrorKind::Truncated);
    }
    let size = le64(bytes, 0);
    if size != HEADER_SIZE as u64 {
        return err(0, IndexErrorKind::BadHeaderSize(size));
    }
    let kind = le64(bytes, 8);
    if kind != CA_FORMAT_INDEX {
        return err(8, IndexErrorKind::NotAnIndex(kind));
    }
    let feature_flags = le64(bytes, 16);
    if !flags::are_known(feature_flags) {
        return err(16, IndexErrorKind::UnknownFeatureFlags(feature_flags));
    }
    if !flags::is_normalized(feature_flags) {
        return err(16, IndexErrorKind::FlagsNotNormalized(feature_flags));
    }
    let sizes = ChunkSizes {
        min: le64(bytes, 24),
        avg: le64(bytes, 32),
        max: le64(bytes, 40),
    };
    if let Err(e) = sizes.validate() {
        return err(24, IndexErrorKind::BadChunkSizes(e));
    }
    if le64(bytes, 48) != u64::MAX || le64(bytes, 56) != CA_FORMAT_TABLE {
        return err(48, IndexErrorKind::BadTableHeader);
    }
    Ok(IndexHeader {
        feature_flags,
        sizes,
    })
}

/// True when a 40-byte record is the tail of a table with `items` items before it.
fn is_tail(record: &[u8], items: u64) -> bool {
    le64(record, 32) == CA_FORMAT_TABLE_TAIL_MARKER
        && le64(record, 0) == 0
        && le64(record, 8) == 0
        && le64(record, 16) == HEADER_SIZE as u64
        && le64(record, 24) == table_size(items)
}

/// Checks table items one at a time, as they arrive.
#[derive(Clone, Debug)]
pub struct ItemValidator {
    sizes: ChunkSizes,
    items: u64,
    previous_end: u64,
    /// Size of the last item seen, held back: only a non-last chunk must reach the minimum.
    pending_short: Option<(u64, u64)>,
}

impl ItemValidator {
    /// A validator for a table under this header.
    pub fn new(header: &IndexHeader) -> Self {
        Self {
            sizes: header.sizes,
            items: 0,
            previous_end: 0,
            pending_short: None,
        }
    }

    /// The shortest non-last chunk casync's chunker can cut with these limits.
    fn effective_min(&self) -> u64 {
        if self.sizes.is_fixed() {
            self.sizes.min
        } else {
            self.sizes
                .min
                .max(crate::chunker::WINDOW_SIZE as u64)
                .min(self.sizes.max)
        }
    }

    /// Checks the next item.
    pub fn push(&mut self, entry: &ChunkEntry) -> Result<(), IndexErrorKind> {
        let item = self.items;
        if let Some((short_item, size)) = self.pending_short.take() {
            return Err(IndexErrorKind::ChunkTooSmall {
                item: short_item,
                size,
                min: self.effective_min(),
            });
        }
        if entry.end <= self.previous_end {
            return Err(IndexErrorKind::NonIncreasingOffset {
                item,
                end: entry.end,
                previous: self.previous_end,
            });
        }
        let size = entry.end - self.previous_end;
        if size > self.sizes.max {
            return Err(IndexErrorKind::ChunkTooLarge {
                item,
                size,
                max: self.sizes.max,
            });
        }
        if size < self.effective_min() {
            self.pending_short = Some((item, size));
        }
        self.previous_end = entry.end;
        self.items += 1;
        Ok(())
    }

    /// Number of items accepted so far.
    pub fn items(&self) -> u64 {
        self.items
    }
}

impl Index {
    /// An index with no chunks yet.
    pub fn new(header: IndexHeader) -> Self {
        Self {
            header,
            chunks: Vec::new(),
        }
    }

    /// Parses a complete index file strictly.
    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        let header = decode_header(bytes)?;
        let mut validator = ItemValidator::new(&header);
        let mut at = HEADER_SIZE + TABLE_HEADER_SIZE;
        // At most this many items fit in the input: the allocation is bounded by its size.
        let capacity = bytes.len().saturating_sub(EMPTY_INDEX_SIZE) / ITEM_SIZE;
        let mut chunks = Vec::with_capacity(capacity);
        loop {
            let Some(record) = bytes.get(at..at + ITEM_SIZE) else {
                return Err(IndexError {
                    offset: at as u64,
                    kind: IndexErrorKind::Truncated,
                });
            };
            if is_tail(record, validator.items()) {
                if at + ITEM_SIZE != bytes.len() {
                    return Err(IndexError {
                        offset: (at + ITEM_SIZE) as u64,
                        kind: IndexErrorKind::TrailingData,
                    });
                }
                return Ok(Self { header, chunks });
            }
            if at + ITEM_SIZE == bytes.len() {
                return Err(IndexError {
                    offset: at as u64,
                    kind: IndexErrorKind::BadTail,
                });
            }
            let mut id = [0u8; 32];
            id.copy_from_slice(&record[8..]);
            let entry = ChunkEntry {
                end: le64(record, 0),
                id: ChunkId(id),
            };
            validator.push(&entry).map_err(|kind| IndexError {
                offset: at as u64,
                kind,
            })?;
            chunks.push(entry);
            at += ITEM_SIZE;
        }
    }

    /// Serializes the index exactly as casync writes it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(EMPTY_INDEX_SIZE + ITEM_SIZE * self.chunks.len());
        out.extend_from_slice(&encode_header(&self.header));
        for entry in &self.chunks {
            out.extend_from_slice(&encode_item(entry));
        }
        out.extend_from_slice(&encode_tail(self.chunks.len() as u64));
        out
    }

    /// Size of the indexed stream (blob or archive).
    pub fn blob_size(&self) -> u64 {
        self.chunks.last().map_or(0, |c| c.end)
    }

    /// Chunks with their start offsets and sizes, in stream order.
    pub fn spans(&self) -> impl Iterator<Item = ChunkSpan> + '_ {
        let starts = core::iter::once(0).chain(self.chunks.iter().map(|c| c.end));
        self.chunks.iter().zip(starts).map(|(c, start)| ChunkSpan {
            start,
            end: c.end,
            id: c.id,
        })
    }
}

/// A chunk placed in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSpan {
    /// Offset of the first byte.
    pub start: u64,
    /// Offset just past the last byte.
    pub end: u64,
    /// Chunk id.
    pub id: ChunkId,
}

impl ChunkSpan {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// True for an empty span (never in a valid index).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: u64) -> Index {
        let header = IndexHeader {
            feature_flags: flags::BLOB_INDEX_DEFAULT,
            sizes: ChunkSizes::default(),
        };
        let mut index = Index::new(header);
        for i in 0..n {
            index.chunks.push(ChunkEntry {
                end: (i + 1) * 65536,
                id: ChunkId([i as u8; 32]),
            });
        }
        index
    }

    fn kind_of(bytes: &[u8]) -> IndexErrorKind {
        Index::decode(bytes).unwrap_err().kind
    }

    #[test]
    fn empty_index_is_104_bytes_with_table_size_56() {
        let bytes = sample(0).encode();
        assert_eq!(bytes.len(), 104);
        assert_eq!(le64(&bytes, 88), 56);
        assert_eq!(Index::decode(&bytes).unwrap(), sample(0));
    }

    #[test]
    fn round_trip() {
        let index = sample(5);
        let bytes = index.encode();
        assert_eq!(bytes.len(), 104 + 5 * 40);
        assert_eq!(Index::decode(&bytes).unwrap(), index);
        assert_eq!(index.blob_size(), 5 * 65536);
        let spans: Vec<_> = index.spans().collect();
        assert_eq!((spans[1].start, spans[1].len()), (65536, 65536));
    }

    #[test]
    fn each_corruption_has_its_error() {
        let good = sample(3).encode();
        let patch = |at: usize, v: u64| {
            let mut b = good.clone();
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
            b
        };
        assert_eq!(kind_of(&good[..50]), IndexErrorKind::Truncated);
        assert_eq!(kind_of(&good[..good.len() - 1]), IndexErrorKind::Truncated);
        assert_eq!(kind_of(&good[..good.len() - 40]), IndexErrorKind::BadTail);
        assert_eq!(kind_of(&patch(0, 47)), IndexErrorKind::BadHeaderSize(47));
        assert_eq!(kind_of(&patch(8, 1)), IndexErrorKind::NotAnIndex(1));
        assert_eq!(
            kind_of(&patch(16, 1 << 40)),
            IndexErrorKind::UnknownFeatureFlags(1 << 40)
        );
        assert_eq!(
            kind_of(&patch(
                16,
                flags::BLOB_INDEX_DEFAULT | flags::WITH_FLAG_NODUMP
            )),
            IndexErrorKind::FlagsNotNormalized(0xb000000000100000)
        );
        assert!(matches!(
            kind_of(&patch(24, 0)),
            IndexErrorKind::BadChunkSizes(_)
        ));
        assert!(matches!(
            kind_of(&patch(40, 1 << 40)),
            IndexErrorKind::BadChunkSizes(_)
        ));
        assert_eq!(kind_of(&patch(48, 5)), IndexErrorKind::BadTableHeader);
        assert!(matches!(
            kind_of(&patch(64 + 40, 65536)),
            IndexErrorKind::NonIncreasingOffset { item: 1, .. }
        ));
        assert!(matches!(
            kind_of(&patch(64, 300_000)),
            IndexErrorKind::ChunkTooLarge { item: 0, .. }
        ));
        assert!(matches!(
            kind_of(&patch(64, 100)),
            IndexErrorKind::ChunkTooSmall {
                item: 0,
                size: 100,
                ..
            }
        ));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(kind_of(&trailing), IndexErrorKind::TrailingData);
        // A tail whose table size does not match the item count is not a tail.
        assert_eq!(
            kind_of(&patch(good.len() - 16, 999)),
            IndexErrorKind::BadTail
        );
        assert_eq!(kind_of(&patch(good.len() - 8, 1)), IndexErrorKind::BadTail);
    }

    #[test]
    fn last_chunk_may_be_short() {
        let mut index = sample(2);
        index.chunks.push(ChunkEntry {
            end: 2 * 65536 + 1,
            id: ChunkId([9; 32]),
        });
        assert_eq!(Index::decode(&index.encode()).unwrap(), index);
    }

    #[test]
    fn error_names_offset() {
        let e = Index::decode(&[0u8; 10]).unwrap_err();
        assert_eq!(e.offset, 10);
        assert!(alloc::format!("{e}").contains("truncated"));
    }
}
