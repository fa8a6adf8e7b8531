//! End-to-end tests: they run the built `otasync` binary, with Debian's casync as the oracle
//! wherever our output can be byte-identical to its own.

mod agent;
mod blob_failures;
mod blob_interop;
mod diff;
mod fault_server;
mod fuse;
mod host_tools;
mod http;
mod loop_device;
mod nginx;
mod no_std_guard;
mod publish;
mod remote;
mod seeds;
mod signing;
mod support;
mod tls;
mod trees;
mod tune;
mod yocto_layer;
