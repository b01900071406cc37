//! The workspace's architecture invariants (ARCHITECTURE.md), checked from
//! the manifests and the sources, without AWS: only the toolkit knows clap,
//! only the functions know the Lambda runtime, and the library's pure core
//! (its modules not behind the `aws` feature) names no AWS SDK type and no
//! async runtime, and imports none of the library's AWS modules; and the
//! library's wings import only downward (DR → RDS → databases → files →
//! plumbing → pure core).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The workspace's root directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// `cargo metadata` of the workspace's own packages.
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// The workspace's packages that depend on `dependency` (any kind: normal,
/// dev or build), each as its directory relative to the workspace root.
fn dependents(dependency: &str) -> BTreeSet<String> {
    let root = workspace_root();
    let metadata = metadata();
    let packages = metadata["packages"].as_array().expect("packages");
    assert!(packages.len() > 3, "cargo metadata lists the workspace's packages");
    packages
        .iter()
        .filter(|package| {
            let dependencies = package["dependencies"].as_array().expect("dependencies");
            dependencies.iter().any(|d| d["name"] == dependency)
        })
        .map(|package| {
            let manifest = Path::new(package["manifest_path"].as_str().expect("manifest_path"));
            let directory = manifest.parent().expect("a manifest's directory");
            let relative = directory.strip_prefix(&root).unwrap_or(directory);
            relative.to_string_lossy().into_owned()
        })
        .collect()
}

#[test]
fn only_the_toolkit_depends_on_clap() {
    let dependents = dependents("clap");
    assert_eq!(
        dependents,
        BTreeSet::from(["toolkit".to_owned()]),
        "only the toolkit parses command lines"
    );
}

#[test]
fn only_the_functions_depend_on_the_lambda_runtime() {
    let others: Vec<String> = dependents("lambda_runtime")
        .into_iter()
        .filter(|package| !package.starts_with("functions/"))
        // The harness's own echo function (tests/harness/bin/echo_function.rs),
        // which the harness's self-tests invoke.
        .filter(|package| package != "tests")
        .collect();
    assert!(
        others.is_empty(),
        "only functions/* know Lambda's runtime, but these depend on lambda_runtime: {others:?}"
    );
}

/// A module declared in a Rust source file: `mod NAME;` or `pub mod NAME;`,
/// with whether it is behind the `aws` feature or only for tests.
struct Declared {
    name: String,
    aws: bool,
    test: bool,
}

/// The out-of-line modules a source file declares.
fn declared_modules(source: &str) -> Vec<Declared> {
    let mut modules = Vec::new();
    let (mut aws, mut test) = (false, false);
    for line in source.lines().map(str::trim) {
        if line.starts_with("#[cfg(") {
            aws |= line.contains("feature = \"aws\"");
            test |= line == "#[cfg(test)]";
            continue;
        }
        if line.starts_with("#[") || line.starts_with("//") || line.is_empty() {
            continue;
        }
        let declaration = line
            .strip_prefix("pub ")
            .or_else(|| line.strip_prefix("pub(crate) "))
            .unwrap_or(line);
        if let Some(name) = declaration.strip_prefix("mod ").and_then(|rest| rest.strip_suffix(';')) {
            modules.push(Declared {
                name: name.trim().to_owned(),
                aws,
                test,
            });
        }
        (aws, test) = (false, false);
    }
    modules
}

/// The file of module `name` declared in `parent` (`name.rs` or `name/mod.rs`).
fn module_file(parent: &Path, name: &str) -> PathBuf {
    let stem = parent.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let directory = parent.parent().expect("a source file's directory");
    let directory = if stem == "lib" || stem == "mod" {
        directory.to_owned()
    } else {
        directory.join(stem)
    };
    let flat = directory.join(format!("{name}.rs"));
    if flat.exists() {
        flat
    } else {
        directory.join(name).join("mod.rs")
    }
}

/// The library's pure core: every source file reachable from `lib.rs`
/// through module declarations not behind the `aws` feature (nor `cfg(test)`),
/// each with its text up to its `#[cfg(test)]` part; and the names of the
/// top-level modules behind the `aws` feature.
fn pure_core() -> (Vec<(PathBuf, String)>, Vec<String>) {
    let lib = workspace_root().join("crates/lifeboat/src/lib.rs");
    let top = declared_modules(&std::fs::read_to_string(&lib).expect("read lib.rs"));
    let aws_modules = top.iter().filter(|m| m.aws).map(|m| m.name.clone()).collect();
    let mut files = Vec::new();
    let mut pending = vec![lib];
    while let Some(file) = pending.pop() {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        for module in declared_modules(&text) {
            if !module.aws && !module.test {
                pending.push(module_file(&file, &module.name));
            }
        }
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: Vec<&str> = code.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
        files.push((file, code.join("\n")));
    }
    (files, aws_modules)
}

