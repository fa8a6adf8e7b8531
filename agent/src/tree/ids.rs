//! `--uid-shift`/`--uid-range`: archiving a container's tree whose ids start at `shift` as if
//! they started at 0, and extracting it back at another `shift` (spec §8.1; casync's rule).
//! A tree is encoded with `(id - shift) % range` (an id below `shift` is refused) and extracted
//! with `id % range + shift`, for owners and groups alike.

/// The shift and range of ids (both set once either option is given: shift 0, range 0x10000).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IdShift {
    /// The host id that archive id 0 stands for.
    pub(crate) shift: u32,
    /// How many ids the archive's ids span (never 0).
    pub(crate) range: u32,
}

/// casync's range when only `--uid-shift` is given.
pub(crate) const DEFAULT_RANGE: u32 = 0x10000;

impl IdShift {
    /// The archive id of host id `id`; `None` when `id` lies below the shift.
    pub(crate) fn encode(self, id: u32) -> Option<u32> {
        id.checked_sub(self.shift).map(|d| d % self.range)
    }

    /// The host id of archive id `id` (saturating at the top of the id space).
    pub(crate) fn decode(self, id: u32) -> u32 {
        (id % self.range).saturating_add(self.shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_shift_as_casync_shifts_them() {
        // Values from casync 2+20201210 runs (`make`/`extract --uid-shift=…`).
        let default = IdShift {
            shift: 0,
            range: DEFAULT_RANGE,
        };
        assert_eq!(default.encode(70_000), Some(4464));
        let shifted = IdShift {
            shift: 1000,
            range: DEFAULT_RANGE,
        };
        assert_eq!(shifted.encode(1005), Some(5));
        assert_eq!(shifted.encode(66_600), Some(64));
        assert_eq!(shifted.encode(999), None);
        let narrow = IdShift {
            shift: 1000,
            range: 100,
        };
        assert_eq!(narrow.encode(1050), Some(50));
        assert_eq!(narrow.decode(64), 1064);
        let extract = IdShift {
            shift: 2000,
            range: DEFAULT_RANGE,
        };
        assert_eq!(extract.decode(70_000), 6464);
        assert_eq!(extract.decode(0), 2000);
        let top = IdShift {
            shift: u32::MAX - 1,
            range: 10,
        };
        assert_eq!(top.decode(9), u32::MAX);
    }
}
