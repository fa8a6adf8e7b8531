//! `.caexclude` rules (spec §4.6), evaluated as casync's `camatch.c` does: each line is a chain
//! of path components; a rule without `/` applies at every depth, one with `/` is anchored to
//! the directory holding the file; a trailing `/` limits a component to directories; `!`
//! re-includes, and a re-include at a level beats every exclusion there. Components match with
//! `fnmatch(3)` and `FNM_PERIOD`.

use std::rc::Rc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Exclude,
    Include,
    /// An intermediate directory component; its children apply inside matching directories.
    Inner,
}

#[derive(Debug)]
struct Rule {
    kind: Kind,
    pattern: Vec<u8>,
    anchored: bool,
    directory_only: bool,
    children: Vec<Rc<Rule>>,
}

/// The rules in force in one directory.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rules(Vec<Rc<Rule>>);

impl Rules {
    /// Adds the lines of a `.caexclude` file. Invalid lines (empty, `.` or `..` components)
    /// are an error, as in casync.
    pub(crate) fn add_file(&mut self, text: &[u8]) -> Result<(), String> {
        for line in text.split(|&b| b == b'\n') {
            let line = line.trim_ascii();
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            self.0.push(Rc::new(parse_line(line).ok_or_else(|| {
                format!(
                    "invalid .caexclude line {:?}",
                    String::from_utf8_lossy(line)
                )
            })?));
        }
        Ok(())
    }

    /// Tests the child `name`: whether it is excluded, and (for directories) the rules that
    /// apply inside it.
    pub(crate) fn test(&self, name: &[u8], is_directory: bool) -> (bool, Rules) {
        let (mut positive, mut negative) = (false, false);
        let mut sub = Vec::new();
        for rule in &self.0 {
            if is_directory && !rule.anchored {
                sub.push(rule.clone());
            }
            if rule.directory_only && !is_directory {
                continue;
            }
            if !fnmatch(&rule.pattern, name) {
                continue;
            }
            match rule.kind {
                Kind::Include => negative = true,
                Kind::Exclude => positive = true,
                Kind::Inner => {
                    if is_directory {
                        sub.extend(rule.children.iter().cloned());
                    }
                }
            }
        }
        (positive && !negative, Rules(sub))
    }
}

fn parse_line(line: &[u8]) -> Option<Rule> {
    let (negative, mut p) = match line.split_first() {
        Some((b'!', rest)) => (true, rest),
        _ => (false, line),
    };
    let mut anchored = p.contains(&b'/');
    while let [b'/', rest @ ..] = p {
        p = rest;
    }
    let mut components = Vec::new();
    loop {
        let k = p.iter().position(|&b| b == b'/').unwrap_or(p.len());
        let name = &p[..k];
        if name.is_empty() || name == b"." || name == b".." {
            return None;
        }
        p = &p[k..];
        let directory_only = p.first() == Some(&b'/');
        while let [b'/', rest @ ..] = p {
            p = rest;
        }
        let kind = match (p.is_empty(), negative) {
            (false, _) => Kind::Inner,
            (true, true) => Kind::Include,
            (true, false) => Kind::Exclude,
        };
        components.push((kind, name.to_vec(), anchored, directory_only));
        if p.is_empty() {
            break;
        }
        anchored = true;
    }
    // Build the chain from the last component up.
    let mut child: Option<Rule> = None;
    for (kind, pattern, anchored, directory_only) in components.into_iter().rev() {
        child = Some(Rule {
            kind,
            pattern,
            anchored,
            directory_only,
            children: child.map(|c| vec![Rc::new(c)]).unwrap_or_default(),
        });
    }
    child
}

/// `fnmatch(pattern, name, FNM_PERIOD)` for a single path component (no `/` in `name`):
/// `*`, `?`, bracket expressions with `!`/`^`, ranges and `[:class:]`, and `\` escapes; a
/// leading `.` of the name only matches a literal `.`.
pub(crate) fn fnmatch(pattern: &[u8], name: &[u8]) -> bool {
    match_at(pattern, name, true)
}

fn match_at(mut p: &[u8], mut n: &[u8], leading: bool) -> bool {
    let mut at_start = leading;
    loop {
        let Some((&c, rest)) = p.split_first() else {
            return n.is_empty();
        };
        let period = at_start && n.first() == Some(&b'.');
        match c {
            b'?' => {
                if n.is_empty() || period {
                    return false;
                }
                p = rest;
                n = &n[1..];
            }
            b'*' => {
                if period {
                    return false;
                }
                let mut rest = rest;
                while let [b'*', r @ ..] = rest {
                    rest = r;
                }
                if rest.is_empty() {
                    return true;
                }
                return (0..=n.len()).any(|i| match_at(rest, &n[i..], false));
            }
            b'[' => {
                let Some(&ch) = n.first() else {
                    return false;
                };
                match bracket(rest, ch) {
                    Some((matched, after)) => {
                        if !matched || period {
                            return false;
                        }
                        p = after;
                        n = &n[1..];
                    }
                    // No closing bracket: `[` is literal.
                    None => {
                        if ch != b'[' {
                            return false;
                        }
                        p = rest;
                        n = &n[1..];
                    }
                }
            }
            _ => {
                let (lit, rest) = match (c, rest.split_first()) {
                    (b'\\', Some((&e, r))) => (e, r),
                    _ => (c, rest),
                };
                if n.first() != Some(&lit) {
                    return false;
                }
                p = rest;
                n = &n[1..];
            }
        }
        at_start = false;
    }
}

