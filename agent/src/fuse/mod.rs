//! FUSE views of archives and blobs, without libfuse (the `fuser` crate speaks to
//! `/dev/fuse`): `mount` shows a `.catar` or `.caidx` as a read-only directory tree, `mkdev`
//! shows the blob of a `.caibx` as one read-only file (which `mount -o loop` can mount).
//!
//! Archives are read at random through their goodbye tables ([`archive`]); index streams are
//! read chunk by chunk, each fetched on first use from a seed or the stores and kept in a
//! bounded in-memory cache ([`chunks`]). Both run in the foreground and unmount on SIGINT,
//! SIGTERM and SIGHUP ([`session`]).

pub(crate) mod archive;
pub(crate) mod archive_fs;
pub(crate) mod attr;
pub(crate) mod background;
pub(crate) mod blob_fs;
pub(crate) mod chunks;
pub(crate) mod heap;
pub(crate) mod memcache;
pub(crate) mod prelist;
pub(crate) mod push;
pub(crate) mod session;
pub(crate) mod source;
