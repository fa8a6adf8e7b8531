//! The I/O-free heart of otasync: casync's buzhash chunker, chunk digests and the
//! `.caibx`/`.caidx` index codec, byte-compatible with casync.
//!
//! `#![no_std]` with `alloc`, so that the same codecs run in the agent, in host tools and in
//! constrained environments. std leaks are compile errors even for developers who never build
//! without std (the rustls pattern): std-only adaptors live in [`stream`] behind the `std` feature.

#![no_std]
#![forbid(unsafe_code)]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod bootenv;
mod buzhash_table;
pub mod catar;
pub mod chunker;
pub mod digest;
pub mod flags;
#[doc(hidden)]
pub mod fuzzing;
mod hex;
pub mod index;
#[cfg(feature = "std")]
pub mod stream;
#[cfg(test)]
mod testdata;

pub use chunker::{ChunkSizes, Chunker};
pub use digest::{ChunkId, DigestAlgorithm};
pub use index::{ChunkEntry, Index, IndexError, IndexHeader};
