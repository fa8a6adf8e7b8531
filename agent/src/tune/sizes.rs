//! Compressed sizes of one candidate's pieces at each level, known or estimated.
//!
//! The cheapest level is computed for every piece. A costlier level (zstd-19 compresses at a
//! few MB/s) is first computed on a sample: the pieces whose id starts with a byte below
//! [`SAMPLE_BELOW`], 1 in 16 chosen by content rather than place. Each other piece's size is
//! then estimated as its cheapest-level size times the sample's ratio between the two levels.
//! The caller completes exactly the rows that could win; the others stay marked as estimates.

use super::compress::Compressed;
use super::need::Piece;
use std::time::Duration;

/// Pieces whose id's first byte is below this form the sample (1 in 16).
pub(crate) const SAMPLE_BELOW: u8 = 16;
/// With fewer sample pieces than this, estimates would be rough: compute everything.
pub(crate) const MIN_SAMPLE: usize = 32;

/// Which pieces to compute at a level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every piece not yet known.
    All,
    /// Only the sample.
    Sample,
    /// None.
    Nothing,
}

/// Known sizes and the CPU time they took, per level.
pub(crate) struct SizeTable {
    /// `sizes[level][piece]`.
    sizes: Vec<Vec<Option<u64>>>,
    /// CPU time spent per level.
    cpu: Vec<Duration>,
    /// Uncompressed bytes compressed per level.
    raw_done: Vec<u64>,
    /// Uncompressed bytes of all pieces.
    raw_total: u64,
    /// The level computed for every piece.
    base: usize,
    /// Per level: the sample's compressed bytes at that level over those at the base level.
    ratios: Vec<f64>,
}

impl SizeTable {
    /// An empty table for `pieces` at `levels` levels, `base` being the cheapest.
    pub(crate) fn new(pieces: &[Piece], levels: usize, base: usize) -> Self {
        Self {
            sizes: vec![vec![None; pieces.len()]; levels],
            cpu: vec![Duration::ZERO; levels],
            raw_done: vec![0; levels],
            raw_total: pieces.iter().map(|p| p.len).sum(),
            base,
            ratios: vec![1.0; levels],
        }
    }

    /// True when the sample is too small to estimate from.
    pub(crate) fn small_sample(pieces: &[Piece]) -> bool {
        pieces.iter().filter(|p| in_sample(p)).count() < MIN_SAMPLE
    }

    /// The pieces to compute at `level` for `scope`: numbers of those not yet known.
    pub(crate) fn wanted(&self, level: usize, scope: Scope, pieces: &[Piece]) -> Vec<usize> {
        let unknown = (0..pieces.len()).filter(|&p| self.sizes[level][p].is_none());
        match scope {
            Scope::All => unknown.collect(),
            Scope::Sample => unknown.filter(|&p| in_sample(&pieces[p])).collect(),
            Scope::Nothing => Vec::new(),
        }
    }

    /// Records piece `p`'s compression at `level`.
    pub(crate) fn record(&mut self, level: usize, p: usize, len: u64, result: Compressed) {
        self.sizes[level][p] = Some(result.size);
        self.cpu[level] += result.cpu;
        self.raw_done[level] += len;
    }

    /// Updates the ratios the estimates use, after recording.
    pub(crate) fn update_ratios(&mut self) {
        for level in 0..self.sizes.len() {
            let (mut at_level, mut at_base) = (0u64, 0u64);
            for (size, base) in self.sizes[level].iter().zip(&self.sizes[self.base]) {
                if let (Some(size), Some(base)) = (size, base) {
                    at_level += size;
                    at_base += base;
                }
            }
            self.ratios[level] = match at_base {
                0 => 1.0,
                b => at_level as f64 / b as f64,
            };
        }
    }

    /// True when every piece's size is known at `level`.
    pub(crate) fn is_exact(&self, level: usize) -> bool {
        self.sizes[level].iter().all(Option::is_some)
    }

    /// Piece `p`'s size at `level`: known, else estimated.
    pub(crate) fn size(&self, level: usize, p: usize) -> u64 {
        match (self.sizes[level][p], self.sizes[self.base][p]) {
            (Some(size), _) => size,
            (None, Some(base)) => (base as f64 * self.ratios[level]).round() as u64,
            (None, None) => 0,
        }
    }

    /// CPU time to compress every piece at `level`: measured, or extrapolated from the part
    /// computed.
    pub(crate) fn compress_cpu(&self, level: usize) -> Duration {
        match (self.is_exact(level), self.raw_done[level]) {
            (true, _) | (false, 0) => self.cpu[level],
            (false, done) => self.cpu[level].mul_f64(self.raw_total as f64 / done as f64),
        }
    }
}

/// True for the pieces of the sample.
fn in_sample(piece: &Piece) -> bool {
    piece.id.0[0] < SAMPLE_BELOW
}

#[cfg(test)]
mod tests {
    use super::*;
    use otasync_core::ChunkId;

    fn piece(n: u8, len: u64) -> Piece {
        Piece {
            start: 0,
            len,
            id: ChunkId([n; 32]),
        }
    }

    fn done(size: u64) -> Compressed {
        Compressed {
            size,
            cpu: Duration::from_millis(10),
        }
    }

    #[test]
    fn unknown_sizes_are_estimated_from_the_sample_ratio() {
        // Pieces 0 and 1 are in the sample (first id byte < 16), 2 is not.
        let pieces = [piece(1, 100), piece(2, 100), piece(200, 200)];
        let mut table = SizeTable::new(&pieces, 2, 0);
        for (p, size) in [(0, 50), (1, 30), (2, 80)] {
            table.record(0, p, pieces[p].len, done(size));
        }
        assert_eq!(table.wanted(1, Scope::Sample, &pieces), vec![0, 1]);
        table.record(1, 0, 100, done(40));
        table.record(1, 1, 100, done(24));
        table.update_ratios();
        assert!(!table.is_exact(1));
        // The sample went from 80 to 64 bytes: 0.8.
        assert_eq!(table.size(1, 2), 64);
        assert_eq!(table.size(1, 0), 40);
        // 20 ms for 200 of 400 bytes.
        assert_eq!(table.compress_cpu(1), Duration::from_millis(40));
        assert_eq!(table.wanted(1, Scope::All, &pieces), vec![2]);
        table.record(1, 2, 200, done(70));
        assert!(table.is_exact(1));
        assert_eq!(table.size(1, 2), 70);
        assert_eq!(table.compress_cpu(1), Duration::from_millis(30));
    }

    #[test]
    fn a_small_sample_is_not_estimated_from() {
        let few: Vec<Piece> = (0..40).map(|n| piece(n, 10)).collect();
        assert!(SizeTable::small_sample(&few));
        let many: Vec<Piece> = (0..40).map(|n| piece(n % 10, 10)).collect();
        assert!(!SizeTable::small_sample(&many));
    }
}
