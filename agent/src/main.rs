//! `otasync`: casync-compatible chunked sync for build hosts and an OTA updater for devices.
//! Exit codes are listed in README.md and defined in [`error`].

mod assemble;
mod blockdev;
mod boot;
mod byte_queue;
mod chunking;
mod cli;
mod commands;
mod compression;
mod digest_batch;
mod error;
mod fsutil;
mod fuse;
mod logger;
mod ota;
mod output;
mod progress;
mod remote;
mod report;
mod seed;
mod seed_cache;
mod sha512_stream;
mod sink;
mod store;
mod tree;
mod tune;

use clap::Parser;
use cli::{Cli, Verb};
use commands::archive::View;
use error::{EXIT_OK, EXIT_USAGE, Error};
use log::LevelFilter;

fn main() {
    let cli = Cli::parse();
    let level = match cli.options.log_level.as_deref().map(logger::parse_level) {
        Some(Some(level)) => level,
        Some(None) => {
            eprintln!(
                "otasync: unknown log level {:?}",
                cli.options.log_level.unwrap_or_default()
            );
            std::process::exit(EXIT_USAGE);
        }
        None if cli.options.verbose || std::env::var_os("CASYNC_VERBOSE").is_some() => {
            LevelFilter::Info
        }
        None => LevelFilter::Warn,
    };
    logger::init(level);
    let code = match run(&cli) {
        Ok(()) => EXIT_OK,
        // A closed pipe on our output (`| head`) is not a failure.
        Err(e) if e.is_broken_pipe() => EXIT_OK,
        Err(e) => {
            eprintln!("otasync: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

/// A view of a directory, archive or archive index (default ".").
fn view(
    options: &cli::Options,
    input: &Option<String>,
    subpath: &Option<String>,
    view: View,
) -> Result<(), Error> {
    commands::archive::view(
        options,
        input.as_deref().unwrap_or("."),
        subpath.as_deref(),
        view,
    )
}

fn run(cli: &Cli) -> Result<(), Error> {
    let options = &cli.options;
    match &cli.verb {
        Verb::Make { index, input } => commands::remote::make(options, index, input.as_deref()),
        Verb::Extract {
            index,
            output,
            subpath,
        } => commands::extract::run(options, index, output.as_deref(), subpath.as_deref()),
        Verb::Digest { input, subpath } => {
            commands::digest::run(options, input.as_deref(), subpath.as_deref())
        }
        Verb::List { input, subpath } => {
            let recursive = options.recursive.unwrap_or(true);
            view(options, input, subpath, View::List { recursive })
        }
        Verb::Mtree { input, subpath } => view(options, input, subpath, View::Mtree),
        Verb::Stat { input, path } => view(options, input, path, View::Stat),
        Verb::Info { index } => commands::info::run(options, index),
        Verb::Mount { input, mountpoint } => commands::mount::run(options, input, mountpoint),
        Verb::Mkdev { index, mountpoint } => {
            commands::mkdev::run(options, index, mountpoint.as_deref())
        }
        Verb::Device(verb) => commands::device::run(options, verb),
        Verb::Gc {
            dry_run,
            grace,
            indexes,
        } => commands::gc::run(
            options,
            indexes,
            *dry_run,
            std::time::Duration::from_secs(*grace),
        ),
        Verb::Verify(args) => commands::verify::run(options, args),
        Verb::Diff { archive, directory } => commands::diff::run(options, archive, directory),
        Verb::Pull { args } => commands::remote::serve(commands::remote::ServerVerb::Pull, args),
        Verb::Push { args } => commands::remote::serve(commands::remote::ServerVerb::Push, args),
        Verb::Tune(args) => commands::tune::run(options, args),
        Verb::Report(args) => commands::report::run(options, args),
        Verb::Keygen {
            secret_key,
            public_key,
            comment,
        } => commands::keygen::run(secret_key, public_key, comment.as_deref()),
        Verb::Sign {
            file,
            keys,
            output,
            append,
        } => commands::sign::run(file, keys, output.as_deref(), *append),
        Verb::Root { action } => commands::root::run(action),
        Verb::Manifest { action } => commands::manifest::run(action),
        Verb::Publish(args) => commands::publish::run(options, args),
        Verb::Serve {
            listen,
            tls_cert,
            tls_key,
            client_ca,
        } => {
            let Some(root) = options.store.first() else {
                return Err(Error::Usage("serve needs --store=DIR".into()));
            };
            let tls = tls_cert.clone().zip(tls_key.clone()).map(|(cert, key)| {
                commands::serve::ServeTls {
                    cert,
                    key,
                    client_ca: client_ca.clone(),
                }
            });
            commands::serve::run(std::path::Path::new(root), listen, tls)
        }
    }
}