/// The top-level modules a source names through `crate::`: `crate::a::b`
/// names `a`, `crate::{a, b::c}` names `a` and `b`.
fn crate_modules_named(code: &str) -> BTreeSet<String> {
    crate_paths_named(code)
        .iter()
        .map(|path| path.split("::").next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_librarys_pure_core_imports_no_aws() {
    let (files, aws_modules) = pure_core();
    assert!(files.len() > 5, "the pure core has modules: {}", files.len());
    assert!(
        !aws_modules.is_empty(),
        "lib.rs declares the aws modules behind the feature"
    );
    let mut breaches = Vec::new();
    for (file, code) in &files {
        for needle in ["aws_sdk", "aws_config", "aws_smithy", "aws_types", "tokio"] {
            if code.contains(needle) {
                breaches.push(format!("{} names {needle}", file.display()));
            }
        }
        for module in crate_modules_named(code) {
            if aws_modules.contains(&module) {
                breaches.push(format!(
                    "{} imports crate::{module}, behind the aws feature",
                    file.display()
                ));
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "the pure core reaches for AWS:\n{}",
        breaches.join("\n")
    );
}

#[test]
fn module_declarations_and_crate_imports_are_read() {
    let declared = declared_modules(
        "pub mod a;\n#[cfg(feature = \"aws\")]\npub mod b;\n#[cfg(test)]\nmod tests;\nmod c {\n}\npub(crate) mod d;\n",
    );
    let seen: Vec<(&str, bool, bool)> = declared.iter().map(|m| (m.name.as_str(), m.aws, m.test)).collect();
    assert_eq!(
        seen,
        [
            ("a", false, false),
            ("b", true, false),
            ("tests", false, true),
            ("d", false, false)
        ]
    );

    let named = crate_modules_named("use crate::a::X;\nuse crate::{b::{c, d}, e};\nlet x = crate::f::g();");
    assert_eq!(named, BTreeSet::from(["a", "b", "e", "f"].map(String::from)));
}

/// The library's wings, lowest first, as ARCHITECTURE.md draws them: each a
/// list of module paths under `crate::` (the longest path that matches a
/// file or an import decides its wing).
const WINGS: &[(&str, &[&str])] = &[
    (
        "pure core",
        &[
            "chunker",
            "crypto",
            "format",
            "ids",
            "pipeline",
            "pitr",
            "plan",
            "retention",
            "times",
            "db::url",
        ],
    ),
    (
        "plumbing",
        &[
            "alert",
            "audit",
            "aws",
            "catalog",
            "jobs",
            "keys",
            "storage",
            "plan::load",
        ],
    ),
    (
        "files",
        &["backup", "expire", "gc", "repo", "restore", "source", "verify"],
    ),
    (
        "databases",
        &["db", "consistency", "dump", "integrity", "salvage", "validate"],
    ),
    ("RDS", &["rds", "recovery", "snapshot", "status"]),
    ("DR", &["dr"]),
];

/// The wing (its index in [`WINGS`]) of a module path such as `db::url::X`.
fn wing_of(path: &str) -> Option<usize> {
    let segments: Vec<&str> = path.split("::").collect();
    (1..=segments.len().min(2)).rev().find_map(|n| {
        let prefix = segments[..n].join("::");
        WINGS.iter().position(|(_, modules)| modules.contains(&prefix.as_str()))
    })
}

/// The module paths a source names through `crate::`, a top-level group
/// (`crate::{a::b, c}`) expanded into its items.
fn crate_paths_named(code: &str) -> Vec<String> {
    let path = |text: &str| -> String {
        text.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect::<String>()
            .trim_end_matches(':')
            .to_owned()
    };
    let mut paths = Vec::new();
    for (at, found) in code.match_indices("crate::") {
        let rest = &code[at + found.len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let mut depth = 0;
                let mut item_start = true;
                for (at, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        c if item_start && !c.is_whitespace() => {
                            paths.push(path(&group[at..]));
                            item_start = false;
                        }
                        _ => {}
                    }
                }
            }
            None => paths.push(path(rest)),
        }
    }
    paths
}

/// Every product source file of the library, as (`a::b` module path, code
/// without comments and without its `#[cfg(test)]` part).
fn library_sources() -> Vec<(String, String)> {
    let src = workspace_root().join("crates/lifeboat/src");
    let mut sources = Vec::new();
    let mut pending = vec![src.clone()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).expect("read the library's sources") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(&src).expect("under src").with_extension("");
            let module: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .filter(|c| c != "mod")
                .collect();
            if path.extension().is_none_or(|e| e != "rs") || module.iter().any(|c| c == "tests") || module == ["lib"] {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read a source file");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let code: Vec<&str> = code.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
            sources.push((module.join("::"), code.join("\n")));
        }
    }
    sources
}

#[test]
fn the_librarys_wings_import_only_downward() {
    let sources = library_sources();
    assert!(sources.len() > 50, "the library has its sources: {}", sources.len());
    let mut breaches = Vec::new();
    for (module, code) in &sources {
        let Some(wing) = wing_of(module) else {
            breaches.push(format!(
                "crate::{module} is in no wing: add it to WINGS and to ARCHITECTURE.md"
            ));
            continue;
        };
        for path in crate_paths_named(code) {
            match wing_of(&path) {
                Some(target) if target > wing => breaches.push(format!(
                    "crate::{module} ({}) imports crate::{path} ({}), a higher wing",
                    WINGS[wing].0, WINGS[target].0
                )),
                Some(_) => {}
                None => breaches.push(format!("crate::{module} names crate::{path}, in no wing")),
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "the wings' order is broken:\n{}",
        breaches.join("\n")
    );
}

#[test]
fn wings_are_found_for_paths_and_groups() {
    assert_eq!(wing_of("db::url::DatabaseUrl"), Some(0));
    assert_eq!(wing_of("db::client"), Some(3));
    assert_eq!(wing_of("plan::load::PlanSource"), Some(1));
    assert_eq!(wing_of("plan::Plan"), Some(0));
    assert_eq!(wing_of("dr::plan"), Some(5));
    assert_eq!(wing_of("nowhere"), None);
    assert_eq!(
        crate_paths_named(
            "use crate::db::url::X;\nuse crate::{plan::load::{a, b}, times};\nlet n = crate::times::now();"
        ),
        ["db::url::X", "plan::load", "times", "times::now"].map(String::from)
    );
}