/// Matches `ch` against the bracket expression starting after `[`; returns whether it matched
/// and the pattern after `]`, or `None` when the expression is not closed.
fn bracket(p: &[u8], ch: u8) -> Option<(bool, &[u8])> {
    let (negate, mut p) = match p.split_first() {
        Some((b'!' | b'^', rest)) => (true, rest),
        _ => (false, p),
    };
    let mut matched = false;
    let mut first = true;
    loop {
        let (&c, rest) = p.split_first()?;
        if c == b']' && !first {
            return Some((matched != negate, rest));
        }
        first = false;
        if c == b'[' && rest.first() == Some(&b':') {
            let body = &rest[1..];
            if let Some(end) = body.windows(2).position(|w| w == b":]") {
                matched |= class(&body[..end], ch);
                p = &body[end + 2..];
                continue;
            }
        }
        let (lo, rest) = match (c, rest.split_first()) {
            (b'\\', Some((&e, r))) => (e, r),
            _ => (c, rest),
        };
        if let [b'-', hi, after @ ..] = rest
            && *hi != b']'
        {
            let (hi, after) = match (hi, after.split_first()) {
                (b'\\', Some((&e, r))) => (e, r),
                _ => (*hi, after),
            };
            matched |= lo <= ch && ch <= hi;
            p = after;
        } else {
            matched |= lo == ch;
            p = rest;
        }
    }
}

fn class(name: &[u8], ch: u8) -> bool {
    match name {
        b"alpha" => ch.is_ascii_alphabetic(),
        b"digit" => ch.is_ascii_digit(),
        b"alnum" => ch.is_ascii_alphanumeric(),
        b"upper" => ch.is_ascii_uppercase(),
        b"lower" => ch.is_ascii_lowercase(),
        b"space" => ch.is_ascii_whitespace() || ch == 0x0b,
        b"xdigit" => ch.is_ascii_hexdigit(),
        b"punct" => ch.is_ascii_punctuation(),
        b"print" => (0x20..0x7f).contains(&ch),
        b"graph" => ch.is_ascii_graphic(),
        b"cntrl" => ch.is_ascii_control(),
        b"blank" => ch == b' ' || ch == b'\t',
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_semantics() {
        assert!(fnmatch(b"*.o", b"a.o"));
        assert!(!fnmatch(b"*.o", b".o"));
        assert!(!fnmatch(b"*", b".hidden"));
        assert!(fnmatch(b".*", b".hidden"));
        assert!(!fnmatch(b"?x", b".x"));
        assert!(!fnmatch(b"[.]x", b".x"));
        assert!(fnmatch(b"a*", b"a.b"));
        assert!(fnmatch(b"[a-c]?[!x]", b"bzy"));
        assert!(!fnmatch(b"[a-c]?[!x]", b"bzx"));
        assert!(fnmatch(b"[[:digit:]]*", b"1abc"));
        assert!(fnmatch(b"\\*", b"*"));
        assert!(!fnmatch(b"\\*", b"a"));
        assert!(fnmatch(b"[", b"["));
        assert!(fnmatch(b"[]]", b"]"));
        assert!(fnmatch(b"a**b", b"ab"));
        assert!(!fnmatch(b"abc", b"ab"));
    }

    #[test]
    fn rules() {
        let mut r = Rules::default();
        r.add_file(b"# comment\n\n*.log\n!keep.log\nbuild/\n/top\nsub/deep\n  spaced  \n")
            .unwrap();
        assert!(r.test(b"a.log", false).0);
        assert!(!r.test(b"keep.log", false).0);
        assert!(r.test(b"build", true).0);
        assert!(!r.test(b"build", false).0);
        assert!(r.test(b"top", false).0);
        assert!(r.test(b"spaced", false).0);
        // Unanchored rules carry into subdirectories, anchored ones do not.
        let (excluded, inner) = r.test(b"sub", true);
        assert!(!excluded);
        assert!(inner.test(b"x.log", false).0);
        assert!(!inner.test(b"top", false).0);
        assert!(inner.test(b"deep", false).0);
        let (_, other) = r.test(b"other", true);
        assert!(!other.test(b"deep", false).0);
        // A re-include in a subdirectory beats the inherited exclusion.
        let mut child = other.clone();
        child.add_file(b"!*.log\n").unwrap();
        assert!(!child.test(b"a.log", false).0);
        assert!(r.add_file(b"a/../b\n").is_err());
    }
}
