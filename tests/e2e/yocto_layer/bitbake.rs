//! A reader of bitbake's file syntax: statements (assignments, includes, inherits, tasks),
//! shell and python functions, `def`s and `${@…}` expressions, as bitbake's parser splits them.

use super::*;

/// One bitbake statement.
#[derive(Debug)]
pub(super) enum Stmt {
    /// `VAR[flag] OP "value"`.
    Assign {
        var: String,
        flag: Option<String>,
        op: String,
        value: String,
    },
    /// `include FILE` (may be missing) or `require FILE`.
    Include { path: String },
    /// `inherit CLASS...` or `inherit_defer CLASS...`.
    Inherit(Vec<String>),
    /// `addtask do_x [after do_y...] [before do_z...]`.
    AddTask { task: String, deps: Vec<String> },
    /// `deltask do_x`.
    DelTask(String),
    /// `[python|fakeroot] NAME() {` … `}`.
    Function {
        name: String,
        python: bool,
        body: String,
    },
    /// `def NAME(...):` and its indented block.
    Def { source: String },
}

/// The assignment operators bitbake knows, longest first.
pub(super) const OPS: [&str; 8] = ["??=", "?=", ":=", "+=", "=+", ".=", "=.", "="];

/// Characters of a variable name (with overrides and `${}` references).
pub(super) fn var_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-+./~:${}".contains(c)
}

/// Characters of a variable flag name.
pub(super) fn flag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-+.@/".contains(c)
}

/// `NAME() {` / `python NAME() {` / `python () {`: (name, is python).
pub(super) fn function_header(line: &str) -> Option<(String, bool)> {
    let rest = line.strip_suffix('{')?.trim_end();
    let rest = rest.strip_suffix("()")?.trim_end();
    let (python, name) = match rest.strip_prefix("python") {
        Some(r) if r.is_empty() || r.starts_with(' ') => (true, r.trim()),
        _ => (false, rest.strip_prefix("fakeroot ").unwrap_or(rest)),
    };
    if !name.chars().all(var_char) || (name.is_empty() && !python) {
        return None;
    }
    let name = if name.is_empty() { "__anonymous" } else { name };
    Some((name.to_owned(), python))
}

/// Parses one logical line that is not a function.
pub(super) fn parse_statement(line: &str) -> Result<Stmt, String> {
    let words =
        |rest: &str| -> Vec<String> { rest.split_whitespace().map(str::to_owned).collect() };
    if let Some(rest) = line
        .strip_prefix("inherit ")
        .or_else(|| line.strip_prefix("inherit_defer "))
    {
        return Ok(Stmt::Inherit(words(rest)));
    }
    if let Some(rest) = line
        .strip_prefix("include ")
        .or_else(|| line.strip_prefix("require "))
    {
        return Ok(Stmt::Include {
            path: rest.trim().to_owned(),
        });
    }
    if let Some(rest) = line.strip_prefix("addtask ") {
        let mut all = words(rest).into_iter();
        let task = all.next().ok_or("addtask without a task")?;
        let deps = all.filter(|w| w != "after" && w != "before").collect();
        return Ok(Stmt::AddTask { task, deps });
    }
    if let Some(rest) = line.strip_prefix("deltask ") {
        return Ok(Stmt::DelTask(rest.trim().to_owned()));
    }
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (lhs, rest) = line
        .split_once(' ')
        .ok_or_else(|| format!("not a bitbake statement: {line}"))?;
    let (op, value) = rest
        .split_once(' ')
        .ok_or_else(|| format!("assignment without a value: {line}"))?;
    if !OPS.contains(&op) {
        return Err(format!("unknown operator {op:?}: {line}"));
    }
    let (var, flag) = match lhs.split_once('[') {
        Some((var, flag)) => {
            let flag = flag.strip_suffix(']').ok_or("unclosed [flag]")?;
            if flag.is_empty() || !flag.chars().all(flag_char) {
                return Err(format!("bad flag name {flag:?}"));
            }
            (var, Some(flag.to_owned()))
        }
        None => (lhs, None),
    };
    if var.is_empty() || !var.chars().all(var_char) {
        return Err(format!("bad variable name {var:?}"));
    }
    let value = value.trim();
    let quoted = value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"'))
            || (value.starts_with('\'') && value.ends_with('\'')));
    if !quoted {
        return Err(format!("the value of {var} is not quoted: {value}"));
    }
    Ok(Stmt::Assign {
        var: var.to_owned(),
        flag,
        op: op.to_owned(),
        value: value[1..value.len() - 1].to_owned(),
    })
}

