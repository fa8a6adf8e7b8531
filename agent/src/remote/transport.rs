//! Starting the remote side over ssh, as casync does (`ca_remote_start`):
//! `$CASYNC_SSH_PATH HOST $CASYNC_REMOTE_PATH [--rate-limit-bps=N] pull|push - ARCHIVE INDEX
//! WSTORE [RSTORE…]`, with `-` for unused slots and the `host:` prefix stripped from the paths.
//! The child's stdin and stdout carry the frames; its stderr is ours, so the remote side's
//! messages reach the user.

use super::frame::{self, Frame};
use crate::error::{Error, IoContext, Result};
use std::io::{self, BufReader, BufWriter, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a finished connection's ssh may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// Which server verb to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    /// The remote side serves an index, archive and chunks.
    Pull,
    /// The remote side receives them.
    Push,
}

/// The remote files a connection is about; `None` is sent as `-`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Paths {
    /// The archive (`.catar`) path.
    pub(crate) archive: Option<String>,
    /// The index path.
    pub(crate) index: Option<String>,
    /// The store written to (push) or read first (pull).
    pub(crate) wstore: Option<String>,
}

/// A running ssh child speaking the protocol on its stdin and stdout.
pub(crate) struct Transport {
    /// What it is connected to, for messages (`host:path`).
    pub(crate) name: String,
    child: Child,
    /// Frames from the remote side.
    pub(crate) input: BufReader<ChildStdout>,
    /// Frames to the remote side.
    pub(crate) output: BufWriter<ChildStdin>,
}

/// Quotes an argument for the remote shell (ssh joins its arguments into one command line),
/// unless it only holds characters no shell treats specially. casync does not quote at all, so
/// plain paths give the very same command line.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    match plain {
        true => arg.to_owned(),
        false => format!("'{}'", arg.replace('\'', "'\\''")),
    }
}

/// The ssh command line for `verb` on `host`.
pub(crate) fn command_line(
    host: &str,
    verb: Verb,
    paths: &Paths,
    rate_limit_bps: Option<u64>,
) -> Vec<String> {
    let ssh = std::env::var("CASYNC_SSH_PATH").unwrap_or_else(|_| "ssh".into());
    // Not quoted: `CASYNC_REMOTE_PATH="sudo casync"` works with casync and must here too.
    let remote = std::env::var("CASYNC_REMOTE_PATH").unwrap_or_else(|_| "casync".into());
    let mut args = vec![ssh, host.to_owned(), remote];
    if let Some(rate) = rate_limit_bps {
        args.push(format!("--rate-limit-bps={rate}"));
    }
    args.push(
        match verb {
            Verb::Pull => "pull",
            Verb::Push => "push",
        }
        .into(),
    );
    args.push("-".into());
    for slot in [&paths.archive, &paths.index, &paths.wstore] {
        args.push(slot.as_deref().map_or_else(|| "-".into(), shell_quote));
    }
    args
}

impl Transport {
    /// Starts the remote side and exchanges HELLOs: ours is `local_flags`; the peer's must be
    /// compatible with it. Returns the peer's flags too.
    pub(crate) fn connect(
        name: String,
        host: &str,
        verb: Verb,
        paths: &Paths,
        rate_limit_bps: Option<u64>,
        local_flags: u64,
    ) -> Result<(Self, u64)> {
        let args = command_line(host, verb, paths, rate_limit_bps);
        log::debug!("remote: {}", args.join(" "));
        let mut child = Command::new(&args[0])
            .args(&args[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context(|| format!("starting {}", args[0]))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::Io {
                context: format!("starting {}", args[0]),
                source: io::Error::other("no pipes to the child"),
            });
        };
        let mut transport = Self {
            name,
            child,
            input: BufReader::with_capacity(1 << 20, stdout),
            output: BufWriter::with_capacity(1 << 20, stdin),
        };
        let remote = transport.handshake(local_flags)?;
        Ok((transport, remote))
    }

    fn handshake(&mut self, local_flags: u64) -> Result<u64> {
        let sent = Frame::Hello(local_flags)
            .write_to(&mut self.output)
            .and_then(|()| self.output.flush());
        let reply = frame::read_frame(&mut self.input);
        let remote = match reply {
            Ok(Some(Frame::Hello(flags))) => flags,
            Ok(Some(Frame::Abort { errno, reason })) => {
                return Err(
                    self.failed(format!("the remote side aborted: {reason} (errno {errno})"))
                );
            }
            Ok(Some(other)) => {
                return Err(self.failed(format!("expected HELLO, got {}", other.name())));
            }
            Ok(None) => {
                return Err(self.failed(
                    "the connection closed before the remote side said HELLO (is casync or \
                     otasync installed there? see the messages above)"
                        .into(),
                ));
            }
            Err(e) => return Err(self.failed(format!("reading HELLO: {e}"))),
        };
        if let Err(e) = sent {
            return Err(self.failed(format!("sending HELLO: {e}")));
        }
        frame::check_hello(local_flags, remote).map_err(|reason| self.failed(reason))?;
        Ok(remote)
    }

    /// An error naming this connection.
    pub(crate) fn failed(&self, reason: String) -> Error {
        connection_error(&self.name, reason)
    }

    /// Splits into the child (to wait for), the input and the output.
    pub(crate) fn split(self) -> (Child, BufReader<ChildStdout>, BufWriter<ChildStdin>) {
        (self.child, self.input, self.output)
    }
}

/// An error on the connection to `name`.
pub(crate) fn connection_error(name: &str, reason: String) -> Error {
    Error::Io {
        context: format!("remote {name}"),
        source: io::Error::other(reason),
    }
}

/// Waits for a child whose stdin has been closed, killing it if it lingers; returns whether it
/// exited successfully.
pub(crate) fn reap(mut child: Child) -> bool {
    let until = Instant::now() + EXIT_GRACE;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_leaves_plain_paths_alone() {
        assert_eq!(shell_quote("/srv/r/x.caidx"), "/srv/r/x.caidx");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$(rm)"), "'$(rm)'");
    }
}
