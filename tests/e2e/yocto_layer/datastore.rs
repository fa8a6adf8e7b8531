//! Running the layer's code: [`MINIBB`], a small stand-in for bitbake's datastore in Python
//! (the language of the layer's code), and [`Recipe`], what bitbake would have parsed for one
//! recipe.

use super::bitbake::*;
use super::*;
use std::collections::{BTreeMap, BTreeSet};

/// A small stand-in for bitbake, in Python (the language of the layer's code). Input on stdin,
/// JSON:
/// - `{"mode": "compile", "items": [{"where", "kind", "source"}]}`: compiles each item as
///   bitbake would (a python function's body inside `def f(d):`, a `def` as a module, a
///   `${@…}` as an expression); prints the list of errors.
/// - `{"mode": "run", "assignments": [[var, op, value]], "defs": [source], "actions": [...]}`:
///   applies the assignments in order with bitbake's operators (`=`, `?=`, `??=`, `:=`, `+=`,
///   `=+`, `.=`, `=.`, and `:append`/`:prepend`/`:remove`; `VAR:other` is a variable of its
///   own, no override being active),
///   defines the `def`s, then for each action `{"expand": text}`, `{"getvar": name}`,
///   `{"eval": expression}` or `{"python": body}` prints `{"value": …}` / `{"ok": true}`, or
///   `{"fatal": msg}` (bb.fatal), `{"skip": msg}` (SkipRecipe), `{"error": msg}`.
const MINIBB: &str = include_str!("minibb.py");

/// Runs [`MINIBB`] on `request`.
pub(super) fn minibb(request: &Value) -> Value {
    let (fine, out, err) = run_with_input(
        Command::new("python3").args(["-c", MINIBB]),
        &request.to_string(),
    );
    assert!(fine, "minibb failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("minibb output {out:?}: {e}"))
}

/// What bitbake would have parsed for one recipe, as [`MINIBB`] input.
#[derive(Default)]
pub(super) struct Recipe {
    pub(super) assignments: Vec<[String; 3]>,
    pub(super) defs: Vec<String>,
    pub(super) functions: BTreeMap<String, (bool, String)>,
    pub(super) anonymous: Vec<String>,
}

impl Recipe {
    /// `recipe` (a .bb or a .bbclass) for `board`, after layer.conf and the `local` settings
    /// (local.conf: plain assignments, before any recipe). The layer's classes and includes are
    /// read in place, each class once; oe-core classes are not (their variables come from
    /// `local` where the layer's code needs them).
    pub(super) fn load(recipe: &Path, board_dir: &Path, local: &[(&str, &str)]) -> Self {
        let mut r = Recipe::default();
        let layer_dir = layer();
        for stmt in stmts(&layer_dir.join("conf/layer.conf")) {
            if let Stmt::Assign {
                var,
                flag: None,
                op,
                value,
            } = stmt
            {
                r.assignments
                    .push([var, op, value.replace("${LAYERDIR}", s(&layer_dir))]);
            }
        }
        for (var, value) in local {
            r.assignments
                .push([(*var).into(), "=".into(), (*value).into()]);
        }
        let mut inherited = BTreeSet::new();
        r.add(recipe, board_dir, &bpn(recipe), &mut inherited);
        r
    }

    fn add(&mut self, path: &Path, board_dir: &Path, bpn: &str, inherited: &mut BTreeSet<String>) {
        for stmt in stmts(path) {
            match stmt {
                Stmt::Assign {
                    var,
                    flag: None,
                    op,
                    value,
                } => self.assignments.push([var, op, value]),
                Stmt::Include { path: spec } => {
                    let target = resolve_include(path, &spec, board_dir, bpn);
                    if target.is_file() {
                        self.add(&target, board_dir, bpn, inherited);
                    }
                }
                Stmt::Inherit(classes) => {
                    for class in classes {
                        let file = layer().join(format!("classes-recipe/{class}.bbclass"));
                        if file.is_file() && inherited.insert(class) {
                            self.add(&file, board_dir, bpn, inherited);
                        }
                    }
                }
                Stmt::Def { source } => self.defs.push(source),
                Stmt::Function { name, python, body } if name == "__anonymous" => {
                    assert!(python);
                    self.anonymous.push(body);
                }
                Stmt::Function { name, python, body } => {
                    self.functions.insert(name, (python, body));
                }
                _ => {}
            }
        }
    }

    /// The body of function `name`.
    pub(super) fn function(&self, name: &str) -> &str {
        &self
            .functions
            .get(name)
            .unwrap_or_else(|| panic!("no function {name}"))
            .1
    }

    /// Runs `actions`; one result each.
    pub(super) fn run(&self, actions: Vec<Value>) -> Vec<Value> {
        let answer = minibb(&json!({
            "mode": "run",
            "assignments": self.assignments,
            "defs": self.defs,
            "actions": actions,
        }));
        answer.as_array().expect("a list of results").clone()
    }

    /// The expanded value of `var`.
    pub(super) fn var(&self, var: &str) -> String {
        let result = &self.run(vec![json!({"getvar": var})])[0];
        result["value"]
            .as_str()
            .unwrap_or_else(|| panic!("{var}: {result}"))
            .to_owned()
    }
}

/// Runs shell function `body` as a bitbake task (`set -e`, bbfatal/bbwarn/bbnote), expanded by
/// `recipe`, in `dir`, with the built `otasync` first in PATH. Returns (success, stdout, stderr).
pub(super) fn run_shell_task(recipe: &Recipe, body: &str, dir: &Path) -> (bool, String, String) {
    let result = &recipe.run(vec![json!({"expand": body})])[0];
    let body = result["value"]
        .as_str()
        .unwrap_or_else(|| panic!("expanding: {result}"));
    assert!(!body.contains("${@"), "unexpanded python in {body}");
    let script = format!(
        "set -e\nbbfatal() {{ echo \"ERROR: $*\" >&2; exit 1; }}\nbbwarn() {{ echo \"WARNING: $*\" >&2; }}\n\
         bbnote() {{ echo \"NOTE: $*\"; }}\ntask() {{\n{body}\n}}\ncd {}\ntask\n",
        s(dir)
    );
    let bin_dir = otasync_path().parent().expect("bin dir").to_path_buf();
    let path = format!(
        "{}:{}",
        s(&bin_dir),
        std::env::var("PATH").unwrap_or_default()
    );
    run_with_input(Command::new("sh").env("PATH", path), &script)
}
