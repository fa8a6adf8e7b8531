//! Directory trees as casync handles them: walking a tree into a catar stream ([`walk`]),
//! restoring a catar stream into a directory ([`extract`]), and casync's `list`/`mtree`/`stat`/
//! `digest` views of a stream ([`listing`]).
//!
//! The codecs are in `otasync_core::catar`; this module is the std side: file system access,
//! `.caexclude` rules, POSIX ACL xattrs and chattr flags.

pub(crate) mod acl;
pub(crate) mod compare;
mod events;
mod exclude;
mod extract;
mod flags;
mod ids;
mod listing;
mod localtime;
mod meta_apply;
mod scan;
mod sys;
mod walk;

#[cfg(test)]
mod tests;

pub(crate) use events::Flow;
pub(crate) use extract::{ExtractOptions, extract_tree};
pub(crate) use flags::{Excludes, default_flags};
pub(crate) use ids::{DEFAULT_RANGE, IdShift};
pub(crate) use listing::{digest_stream, list, mtree, stat};
pub(crate) use sys::feature_to_chattr;
pub(crate) use walk::encode_tree;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What a tree operation can fail with; every variant names the path concerned.
#[derive(Debug)]
pub(crate) enum TreeError {
    /// A system call on `path` failed.
    Io {
        /// The file concerned (or the tree's root).
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The archive is malformed (decoder error), or refused as hostile.
    Archive {
        /// The entry path inside the archive, if known.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The tree cannot be archived (encoder refused a value: uid 65535, too deep, …).
    Encode {
        /// The file concerned.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The requested subpath is not in the archive (or has the wrong type).
    NotFound(PathBuf),
}

impl TreeError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn archive(path: &Path, reason: impl fmt::Display) -> Self {
        Self::Archive {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Archive { path, reason } if path.as_os_str().is_empty() => f.write_str(reason),
            Self::Archive { path, reason } => write!(f, "{}: {reason}", path.display()),
            Self::Encode { path, reason } => write!(f, "{}: {reason}", path.display()),
            Self::NotFound(path) => write!(f, "{}: no such entry in the archive", path.display()),
        }
    }
}

impl std::error::Error for TreeError {}

impl From<TreeError> for crate::error::Error {
    fn from(e: TreeError) -> Self {
        match e {
            TreeError::Io { path, source } => Self::Io {
                context: path.display().to_string(),
                source,
            },
            TreeError::NotFound(path) => {
                Self::Usage(format!("{}: no such entry in the archive", path.display()))
            }
            other => Self::InvalidInput {
                path: String::new(),
                reason: other.to_string(),
            },
        }
    }
}

/// Shorthand.
pub(crate) type Result<T, E = TreeError> = std::result::Result<T, E>;
