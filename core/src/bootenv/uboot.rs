//! U-Boot's binary environment (U-Boot `env/common.c`, `lib/hashtable.c`; libubootenv
//! `src/uboot_env.c`; `tools/mkenvimage.c`; ota-agent.md §3.2).
//!
//! ```text
//! single copy:     [crc32: u32 LE][data: size - 4]
//! redundant copy:  [crc32: u32 LE][flags: u8][data: size - 5]
//! data:            "name=value\0" "name=value\0" ... "\0" then padding to the end
//! ```
//!
//! The CRC ([`crate::bootenv::crc32`]) covers the whole data area, padding included, so any
//! padding is valid; this writer sorts the variables by name and pads with zeros, as U-Boot's
//! `saveenv` does. A redundant environment has two copies of the same size. The current one
//! is chosen by [`choose`]; a write goes to the other one with the flags [`FlagsMode::next`]
//! gives, so that a torn write leaves the current copy, and with it the previous environment,
//! in force.
//!
//! Big-endian CRCs (`mkenvimage -b`) are not supported.

use super::{Env, EnvError, crc32, valid_name};

/// Offset of the flags byte in a redundant copy.
pub const FLAGS_OFFSET: usize = 4;
/// Header size of a single (non-redundant) copy: the CRC.
pub const SINGLE_HEADER: usize = 4;
/// Header size of a redundant copy: the CRC and the flags byte.
pub const REDUNDANT_HEADER: usize = 5;
/// Flags of the newest copy in [`FlagsMode::Boolean`] (U-Boot `ENV_REDUND_ACTIVE`).
pub const FLAG_ACTIVE: u8 = 1;
/// Flags a [`FlagsMode::Boolean`] writer gives the older copy after writing the new one
/// (U-Boot `ENV_REDUND_OBSOLETE`); NOR flash can clear bits without an erase.
pub const FLAG_OBSOLETE: u8 = 0;
/// Flags of an erased, never marked NOR copy.
const FLAG_ERASED: u8 = 0xff;

/// How a copy is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One copy without flags (`CONFIG_ENV_IS_*` without `CONFIG_ENV_REDUNDANT`).
    Single,
    /// One of two copies, each with a flags byte.
    Redundant,
}

impl Layout {
    /// Bytes before the data area.
    pub const fn header_len(self) -> usize {
        match self {
            Self::Single => SINGLE_HEADER,
            Self::Redundant => REDUNDANT_HEADER,
        }
    }

    /// The smallest copy: the header and the NUL that ends an empty environment.
    pub const fn min_size(self) -> usize {
        self.header_len() + 1
    }
}

/// How the flags of a redundant environment count (libubootenv `flagstype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagsMode {
    /// Files, block devices, NAND and UBI: each write gives the new copy the current copy's
    /// flags plus one, wrapping from 255 to 0.
    Incremental,
    /// NOR flash: the new copy gets [`FLAG_ACTIVE`], then the old copy's flags byte is set to
    /// [`FLAG_OBSOLETE`].
    Boolean,
}

impl FlagsMode {
    /// The flags for a copy written after one with `current` flags.
    pub const fn next(self, current: u8) -> u8 {
        match self {
            Self::Incremental => current.wrapping_add(1),
            Self::Boolean => FLAG_ACTIVE,
        }
    }
}

/// Which copy of a redundant environment is current, given the flags of each copy whose CRC
/// is valid (`None` for an invalid one); `None` when neither is valid.
///
/// Incremental (U-Boot `env_import_redund`, libubootenv): the higher flags win, except that
/// 0 beats 255 (wrap-around); equal flags choose copy 0. Boolean (U-Boot `env/flash.c`,
/// libubootenv): equal flags choose copy 0, an erased copy (255) wins, else the higher flags.
/// (libubootenv alone would choose copy 1 when both are 255.)
pub fn choose(flags: [Option<u8>; 2], mode: FlagsMode) -> Option<usize> {
    match flags {
        [None, None] => None,
        [Some(_), None] => Some(0),
        [None, Some(_)] => Some(1),
        [Some(a), Some(b)] => Some(match mode {
            FlagsMode::Incremental => match (a, b) {
                (255, 0) => 1,
                (0, 255) => 0,
                _ if b > a => 1,
                _ => 0,
            },
            FlagsMode::Boolean => match (a, b) {
                _ if a == b => 0,
                (_, FLAG_ERASED) => 1,
                (FLAG_ERASED, _) => 0,
                _ if b > a => 1,
                _ => 0,
            },
        }),
    }
}

/// Checks the CRC of one copy; its flags byte (0 for [`Layout::Single`]) when valid.
pub fn check_copy(copy: &[u8], layout: Layout) -> Result<u8, EnvError> {
    let min = layout.min_size();
    let (Some(crc), true) = (copy.first_chunk::<4>(), copy.len() >= min) else {
        return Err(EnvError::CopyTooSmall {
            size: copy.len(),
            min,
        });
    };
    let stored = u32::from_le_bytes(*crc);
    let computed = crc32(&copy[layout.header_len()..]);
    if stored != computed {
        return Err(EnvError::CrcMismatch { stored, computed });
    }
    Ok(match layout {
        Layout::Single => 0,
        Layout::Redundant => copy[FLAGS_OFFSET],
    })
}

