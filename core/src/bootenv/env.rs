//! The variables of a boot environment.

use super::EnvError;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Bootloader variables by name, kept sorted by name (byte order, as U-Boot's `hexport_r`
/// writes them). Names and values are bytes: U-Boot does not require UTF-8.
///
/// Every name satisfies [`valid_name`] and every value [`valid_value`]; the setters refuse
/// anything else, so that any `Env` can be written by both codecs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Whether `name` can name a variable: not empty, no `=`, NUL or newline, and not beginning
/// with `#`, a space or a tab.
pub fn valid_name(name: &[u8]) -> bool {
    match name.first() {
        None | Some(b'#' | b' ' | b'\t') => false,
        Some(_) => !name.iter().any(|&b| matches!(b, b'=' | 0 | b'\n')),
    }
}

/// Whether `value` can be a variable's value: no NUL.
pub fn valid_value(value: &[u8]) -> bool {
    !value.contains(&0)
}

impl Env {
    /// An environment without variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: impl AsRef<[u8]>) -> Option<&[u8]> {
        self.vars.get(name.as_ref()).map(Vec::as_slice)
    }

    /// Sets `name` to `value` (an empty value is kept as a variable with an empty value).
    pub fn set(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), EnvError> {
        let (name, value) = (name.as_ref(), value.as_ref());
        if !valid_name(name) {
            return Err(EnvError::InvalidName);
        }
        if !valid_value(value) {
            return Err(EnvError::InvalidValue);
        }
        self.vars.insert(name.to_vec(), value.to_vec());
        Ok(())
    }

    /// Removes `name`; its value if it was set.
    pub fn remove(&mut self, name: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        self.vars.remove(name.as_ref())
    }

    /// The variables as `(name, value)`, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.vars.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// True when no variable is set.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Whether `name` is set.
    pub fn contains(&self, name: impl AsRef<[u8]>) -> bool {
        self.vars.contains_key(name.as_ref())
    }

    /// Inserts a pair the caller has validated; the previous value of `name`, if any.
    pub(super) fn insert_checked(&mut self, name: &[u8], value: &[u8]) -> Option<Vec<u8>> {
        debug_assert!(valid_name(name) && valid_value(value));
        self.vars.insert(name.to_vec(), value.to_vec())
    }
}
