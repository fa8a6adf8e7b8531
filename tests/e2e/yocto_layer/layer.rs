//! The layer's files as bitbake reads them: syntax, Python that compiles, shell that parses,
//! tasks, classes, includes and sources that resolve, the variables a recipe needs; layer.conf,
//! README and SECURITY.md as yocto-check-layer wants them; the systemd units.

use super::bitbake::*;
use super::datastore::minibb;
use super::*;
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn layer_files_parse_as_bitbake_reads_them() {
    let python = have("python3", "python3");
    let mut compile_items = Vec::new();
    let mut count = 0;
    for path in layer_files() {
        let stmts = parse_bitbake(&path).unwrap_or_else(|e| panic!("{e}"));
        let here = |line: usize| format!("{}:{line}", path.display());
        let functions: BTreeSet<&str> = stmts
            .iter()
            .filter_map(|(_, s)| match s {
                Stmt::Function { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        for (line, stmt) in &stmts {
            count += 1;
            match stmt {
                Stmt::Assign { var, value, .. } => {
                    let mut depth = 0i32;
                    for c in value.chars() {
                        depth += i32::from(c == '{') - i32::from(c == '}');
                        assert!(depth >= 0, "{}: unbalanced braces in {var}", here(*line));
                    }
                    assert_eq!(depth, 0, "{}: unbalanced braces in {var}", here(*line));
                    let exprs =
                        inline_python(value).unwrap_or_else(|e| panic!("{}: {e}", here(*line)));
                    for expr in exprs {
                        compile_items.push(
                            json!({"where": here(*line), "kind": "expression", "source": expr}),
                        );
                    }
                }
                Stmt::Include { path: spec } => {
                    for (_, board_dir) in boards() {
                        let target = resolve_include(&path, spec, &board_dir, &bpn(&path));
                        assert!(
                            target.is_file(),
                            "{}: {} is missing",
                            here(*line),
                            target.display()
                        );
                    }
                }
                Stmt::Inherit(classes) => {
                    for class in classes {
                        let ours = layer().join(format!("classes-recipe/{class}.bbclass"));
                        assert!(
                            ours.is_file() || OE_CORE_CLASSES.contains(&class.as_str()),
                            "{}: class {class} is neither the layer's nor a known oe-core class",
                            here(*line)
                        );
                    }
                }
                Stmt::AddTask { task, deps } => {
                    assert!(
                        task.starts_with("do_"),
                        "{}: task {task} is not do_*",
                        here(*line)
                    );
                    assert!(
                        functions.contains(task.as_str()),
                        "{}: task {task} has no function in this file",
                        here(*line)
                    );
                    for dep in deps {
                        assert!(dep.starts_with("do_"), "{}: {dep} is not do_*", here(*line));
                    }
                }
                Stmt::DelTask(task) => {
                    assert!(
                        task.starts_with("do_"),
                        "{}: {task} is not do_*",
                        here(*line)
                    );
                }
                Stmt::Function {
                    name,
                    python: true,
                    body,
                } => {
                    compile_items.push(json!({"where": format!("{} ({name})", here(*line)), "kind": "function", "source": body}));
                }
                Stmt::Function {
                    name,
                    python: false,
                    body,
                } => {
                    for expr in
                        inline_python(body).unwrap_or_else(|e| panic!("{}: {e}", here(*line)))
                    {
                        compile_items.push(
                            json!({"where": here(*line), "kind": "expression", "source": expr}),
                        );
                    }
                    let script = format!("f() {{\n{}\n}}\n", without_inline_python(body));
                    let (fine, _, err) = run_with_input(Command::new("sh").arg("-n"), &script);
                    assert!(fine, "{} ({name}): sh -n: {err}", here(*line));
                }
                Stmt::Def { source } => {
                    compile_items
                        .push(json!({"where": here(*line), "kind": "module", "source": source}));
                }
            }
        }
    }
    assert!(
        count > 100,
        "only {count} statements: is the reader skipping files?"
    );
    if python {
        let errors = minibb(&json!({"mode": "compile", "items": compile_items}));
        assert_eq!(
            errors,
            json!([]),
            "Python that bitbake would fail to compile"
        );
    }
}

/// The MD5 of lines `begin..=end` (1-based; all when None) of `file`, as bitbake's license
/// check computes it.
fn license_md5(file: &Path, lines: Option<(usize, usize)>) -> String {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let selected: Vec<u8> = match lines {
        None => bytes,
        Some((begin, end)) => bytes
            .split_inclusive(|b| *b == b'\n')
            .skip(begin - 1)
            .take(end + 1 - begin)
            .flatten()
            .copied()
            .collect(),
    };
    let tmp = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(tmp.path(), selected).expect("writing");
    let out = ok(Command::new("md5sum").arg(tmp.path()));
    out.split_whitespace()
        .next()
        .expect("md5sum output")
        .to_owned()
}

/// The recipes of the layer.
fn recipes() -> Vec<PathBuf> {
    let recipes: Vec<PathBuf> = layer_files()
        .into_iter()
        .filter(|f| s(f).ends_with(".bb"))
        .collect();
    assert!(recipes.len() >= 5, "{recipes:?}");
    recipes
}

#[test]
fn recipes_define_what_bitbake_requires() {
    /// oe-core's `meta/files/common-licenses/MIT`.
    const OE_MIT_MD5: &str = "0835ade698e0bcf8506ecda2f7b4f302";
    for recipe in recipes() {
        let st = stmts(&recipe);
        let name = recipe.display();
        for var in ["SUMMARY", "LICENSE", "LIC_FILES_CHKSUM"] {
            assert!(
                value_of(&st, var).is_some_and(|v| !v.is_empty()),
                "{name}: no {var}"
            );
        }
        let license = value_of(&st, "LICENSE").expect("LICENSE");
        assert!(
            ["MIT", "MIT | Apache-2.0"].contains(&license),
            "{name}: LICENSE {license}"
        );
        for entry in value_of(&st, "LIC_FILES_CHKSUM")
            .expect("LIC_FILES_CHKSUM")
            .split_whitespace()
        {
            let entry = entry
                .strip_prefix("file://")
                .unwrap_or_else(|| panic!("{name}: {entry}"));
            let mut fields = entry.split(';');
            let file = fields.next().expect("file");
            let params: BTreeMap<&str, &str> = fields.filter_map(|p| p.split_once('=')).collect();
            let md5 = params
                .get("md5")
                .unwrap_or_else(|| panic!("{name}: {entry} has no md5"));
            if file == "${COMMON_LICENSE_DIR}/MIT" {
                assert_eq!(*md5, OE_MIT_MD5, "{name}");
                continue;
            }
            assert!(!file.contains("${"), "{name}: {file}");
            // Relative to the source tree: the repository.
            let lines = match (params.get("beginline"), params.get("endline")) {
                (Some(b), Some(e)) => {
                    Some((b.parse().expect("beginline"), e.parse().expect("endline")))
                }
                _ => None,
            };
            assert_eq!(
                license_md5(&repo().join(file), lines),
                *md5,
                "{name}: LIC_FILES_CHKSUM of {file} is stale"
            );
        }
        let inherits_release = st
            .iter()
            .any(|s| matches!(s, Stmt::Inherit(c) if c.iter().any(|c| c == "otasync-release")));
        let src_uri = values_of(&st, "SRC_URI").join(" ");
        // A release recipe has no sources: it reads deployed images.
        assert!(
            inherits_release || !src_uri.trim().is_empty(),
            "{name}: no SRC_URI"
        );
        let git = src_uri.contains("git://")
            || (src_uri.contains("${OTASYNC_GIT_URI}")
                && value_of(&st, "OTASYNC_GIT_URI").is_some_and(|v| v.starts_with("git://")));
        if git {
            let rev =
                value_of(&st, "SRCREV").unwrap_or_else(|| panic!("{name}: git without SRCREV"));
            assert!(
                rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()),
                "{name}: SRCREV {rev}"
            );
            assert!(
                value_of(&st, "PV").is_some_and(|pv| pv.contains("+git")),
                "{name}: PV without +git"
            );
        }
    }

    // The agent recipe: the workspace member, the generated .inc, the units it installs.
    let recipe = layer().join("recipes-support/otasync/otasync_git.bb");
    let st = stmts(&recipe);
    let inherited: Vec<&str> = st
        .iter()
        .filter_map(|s| match s {
            Stmt::Inherit(c) => Some(c.iter().map(String::as_str).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    for class in ["cargo", "cargo-update-recipe-crates", "systemd"] {
        assert!(
            inherited.contains(&class),
            "otasync_git.bb does not inherit {class}"
        );
    }
    let member = value_of(&st, "CARGO_SRC_DIR").expect("CARGO_SRC_DIR");
    assert!(
        repo().join(member).join("Cargo.toml").is_file(),
        "CARGO_SRC_DIR {member}"
    );
    assert_eq!(value_of(&st, "CARGO_LOCK_PATH"), Some("${S}/Cargo.lock"));
    assert!(
        st.iter()
            .any(|s| matches!(s, Stmt::Include { path } if path == "${BPN}-crates.inc"))
    );
    assert!(
        value_of(&st, "BBCLASSEXTEND")
            .is_some_and(|v| v.split_whitespace().eq(["native", "nativesdk"]))
    );
    let installed: String = st
        .iter()
        .filter_map(|s| match s {
            Stmt::Function { name, body, .. } if name.starts_with("do_install") => {
                Some(body.as_str())
            }
            _ => None,
        })
        .collect();
    let services: Vec<&str> = ["SYSTEMD_SERVICE:${PN}", "SYSTEMD_SERVICE:${PN}-mark-good"]
        .iter()
        .map(|v| value_of(&st, v).unwrap_or_else(|| panic!("no {v}")))
        .collect();
    assert_eq!(services, ["otasync.service", "otasync-mark-good.service"]);
    for unit in services {
        assert!(
            repo().join("agent/systemd").join(unit).is_file(),
            "agent/systemd/{unit}"
        );
        assert!(
            installed.contains(&format!("${{S}}/agent/systemd/{unit}")),
            "{unit} not installed"
        );
    }
}

#[test]
fn layer_conf_readme_and_security_policy() {
    let st = stmts(&layer().join("conf/layer.conf"));
    let assigned = |var: &str| -> String {
        st.iter()
            .filter_map(|s| match s {
                Stmt::Assign {
                    var: v,
                    flag: None,
                    value,
                    ..
                } if v == var => Some(value.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        assigned("BBFILE_COLLECTIONS")
            .split_whitespace()
            .any(|c| c == "otasync")
    );
    assert_eq!(assigned("BBFILE_PATTERN_otasync"), "^${LAYERDIR}/");
    assert!(assigned("BBFILE_PRIORITY_otasync").parse::<u32>().is_ok());
    assert!(
        assigned("LAYERDEPENDS_otasync")
            .split_whitespace()
            .any(|l| l == "core")
    );
    assert!(assigned("BBPATH").contains("${LAYERDIR}"));
    let compat = assigned("LAYERSERIES_COMPAT_otasync");
    for release in ["whinlatter", "wrynose"] {
        assert!(
            compat.split_whitespace().any(|r| r == release),
            "LAYERSERIES_COMPAT lacks {release}"
        );
    }
    // BBFILES must reach every recipe: recipes-*/<dir>/<recipe>.bb.
    let bbfiles = assigned("BBFILES");
    assert!(
        bbfiles.contains("${LAYERDIR}/recipes-*/*/*.bb"),
        "{bbfiles}"
    );
    for recipe in recipes() {
        let rel = recipe.strip_prefix(layer()).expect("inside the layer");
        let parts: Vec<_> = rel.components().collect();
        assert!(
            parts.len() == 3 && s(Path::new(&parts[0])).starts_with("recipes-"),
            "{} is outside BBFILES",
            rel.display()
        );
    }

    // yocto-check-layer: README with a maintainer, patch instructions and an e-mail address;
    // a SECURITY file.
    let readme = std::fs::read_to_string(layer().join("README.md")).expect("README.md");
    let lower = readme.to_lowercase();
    assert!(lower.contains("maintainer") && lower.contains("patch"));
    assert!(
        readme.split_whitespace().any(|w| {
            let w = w.trim_matches(|c: char| "<>(),.;:`".contains(c));
            w.split_once('@')
                .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
        }),
        "README.md has no e-mail address"
    );
    // The releases the workspace's Rust requirements allow, documented.
    for needle in [
        "scarthgap",
        "meta-lts-mixins",
        "whinlatter",
        "wrynose",
        "1.88",
        "1.90",
        "1.94",
    ] {
        assert!(
            readme.contains(needle),
            "README.md does not mention {needle}"
        );
    }
    let security = std::fs::read_to_string(layer().join("SECURITY.md")).expect("SECURITY.md");
    assert!(security.to_lowercase().contains("report"));
    assert!(layer().join("COPYING.MIT").is_file());
}

#[test]
fn file_sources_exist() {
    let board_dirs: Vec<PathBuf> = boards().into_iter().map(|(_, dir)| dir).collect();
    let mut checked = 0;
    for recipe in recipes() {
        let st = stmts(&recipe);
        let dir = recipe.parent().expect("recipe directory");
        let mut search = vec![dir.join("files"), dir.join(bpn(&recipe))];
        if values_of(&st, "FILESEXTRAPATHS")
            .iter()
            .any(|v| v.contains("${OTASYNC_BOARD_DIR}"))
        {
            search.extend(board_dirs.iter().cloned());
        }
        for value in values_of(&st, "SRC_URI") {
            let mut rest = value;
            while let Some(at) = rest.find("file://") {
                rest = &rest[at + "file://".len()..];
                let end = rest
                    .find(|c: char| c.is_whitespace() || "\"';".contains(c))
                    .unwrap_or(rest.len());
                let file = &rest[..end];
                assert!(
                    search.iter().any(|d| d.join(file).is_file()),
                    "{}: file://{file} is in none of {search:?}",
                    recipe.display()
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 5, "only {checked} file:// sources found");
}

#[test]
fn systemd_units_verify_and_mark_good_waits_for_boot_complete() {
    let units = repo().join("agent/systemd");
    let daemon = std::fs::read_to_string(units.join("otasync.service")).expect("otasync.service");
    let mark_good =
        std::fs::read_to_string(units.join("otasync-mark-good.service")).expect("mark-good");
    let has = |text: &str, line: &str| text.lines().any(|l| l.trim() == line);
    for line in [
        "After=boot-complete.target",
        "Requires=boot-complete.target",
        "WantedBy=multi-user.target",
        "Type=oneshot",
        "ExecStart=/usr/bin/otasync mark-good --config=/etc/otasync/system.json",
    ] {
        assert!(
            has(&mark_good, line),
            "otasync-mark-good.service lacks {line}"
        );
    }
    assert!(has(
        &daemon,
        "ExecStart=/usr/bin/otasync daemon --config=/etc/otasync/system.json"
    ));
    assert!(has(&daemon, "WantedBy=multi-user.target"));
    for text in [&daemon, &mark_good] {
        for line in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "ProtectHome=yes",
        ] {
            assert!(has(text, line), "{line} missing");
        }
        // Hiding devices would stop the slot and environment writes.
        for forbidden in [
            "PrivateDevices=yes",
            "ProtectClock=yes",
            "DevicePolicy=closed",
            "ProtectKernelTunables=yes",
        ] {
            assert!(
                !has(text, forbidden),
                "{forbidden} breaks block-device writes"
            );
        }
        assert!(
            text.contains("/data/otasync"),
            "the state directory must be writable"
        );
    }
    assert!(has(&mark_good, "PrivateNetwork=yes"));
    if !have("systemd-analyze", "systemd") {
        return;
    }
    // systemd-analyze checks that ExecStart exists: point it at the built binary.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut paths = Vec::new();
    for (name, text) in [
        ("otasync.service", &daemon),
        ("otasync-mark-good.service", &mark_good),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, text.replace("/usr/bin/otasync", s(&otasync_path()))).expect("unit");
        paths.push(path);
    }
    let (clean, err) = systemd_verify(&paths);
    assert!(clean, "systemd-analyze verify: {err}");
}
