//! What reading or writing a boot environment can fail with.

use core::fmt;

/// A boot environment that cannot be read, or variables that cannot be written.
///
/// Offsets count from the start of the slice given to the function that failed (a whole copy,
/// a whole grubenv block, or a data area for [`crate::bootenv::uboot::parse_data`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvError {
    /// A variable name that is empty, contains `=`, NUL or a newline, or begins with `#`, a
    /// space or a tab (U-Boot skips such entries, GRUB reads them as comments).
    InvalidName,
    /// A value containing a NUL byte.
    InvalidValue,
    /// An environment copy too small to hold its header and one terminating NUL.
    CopyTooSmall {
        /// Its size.
        size: usize,
        /// The smallest size possible for its layout.
        min: usize,
    },
    /// The two copies of a redundant environment differ in size.
    CopySizeMismatch {
        /// Size of copy 0.
        first: usize,
        /// Size of copy 1.
        second: usize,
    },
    /// The CRC stored in a copy's header does not match its data area.
    CrcMismatch {
        /// The CRC in the header.
        stored: u32,
        /// The CRC of the data area.
        computed: u32,
    },
    /// Neither copy of a redundant environment has a valid CRC; U-Boot would boot with its
    /// built-in default environment.
    NoValidCopy,
    /// A U-Boot variable whose `name=value` string runs to the end of the data area without a
    /// terminating NUL.
    Unterminated {
        /// Where the entry starts.
        offset: usize,
    },
    /// An entry or line without `=` (U-Boot would delete a variable of that name, libubootenv
    /// ignores it, GRUB would read it together with the next line).
    MissingSeparator {
        /// Where the entry starts.
        offset: usize,
    },
    /// An entry whose name breaks the rules of [`EnvError::InvalidName`].
    BadName {
        /// Where the entry starts.
        offset: usize,
    },
    /// The variables do not fit.
    TooLarge {
        /// Bytes the encoding needs.
        needed: usize,
        /// Bytes available.
        capacity: usize,
    },
    /// A grubenv block that is not exactly [`crate::bootenv::grub::BLOCK_SIZE`] bytes.
    GrubSize {
        /// Its size.
        size: usize,
    },
    /// A grubenv block that does not begin with `# GRUB Environment Block\n`.
    GrubSignature,
    /// A grubenv line that does not end with a newline before the end of the block.
    GrubUnterminatedLine {
        /// Where the line starts.
        offset: usize,
    },
    /// A NUL byte in a grubenv variable line.
    GrubNul {
        /// Where the byte is.
        offset: usize,
    },
    /// A variable defined twice in a grubenv block (GRUB reads the last definition,
    /// `grub-editenv set` changes the first).
    Duplicate {
        /// Where the second definition starts.
        offset: usize,
    },
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::InvalidName => f.write_str(
                "invalid variable name (empty, contains '=', NUL or newline, or begins with '#' \
                 or a blank)",
            ),
            Self::InvalidValue => f.write_str("invalid variable value (contains NUL)"),
            Self::CopyTooSmall { size, min } => {
                write!(
                    f,
                    "environment size {size} is below the minimum of {min} bytes"
                )
            }
            Self::CopySizeMismatch { first, second } => write!(
                f,
                "the environment copies differ in size ({first} and {second} bytes)"
            ),
            Self::CrcMismatch { stored, computed } => write!(
                f,
                "CRC mismatch: header says {stored:#010x}, data has {computed:#010x}"
            ),
            Self::NoValidCopy => f.write_str(
                "neither environment copy has a valid CRC (U-Boot boots with its built-in \
                 default environment)",
            ),
            Self::Unterminated { offset } => {
                write!(f, "at byte {offset}: variable not terminated by NUL")
            }
            Self::MissingSeparator { offset } => write!(f, "at byte {offset}: entry without '='"),
            Self::BadName { offset } => write!(f, "at byte {offset}: invalid variable name"),
            Self::TooLarge { needed, capacity } => write!(
                f,
                "variables need {needed} bytes but the environment holds {capacity}"
            ),
            Self::GrubSize { size } => write!(f, "grubenv is {size} bytes, not 1024"),
            Self::GrubSignature => f.write_str("not a GRUB environment block (bad signature)"),
            Self::GrubUnterminatedLine { offset } => {
                write!(f, "at byte {offset}: line runs to the end of the block")
            }
            Self::GrubNul { offset } => write!(f, "at byte {offset}: NUL byte in a variable"),
            Self::Duplicate { offset } => write!(f, "at byte {offset}: variable defined twice"),
        }
    }
}

impl core::error::Error for EnvError {}
