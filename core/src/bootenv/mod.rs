//! Bootloader environments, read and written natively (ota-agent.md §3): U-Boot's binary
//! environment with its CRC-protected single or redundant copies ([`uboot`]), and GRUB's
//! 1024-byte `grubenv` ([`grub`]). Both hold an [`Env`]: variables by name.
//!
//! The codecs work on caller-provided slices and never touch a device; the agent does the I/O
//! (locking, `fsync`, read-back). Where U-Boot, libubootenv and GRUB agree on how to read an
//! input, the codecs read it the same way; where they disagree, the input is an error.

mod crc32;
mod env;
mod error;
pub mod grub;
pub mod uboot;

#[cfg(test)]
mod tests;

pub use crc32::{crc32, update as crc32_update};
pub use env::{Env, valid_name, valid_value};
pub use error::EnvError;
