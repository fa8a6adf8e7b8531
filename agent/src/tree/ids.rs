//! `--uid-shift`/`--uid-range`: archiving a container's tree whose ids start at `shift` as if
//! they started at 0, and extracting it back at another `shift` (spec §8.1; casync's rule).
//! A tree is encoded with `(id - shift) % range` (an id below `shift` is refused) and extracted
//! with `id % range + shift`, for owners and groups alike.

/// The shift and range of ids (both set once either option is given: shift 0, range 0x10000).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IdShift {
    /// The host id that archive id 0 stands for.
    pub(crate) shift: u32,
    /// How many ids the archive's ids span (never 0; `shift + range` stays below `u32::MAX`,
    /// which `chown` takes for "unchanged").
    pub(crate) range: u32,
    /// Ids below the shift are archived as they are instead of refused (a seed or a tree
    /// compared with an archive: such a file cannot match anyway, but must not stop the run).
    pub(crate) keep_below: bool,
}

/// casync's range when only `--uid-shift` is given.
pub(crate) const DEFAULT_RANGE: u32 = 0x10000;

impl IdShift {
    /// The shift of `--uid-shift`/`--uid-range`, refused if it reaches `u32::MAX` or has an
    /// empty range.
    pub(crate) fn new(shift: u32, range: u32) -> Option<Self> {
        let end = u64::from(shift) + u64::from(range);
        (range > 0 && end <= u64::from(u32::MAX)).then_some(Self {
            shift,
            range,
            keep_below: false,
        })
    }

    /// The same shift, keeping ids below it (see [`keep_below`](Self::keep_below)).
    pub(crate) fn keeping_ids_below(self) -> Self {
        Self {
            keep_below: true,
            ..self
        }
    }

    /// The archive id of host id `id`; `None` when `id` lies below the shift (unless kept).
    pub(crate) fn encode(self, id: u32) -> Option<u32> {
        match id.checked_sub(self.shift) {
            Some(d) => Some(d % self.range),
            None => self.keep_below.then_some(id),
        }
    }

    /// The host id of archive id `id`.
    pub(crate) fn decode(self, id: u32) -> u32 {
        id % self.range + self.shift
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_shift_as_casync_shifts_them() {
        // Values from casync 2+20201210 runs (`make`/`extract --uid-shift=…`).
        let at = |shift, range| IdShift::new(shift, range).unwrap();
        let default = at(0, DEFAULT_RANGE);
        assert_eq!(default.encode(70_000), Some(4464));
        let shifted = at(1000, DEFAULT_RANGE);
        assert_eq!(shifted.encode(1005), Some(5));
        assert_eq!(shifted.encode(66_600), Some(64));
        assert_eq!(shifted.encode(999), None);
        assert_eq!(shifted.keeping_ids_below().encode(999), Some(999));
        let narrow = at(1000, 100);
        assert_eq!(narrow.encode(1050), Some(50));
        assert_eq!(narrow.decode(64), 1064);
        let extract = at(2000, DEFAULT_RANGE);
        assert_eq!(extract.decode(70_000), 6464);
        assert_eq!(extract.decode(0), 2000);
        // The top id means "unchanged" to chown: no shift may reach it.
        assert!(IdShift::new(u32::MAX - 9, 10).is_none());
        assert_eq!(at(u32::MAX - 10, 10).decode(9), u32::MAX - 1);
        assert!(IdShift::new(5, 0).is_none());
    }
}
