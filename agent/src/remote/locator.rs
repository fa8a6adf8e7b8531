//! ssh locators, `[user@]host:path`, classified as casync does (`cautil.c`:
//! `ca_is_definitely_path`, `ca_is_url`, `ca_is_ssh_path`).

/// A locator on another machine, reached with `$CASYNC_SSH_PATH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SshLocator<'a> {
    /// `host` or `user@host`: the argument given to ssh.
    pub(crate) host: &'a str,
    /// The path on that host (the remote `casync` resolves a relative one from its working
    /// directory, usually the user's home).
    pub(crate) path: &'a str,
}

/// casync's `HOSTNAME_CHARSET`: letters, digits, `-_.`.
fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// `.`, `..` and anything starting with `/` or `./`.
fn is_definitely_path(s: &str) -> bool {
    s.starts_with('/') || s.starts_with("./") || s == "." || s == ".."
}

/// A URL: a lowercase scheme followed by `://`. (casync also wants a host and a `/` there, and
/// so takes `https://host:8080/x` for an ssh locator of host `https`; we do not.)
fn is_url(s: &str) -> bool {
    let bytes = s.as_bytes();
    if !bytes.first().is_some_and(u8::is_ascii_lowercase) {
        return false;
    }
    let scheme = bytes
        .iter()
        .take_while(|&&b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'.' | b'-')
        })
        .count();
    s[scheme..].starts_with("://")
}

/// Parses an ssh locator; `None` for local paths and URLs.
pub(crate) fn parse(s: &str) -> Option<SshLocator<'_>> {
    if is_definitely_path(s) || is_url(s) {
        return None;
    }
    let bytes = s.as_bytes();
    let mut n = bytes.iter().take_while(|&&b| is_host_char(b)).count();
    if n == 0 {
        return None;
    }
    if bytes.get(n) == Some(&b'@') {
        let k = bytes[n + 1..]
            .iter()
            .take_while(|&&b| is_host_char(b))
            .count();
        if k == 0 {
            return None;
        }
        n += 1 + k;
    }
    if bytes.get(n) != Some(&b':') {
        return None;
    }
    Some(SshLocator {
        host: &s[..n],
        path: &s[n + 1..],
    })
}

/// True for an ssh locator.
pub(crate) fn is_ssh(s: &str) -> bool {
    parse(s).is_some()
}

/// The store casync uses for an index at `locator` when no `--store` is given: `default.castr`
/// in the index's directory on the same host (`host:dir/x.caidx` → `host:dir/default.castr`; a
/// bare `host:x.caidx` → `host:default.castr`, where casync would pick a local
/// `./default.castr`).
pub(crate) fn default_store(locator: &SshLocator<'_>) -> String {
    match locator.path.rsplit_once('/') {
        Some(("", _)) => format!("{}:/default.castr", locator.host),
        Some((dir, _)) => format!("{}:{dir}/default.castr", locator.host),
        None => format!("{}:default.castr", locator.host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classified_like_casync() {
        assert_eq!(
            parse("host:/srv/x.caidx"),
            Some(SshLocator {
                host: "host",
                path: "/srv/x.caidx"
            })
        );
        assert_eq!(
            parse("user@10.0.0.1:rel/x.caibx"),
            Some(SshLocator {
                host: "user@10.0.0.1",
                path: "rel/x.caibx"
            })
        );
        for local in [
            "/abs/x:y",
            "./a:b",
            ".",
            "..",
            "plain.caidx",
            "http://h/x.caidx",
            "https://h:8080/x",
            "@host:x",
            "user@:x",
            "a b:c",
        ] {
            assert_eq!(parse(local), None, "{local}");
        }
        // casync takes these as ssh too (no `//` after the colon of a scheme).
        assert!(is_ssh("file:x"));
        assert!(is_ssh("h:"));
    }

    #[test]
    fn default_stores_sit_beside_the_index() {
        let at = |s| default_store(&parse(s).unwrap());
        assert_eq!(at("h:/srv/r/x.caidx"), "h:/srv/r/default.castr");
        assert_eq!(at("u@h:/x.caidx"), "u@h:/default.castr");
        assert_eq!(at("h:x.caidx"), "h:default.castr");
        assert_eq!(at("h:d/x.caidx"), "h:d/default.castr");
    }
}