/// Parses a .bb, .bbclass, .conf or .inc file into statements with their first line number.
pub(super) fn parse_bitbake(path: &Path) -> Result<Vec<(usize, Stmt)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut stmts = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i + 1;
        let at = |msg: String| format!("{}:{start}: {msg}", path.display());
        let line = lines[i];
        if line.trim().is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            return Err(at(format!("indented line outside a function: {line}")));
        }
        if let Some((name, python)) = function_header(line) {
            let mut body = String::new();
            i += 1;
            loop {
                let Some(line) = lines.get(i) else {
                    return Err(at(format!("{name}: no closing `}}` line")));
                };
                i += 1;
                if *line == "}" {
                    break;
                }
                body.push_str(line);
                body.push('\n');
            }
            stmts.push((start, Stmt::Function { name, python, body }));
            continue;
        }
        if line.starts_with("def ") {
            if !line.ends_with(':') || !line.contains('(') {
                return Err(at(format!("bad def line: {line}")));
            }
            let mut source = format!("{line}\n");
            i += 1;
            while i < lines.len() && (lines[i].is_empty() || lines[i].starts_with(' ')) {
                source.push_str(lines[i]);
                source.push('\n');
                i += 1;
            }
            stmts.push((start, Stmt::Def { source }));
            continue;
        }
        let mut logical = line.to_owned();
        while logical.ends_with('\\') {
            logical.pop();
            i += 1;
            let next = lines
                .get(i)
                .ok_or_else(|| at("continuation at the end of the file".into()))?;
            logical.push_str(next);
        }
        i += 1;
        stmts.push((start, parse_statement(logical.trim_end()).map_err(at)?));
    }
    Ok(stmts)
}

/// The `${@…}` expressions in `text` (braces matched, as bitbake's expander does).
pub(super) fn inline_python(text: &str) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${@") {
        let mut depth = 0;
        let mut end = None;
        for (i, c) in rest[start + 1..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(start + 1 + i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let end = end.ok_or_else(|| format!("unterminated ${{@ in {text:?}"))?;
        found.push(rest[start + 3..end].to_owned());
        rest = &rest[end + 1..];
    }
    Ok(found)
}

/// `text` with every `${@…}` replaced by `X` (for `sh -n`).
pub(super) fn without_inline_python(text: &str) -> String {
    let mut out = text.to_owned();
    for expr in inline_python(text).expect("balanced") {
        out = out.replacen(&format!("${{@{expr}}}"), "X", 1);
    }
    out
}

/// Every file of the layer bitbake parses, sorted.
pub(super) fn layer_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = files_below(&layer())
        .into_iter()
        .filter(|f| {
            [".bb", ".bbclass", ".conf", ".inc", ".bbappend"]
                .iter()
                .any(|e| f.ends_with(e))
        })
        .map(|f| layer().join(f))
        .collect();
    // The boards' build settings are included by otasync-board.bbclass.
    files.extend(
        boards()
            .into_iter()
            .map(|(_, dir)| dir.join("otasync-board.conf")),
    );
    files.sort();
    files
}

/// A recipe's BPN: the file name up to `_` or `.bb`.
pub(super) fn bpn(recipe: &Path) -> String {
    let name = recipe.file_name().expect("recipe name").to_string_lossy();
    let stem = name.strip_suffix(".bb").unwrap_or(&name);
    stem.split('_').next().unwrap_or(stem).to_owned()
}

/// Where `include`/`require SPEC` in `from` leads for `board_dir`: bitbake looks next to the
/// including file, then along BBPATH (the layer root).
pub(super) fn resolve_include(from: &Path, spec: &str, board_dir: &Path, bpn: &str) -> PathBuf {
    let spec = spec
        .replace("${OTASYNC_BOARD_DIR}", s(board_dir))
        .replace("${BPN}", bpn);
    assert!(
        !spec.contains("${"),
        "{}: cannot resolve include {spec}",
        from.display()
    );
    let spec = PathBuf::from(spec);
    if spec.is_absolute() {
        return spec;
    }
    let beside = from.parent().expect("file directory").join(&spec);
    if beside.exists() {
        beside
    } else {
        layer().join(spec)
    }
}

/// oe-core classes the layer inherits (everything else must be one of the layer's).
pub(super) const OE_CORE_CLASSES: [&str; 7] = [
    "cargo",
    "cargo-update-recipe-crates",
    "deploy",
    "image-artifact-names",
    "kernel-arch",
    "nopackages",
    "systemd",
];

/// The statements of `path`, which must parse.
pub(super) fn stmts(path: &Path) -> Vec<Stmt> {
    parse_bitbake(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|(_, s)| s)
        .collect()
}

/// The value of the last plain `VAR OP "value"` of `var` in `stmts`.
pub(super) fn value_of<'a>(stmts: &'a [Stmt], var: &str) -> Option<&'a str> {
    stmts.iter().rev().find_map(|s| match s {
        Stmt::Assign {
            var: v,
            flag: None,
            value,
            ..
        } if v == var => Some(value.as_str()),
        _ => None,
    })
}

/// Every value assigned to `var` or `var:append`/`var:prepend`.
pub(super) fn values_of<'a>(stmts: &'a [Stmt], var: &str) -> Vec<&'a str> {
    stmts
        .iter()
        .filter_map(|s| match s {
            Stmt::Assign {
                var: v,
                flag: None,
                value,
                ..
            } if v == var || v == &format!("{var}:append") || v == &format!("{var}:prepend") => {
                Some(value.as_str())
            }
            _ => None,
        })
        .collect()
}
