//! The feature flags `casync make` and the tree views compute from the command line (spec §3.3).

use otasync_core::DigestAlgorithm;
use otasync_core::flags::{
    self, EXCLUDE_FILE, EXCLUDE_NODUMP, EXCLUDE_SUBMOUNTS, FEATURE_FLAGS_MAX, from_name,
};

/// Every WITH bit (casync's `SUPPORTED_WITH_MASK` in the Debian build, SELinux included).
const ALL_WITH: u64 = 0x1_ffff_ffff;

/// The exclusion switches of the command line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Excludes {
    /// `--exclude-nodump` (default yes).
    pub(crate) nodump: bool,
    /// `--exclude-submounts` (default no).
    pub(crate) submounts: bool,
    /// `--exclude-file` (default yes; casync 2020 ignores `no`, we honour it).
    pub(crate) file: bool,
}

impl Default for Excludes {
    fn default() -> Self {
        Self {
            nodump: true,
            submounts: false,
            file: true,
        }
    }
}

/// casync's archive flags for `make` of a tree (and list/mtree/stat/digest of a directory):
/// `(OR of with, or all WITH bits when none) & !(OR of without)` (`--without` always wins),
/// plus the exclusion bits and the digest bit, normalized. `Err(name)` for an unknown name.
pub(crate) fn default_flags<S: AsRef<str>>(
    with: &[S],
    without: &[S],
    digest: DigestAlgorithm,
    excludes: Excludes,
) -> Result<u64, String> {
    let names = |list: &[S]| -> Result<u64, String> {
        let mut bits = 0;
        for name in list {
            let name = name.as_ref();
            bits |= from_name(name).ok_or_else(|| name.to_string())?;
        }
        Ok(bits)
    };
    let mut f = if with.is_empty() {
        ALL_WITH
    } else {
        names(with)?
    };
    f &= !names(without)?;
    if excludes.nodump {
        f |= EXCLUDE_NODUMP;
    }
    if excludes.submounts {
        f |= EXCLUDE_SUBMOUNTS;
    }
    if excludes.file {
        f |= EXCLUDE_FILE;
    }
    f |= digest.flag();
    Ok(flags::normalize(f) & FEATURE_FLAGS_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::tree::tests::flags_for as f;

    #[test]
    fn matches_casync_table() {
        assert_eq!(f(&[], &[]), 0xb0000001ffeffe26);
        assert_eq!(f(&["unix"], &[]), 0xb000000000001f09);
        assert_eq!(f(&[], &["all"]), 0xb000000000000000);
        assert_eq!(f(&["unix"], &["all"]), 0xb000000000000000);
        assert_eq!(f(&["acl"], &[]), 0xb000000020000006);
        let no_nodump = Excludes {
            nodump: false,
            ..Excludes::default()
        };
        assert_eq!(
            default_flags::<&str>(&[], &[], DigestAlgorithm::Sha512_256, no_nodump).unwrap(),
            0x30000001fffffe26
        );
        assert_eq!(
            default_flags(&["unix"], &[], DigestAlgorithm::Sha256, Excludes::default()).unwrap(),
            0x9000000000001f09
        );
        assert_eq!(
            default_flags(
                &["bogus"],
                &[],
                DigestAlgorithm::Sha256,
                Excludes::default()
            ),
            Err("bogus".to_string())
        );
    }
}