/// Reads a single (non-redundant) copy: checks its CRC and parses its variables.
pub fn load_single(copy: &[u8]) -> Result<Env, EnvError> {
    check_copy(copy, Layout::Single)?;
    parse_at(&copy[SINGLE_HEADER..], SINGLE_HEADER)
}

/// A redundant environment as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The variables of the current copy.
    pub env: Env,
    /// Which copy is current (0 or 1); the next write goes to the other.
    pub current: usize,
    /// The current copy's flags.
    pub flags: u8,
    /// Whether each copy's CRC is valid.
    pub valid: [bool; 2],
}

/// Reads a redundant environment from its two copies (same size): chooses the current copy
/// as U-Boot does ([`choose`]) and parses it. An unparsable current copy is an error, not a
/// reason to fall back to the other: U-Boot would not either.
pub fn load_redundant(copies: [&[u8]; 2], mode: FlagsMode) -> Result<Loaded, EnvError> {
    let [first, second] = copies;
    if first.len() != second.len() {
        return Err(EnvError::CopySizeMismatch {
            first: first.len(),
            second: second.len(),
        });
    }
    let min = Layout::Redundant.min_size();
    if first.len() < min {
        return Err(EnvError::CopyTooSmall {
            size: first.len(),
            min,
        });
    }
    let flags = copies.map(|c| check_copy(c, Layout::Redundant).ok());
    let current = choose(flags, mode).ok_or(EnvError::NoValidCopy)?;
    let env = parse_at(&copies[current][REDUNDANT_HEADER..], REDUNDANT_HEADER)?;
    Ok(Loaded {
        env,
        current,
        flags: copies[current][FLAGS_OFFSET],
        valid: flags.map(|f| f.is_some()),
    })
}

/// Parses a data area (the bytes after the header): `name=value` strings, each ended by NUL,
/// up to an empty string or the end of the area. A later definition of a name replaces an
/// earlier one, as in U-Boot and libubootenv.
pub fn parse_data(data: &[u8]) -> Result<Env, EnvError> {
    parse_at(data, 0)
}

/// [`parse_data`], with error offsets shifted by `base`.
fn parse_at(data: &[u8], base: usize) -> Result<Env, EnvError> {
    let mut env = Env::new();
    let mut pos = 0;
    while let Some(&first) = data.get(pos) {
        if first == 0 {
            break;
        }
        let offset = base + pos;
        let rest = &data[pos..];
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(EnvError::Unterminated { offset })?;
        let entry = &rest[..len];
        let eq = entry
            .iter()
            .position(|&b| b == b'=')
            .ok_or(EnvError::MissingSeparator { offset })?;
        let (name, value) = (&entry[..eq], &entry[eq + 1..]);
        if !valid_name(name) {
            return Err(EnvError::BadName { offset });
        }
        env.insert_checked(name, value);
        pos += len + 1;
    }
    Ok(env)
}

/// Bytes the variables take in a data area: each `name=value\0`, then the terminating NUL.
pub fn encoded_len(env: &Env) -> usize {
    env.iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum::<usize>()
        + 1
}

/// Writes the variables, sorted by name, into a data area and fills the rest with zeros.
pub fn encode_data(env: &Env, data: &mut [u8]) -> Result<(), EnvError> {
    let needed = encoded_len(env);
    if needed > data.len() {
        return Err(EnvError::TooLarge {
            needed,
            capacity: data.len(),
        });
    }
    let mut pos = 0;
    for (name, value) in env.iter() {
        for part in [name, b"=", value, b"\0"] {
            data[pos..pos + part.len()].copy_from_slice(part);
            pos += part.len();
        }
    }
    data[pos..].fill(0);
    Ok(())
}

/// Serialises a single copy into `out` (the whole environment size).
pub fn store_single(env: &Env, out: &mut [u8]) -> Result<(), EnvError> {
    store(env, out, Layout::Single, 0)
}

/// Serialises one copy of a redundant environment with `flags` into `out` (one copy's size).
pub fn store_redundant(env: &Env, out: &mut [u8], flags: u8) -> Result<(), EnvError> {
    store(env, out, Layout::Redundant, flags)
}

fn store(env: &Env, out: &mut [u8], layout: Layout, flags: u8) -> Result<(), EnvError> {
    let min = layout.min_size();
    if out.len() < min {
        return Err(EnvError::CopyTooSmall {
            size: out.len(),
            min,
        });
    }
    let (header, data) = out.split_at_mut(layout.header_len());
    encode_data(env, data).map_err(|e| match e {
        EnvError::TooLarge { needed, capacity } => EnvError::TooLarge {
            needed: needed + header.len(),
            capacity: capacity + header.len(),
        },
        other => other,
    })?;
    header[..4].copy_from_slice(&crc32(data).to_le_bytes());
    if layout == Layout::Redundant {
        header[FLAGS_OFFSET] = flags;
    }
    Ok(())
}
