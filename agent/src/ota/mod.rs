//! The OTA agent: signed A/B updates of slots, safe against power loss, with rollback
//! (ota-agent.md §2.10, §6). `update` installs, `lifecycle` follows the boots after it,
//! `status` reports; `state` is what survives reboots.

pub(crate) mod booted;
pub(crate) mod config;
pub(crate) mod daemon;
pub(crate) mod fetch;
pub(crate) mod lifecycle;
#[cfg(test)]
mod sim;
pub(crate) mod slot_io;
pub(crate) mod state;
pub(crate) mod status;
pub(crate) mod update;
pub(crate) mod writer;
