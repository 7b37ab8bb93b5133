//! Repository invariants as plain tests, in the style of rust-analyzer's `xtask/tests/tidy.rs`:
//! things nobody would notice drifting until a maintainer trips over them
//! (docs/ARCHITECTURE.md §9, §10).
//!
//! - no reference to a file or section the repository does not have;
//! - no absolute path of one machine in sources, tests, benches, scripts and workflows;
//! - every Rust file opens with a `//!` doc;
//! - no module imports another that imports it back, directly or through a loop;
//! - the release workflow's checkout depth agrees with how the release reads git history;
//! - docs/ARCHITECTURE.md §2's crate table lists each crate's real workspace dependencies.
//! - each crate's integration tests link as one binary (§10).
//!
//! The README's command synopses are checked against the real clap trees by each binary's own
//! unit tests (`xtask/src/readme_synopsis.rs`). Every checker here is a pure function over text,
//! tested on planted violations below, so none of them can pass by never looking.

use crate::root;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The repository's files (tracked, or new and not ignored), relative to the root, that exist.
fn repo_files() -> Vec<String> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root())
        .output()
        .expect("running git ls-files (tidy needs the git checkout)");
    assert!(out.status.success(), "git ls-files failed");
    let mut files: Vec<String> = String::from_utf8(out.stdout)
        .expect("UTF-8 file names")
        .split('\0')
        .filter(|f| !f.is_empty() && root().join(f).is_file())
        .map(str::to_owned)
        .collect();
    files.sort();
    files.dedup();
    files
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_default()
}

/// Files whose text is ours to keep tidy: not data (seed, testdata, fuzz seeds), not vendored,
/// and not this file, whose planted violations test the checkers.
fn is_source(rel: &str) -> bool {
    !(rel == "xtask/tests/xtask/tidy.rs"
        || rel.starts_with("seed/")
        || rel.starts_with("testdata/")
        || rel.starts_with("fuzz/seeds/")
        || rel.starts_with("crates/aoc-sigstore/tests/data/")
        || rel.ends_with("package-lock.json")
        || rel.ends_with("Cargo.lock")
        || rel == "xtask/third-party/actionlint.cjs")
}

/// Fails with every finding, one per line.
fn assert_none(what: &str, findings: Vec<String>) {
    assert!(
        findings.is_empty(),
        "{what}:\n  {}\n",
        findings.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Dangling references

/// What a file can refer to: the repository's files and directories.
struct Repo {
    files: BTreeSet<String>,
    dirs: BTreeSet<String>,
    basenames: BTreeSet<String>,
    /// Top-level names (`crates`, `xtask`, `docs`, ...): a token starting with one is a path.
    top: BTreeSet<String>,
    /// Section numbers of docs/ARCHITECTURE.md (`3`, `3.1`, ...).
    sections: BTreeSet<String>,
}

impl Repo {
    fn new(files: &[String], architecture: &str) -> Repo {
        let mut dirs = BTreeSet::new();
        for f in files {
            let mut p = Path::new(f);
            while let Some(parent) = p.parent() {
                if parent.as_os_str().is_empty() {
                    break;
                }
                dirs.insert(parent.to_string_lossy().into_owned());
                p = parent;
            }
        }
        let top = files
            .iter()
            .map(|f| f.split('/').next().unwrap().to_owned())
            .collect();
        let basenames = files
            .iter()
            .map(|f| f.rsplit('/').next().unwrap().to_owned())
            .collect();
        Repo {
            files: files.iter().cloned().collect(),
            dirs,
            basenames,
            top,
            sections: sections(architecture),
        }
    }

    /// A file, a directory, or the prefix of file names (`tools/cosign/cosign.dev` for the
    /// `.key` and `.pub` of a pair).
    fn exists(&self, rel: &str) -> bool {
        let rel = rel.trim_end_matches('/');
        rel.is_empty()
            || self.files.contains(rel)
            || self.dirs.contains(rel)
            || self
                .files
                .range(format!("{rel}.")..)
                .next()
                .is_some_and(|f| f.starts_with(&format!("{rel}.")))
    }
}

/// `## 3. Data flow` and `### 3.1 Inputs` give `3` and `3.1`.
fn sections(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter(|l| l.starts_with("## ") || l.starts_with("### "))
        .filter_map(|l| l.trim_start_matches('#').split_whitespace().next())
        .map(|n| n.trim_end_matches('.').to_owned())
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
        .collect()
}

/// The part of a file that talks about other files: comments of Rust sources (code is checked
/// by the compiler and the tests), everything else whole.
fn prose(rel: &str, text: &str) -> String {
    if !rel.ends_with(".rs") {
        return text.to_owned();
    }
    // Code lines stay as empty lines, so findings keep their line numbers.
    text.lines()
        .map(|l| l.find("//").map_or("", |i| &l[i..]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Removes `scheme://...` URLs: their paths are another host's.
fn strip_urls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("://") {
        let scheme_start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'))
            .map_or(0, |j| j + 1);
        out.push_str(&rest[..scheme_start]);
        let after = &rest[i + 3..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '>' | '`' | '"' | '\''))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Files the repository names on purpose before they exist, each with its reason.
const DANGLING_ALLOWED: &[(&str, &str)] = &[(
    "tools/cosign/cosign.pub",
    "the production public key, committed by whoever holds the production key; a production \
     release refuses to run until it is there, and the docs say how to add it",
)];

/// Every reference in `text` (the prose of the file `rel`) to a repository file that does not
/// exist, and every `docs/ARCHITECTURE.md §N` naming a section it does not have.
fn dangling(rel: &str, text: &str, repo: &Repo) -> Vec<String> {
    let mut found = Vec::new();
    let here = Path::new(rel).parent().unwrap_or(Path::new(""));
    // The nearest directory holding a Cargo.toml: `src/x.rs` in a crate's README means its own.
    let krate = here.ancestors().find(|d| {
        repo.files
            .contains(&d.join("Cargo.toml").to_string_lossy().into_owned())
    });
    for (n, line) in text.lines().enumerate() {
        let line = strip_urls(line);
        let at = |what: String| format!("{rel}:{}: {what}", n + 1);
        for token in line.split(|c: char| {
            c.is_whitespace()
                || matches!(
                    c,
                    '`' | '"' | '\'' | '(' | ')' | '[' | ']' | ',' | ';' | ':' | '|' | '='
                )
        }) {
            if token.contains("...")
                || token.contains(['<', '>', '*', '{', '}', '$', '%', '\\', '#', '@'])
            {
                continue;
            }
            let token = token.trim_end_matches(['.', '!', '?']);
            if token.is_empty() {
                continue;
            }
            if let Some(path) = path_reference(token, repo) {
                let candidates = [
                    Some(PathBuf::from(&path)),
                    Some(here.join(&path)),
                    krate.map(|k| k.join(&path)),
                ];
                let normalized: Vec<Option<String>> =
                    candidates.iter().flatten().map(|c| normalize(c)).collect();
                // `../shared/corpora` in prose leaves the repository from the root: an input
                // beside the workspace, not a file of the repository (links are checked below).
                let outside = path.starts_with("../") && normalized.iter().any(Option::is_none);
                let ok = normalized.iter().flatten().any(|n| {
                    repo.exists(n) || DANGLING_ALLOWED.iter().any(|(a, _)| *a == n.as_str())
                });
                if !outside && !ok {
                    found.push(at(format!("`{token}` does not exist in the repository")));
                }
            } else if is_bare_file_name(token) && !repo.basenames.contains(token) {
                found.push(at(format!(
                    "`{token}`: no file of that name in the repository"
                )));
            }
        }
        found.extend(section_citations(&line, repo).into_iter().map(at));
        // Markdown links are relative to the file that holds them, and nothing else.
        if rel.ends_with(".md") {
            for target in line.split("](").skip(1).filter_map(|t| t.split(')').next()) {
                let target = target.split('#').next().unwrap_or("");
                if target.is_empty() || target.contains(['<', '*', '$', ' ']) {
                    continue;
                }
                let resolved = normalize(&here.join(target));
                if !resolved.as_deref().is_some_and(|r| repo.exists(r)) {
                    found.push(at(format!(
                        "link `{target}` leads to no file of the repository"
                    )));
                }
            }
        }
    }
    found
}

/// A token that names a path inside the repository: it starts with a top-level name
/// (`crates/...`, `docs/ARCHITECTURE.md`, `.ci/run`) or with `./` / `../`.
fn path_reference(token: &str, repo: &Repo) -> Option<String> {
    let t = token.strip_prefix("./").unwrap_or(token);
    if t.starts_with("../") {
        return Some(t.to_owned());
    }
    let first = t.split('/').next()?;
    let last = t.trim_end_matches('/').rsplit('/').next()?;
    // Placeholders (`fuzz/artifacts/TARGET/crash-...`) and rates (`20k docs/s`) are no paths.
    let placeholder = t.split('/').any(|c| {
        c.len() > 1
            && c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
            && !repo.top.contains(c)
    });
    (t.contains('/')
        && repo.top.contains(first)
        // Build output (`target/...`, `fuzz/target`) is no repository file.
        && first != "out"
        && !t.split('/').any(|c| c == "target")
        && !t.contains("//")
        && last.len() > 1
        && !placeholder)
        .then(|| t.to_owned())
}

/// `sign.rs`, `DESIGN.md`, `load-dataset.sh`: a bare file name of a kind that only ever names a
/// repository file in this codebase.
fn is_bare_file_name(token: &str) -> bool {
    let Some((stem, ext)) = token.rsplit_once('.') else {
        return false;
    };
    matches!(ext, "rs" | "md" | "sh")
        && !stem.is_empty()
        && !token.contains('/')
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// `ARCHITECTURE.md §N` must name an existing section; `WORD §N` with WORD in capitals (a
/// document's name: `DESIGN §5`) must name a document the repository has. `RFC 1952 §2.2` and
/// the like (a number before the `§`) cite outside specifications and are not checked.
fn section_citations(line: &str, repo: &Repo) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in line.match_indices('§') {
        let number: String = line[i + '§'.len_utf8()..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let number = number.trim_end_matches('.');
        // The cited document: the nearest word before the `§` that is not itself a section
        // (`§3.3,`) or a conjunction, in `(docs/ARCHITECTURE.md §3.3, §8 and §9)`.
        let anchor = line[..i]
            .split(|c: char| c.is_whitespace() || matches!(c, '(' | '`' | '[' | ']'))
            .rev()
            .map(|w| w.trim_matches(|c: char| matches!(c, ',' | ';' | ':' | '–' | '-')))
            .find(|w| !(w.is_empty() || w.starts_with('§') || *w == "and" || *w == "or"))
            .unwrap_or("");
        if anchor.ends_with("ARCHITECTURE.md") {
            if !number.is_empty() && !repo.sections.contains(number) {
                found.push(format!("docs/ARCHITECTURE.md has no section §{number}"));
            }
            continue;
        }
        let doc = anchor.trim_end_matches(".md");
        if doc.len() > 1
            && doc.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
            && !repo.basenames.contains(&format!("{doc}.md"))
        {
            found.push(format!(
                "`{anchor} §{number}` cites {doc}.md, which the repository does not have"
            ));
        }
    }
    found
}

/// `a/b/../c` → `a/c`; `None` when the path leaves the repository (`../shared/...` is outside it
/// on purpose: those are inputs, not files of the repository).
fn normalize(p: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

#[test]
fn no_reference_to_a_missing_file_or_section() {
    let files = repo_files();
    let repo = Repo::new(&files, &read("docs/ARCHITECTURE.md"));
    assert!(
        !repo.sections.is_empty(),
        "docs/ARCHITECTURE.md has no numbered sections"
    );
    let mut found = Vec::new();
    for rel in files.iter().filter(|f| is_source(f)) {
        let checked = [".rs", ".md", ".sh", ".yml", ".yaml", ".toml", ".py", ".mjs"]
            .iter()
            .any(|e| rel.ends_with(e))
            || rel == ".ci/run";
        if checked {
            found.extend(dangling(rel, &prose(rel, &read(rel)), &repo));
        }
    }
    assert_none("references to files or sections that do not exist", found);
}

#[cfg(test)]
fn planted_repo() -> Repo {
    let files: Vec<String> = [
        "README.md",
        "docs/ARCHITECTURE.md",
        "crates/aoc-archive/Cargo.toml",
        "crates/aoc-archive/src/lib.rs",
        "crates/aoc-archive/README.md",
        "xtask/src/release.rs",
        "scripts/fuzz.sh",
        ".ci/run",
    ]
    .map(String::from)
    .to_vec();
    Repo::new(&files, "# A\n## 1. One\n### 1.2 Sub\n## 2. Two\n")
}

#[test]
fn the_reference_checker_finds_planted_dangling_references() {
    let repo = planted_repo();
    let check = |rel: &str, text: &str| dangling(rel, &prose(rel, text), &repo);
    // Each of these must be found.
    for (rel, text) in [
        (
            "xtask/src/main.rs",
            "//! Each task in its own module (`release.rs`, `sign.rs`).",
        ),
        (
            "xtask/src/main.rs",
            "// see crates/aoc-archive/src/missing.rs for why",
        ),
        ("README.md", "as [the design](docs/DESIGN.md) says"),
        (
            "crates/aoc-archive/src/lib.rs",
            "//! the model of DESIGN.md §3",
        ),
        (
            "crates/aoc-archive/src/lib.rs",
            "//! the model of DESIGN §3",
        ),
        (
            "crates/aoc-archive/src/lib.rs",
            "//! (docs/ARCHITECTURE.md §7)",
        ),
        ("crates/aoc-archive/src/lib.rs", "//! see xtask/src/sign.rs"),
        (
            "crates/aoc-archive/src/lib.rs",
            "//! (docs/ARCHITECTURE.md §1.2, §1.3)",
        ),
        (
            "crates/aoc-archive/README.md",
            "see [the root](../../MISSING.md)",
        ),
        (
            "scripts/fuzz.sh",
            "cargo fuzz run --fuzz-dir fuzz scripts/nope.sh",
        ),
    ] {
        assert!(!check(rel, text).is_empty(), "not found in {rel}: {text}");
    }
    // None of these is a finding.
    for (rel, text) in [
        (
            "xtask/src/main.rs",
            "//! See `release.rs` and scripts/fuzz.sh and .ci/run.",
        ),
        (
            "xtask/src/main.rs",
            "let s = \"crates/nope.rs\"; // code is the compiler's",
        ),
        (
            "README.md",
            "https://github.com/x/y/blob/main/crates/nope.rs and crates/aoc-archive/",
        ),
        (
            "README.md",
            "`data/<tenant>/<vendor>.ndjson`, out/aoc/kit.tar, target/third-party/x.sh",
        ),
        (
            "README.md",
            "fuzz/artifacts/<target>/ and fuzz/corpus/$target",
        ),
        (
            "crates/aoc-archive/README.md",
            "[lib](src/lib.rs), [root](../../README.md), ../shared/corpora",
        ),
        (
            "crates/aoc-archive/src/lib.rs",
            "// AOC_CORPORA (default ../shared/corpora); 20k docs/s",
        ),
        (
            "README.md",
            "replay fuzz/artifacts/TARGET/crash-... with scripts/fuzz.sh",
        ),
        ("README.md", "keygen -- crates/aoc-archive/src/lib"),
        (
            "crates/aoc-archive/src/lib.rs",
            "//! (docs/ARCHITECTURE.md §1.2, §2) and RFC 1952 §2.2",
        ),
        (
            "crates/aoc-archive/src/lib.rs",
            "//! reasons in README §Dependencies",
        ),
    ] {
        assert_eq!(
            check(rel, text),
            Vec::<String>::new(),
            "false positive in {rel}: {text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Absolute paths

/// Roots that only ever name one machine's files: a home, a workspace, a scratch directory.
const MACHINE_ROOTS: &[&str] = &[
    "/home/", "/work/", "/root/", "/Users/", "/tmp/", "/farm/", "/mnt/", "/media/",
];

/// Accepted absolute paths, each with its reason: (file, the text, why).
const ABSOLUTE_ALLOWED: &[(&str, &str, &str)] = &[
    (
        "scripts/pg-test-cluster.sh",
        "/tmp/aoc-pg-test",
        "default of AOC_PG_DIR, which overrides it: the cluster's directory must be one the \
         `postgres` user can enter, which a workspace under root's home is not",
    ),
    (
        "xtask/src/rehearsal/tests.rs",
        "/tmp/x.db",
        "inside `sqlite:///tmp/x.db`, a URL handed to redact() to show it is left alone; \
         nothing opens it",
    ),
];

/// Absolute machine paths in `text`: a [`MACHINE_ROOTS`] entry not preceded by a path
/// character (so `target/tmp/` is relative), or a Windows drive root (`C:\`).
fn absolute_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for root in MACHINE_ROOTS {
            for (i, _) in line.match_indices(root) {
                let before = line[..i].chars().next_back();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || "_.~$}".contains(c)) {
                    continue;
                }
                let end = line[i..]
                    .find(|c: char| c.is_whitespace() || "\"'`),;".contains(c))
                    .map_or(line.len(), |e| i + e);
                found.push((n + 1, line[i..end].to_owned()));
            }
        }
        let bytes = line.as_bytes();
        for i in 0..bytes.len().saturating_sub(2) {
            let drive = bytes[i].is_ascii_alphabetic()
                && bytes[i + 1] == b':'
                && bytes[i + 2] == b'\\'
                && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
            if drive {
                found.push((n + 1, line[i..(i + 12).min(line.len())].to_owned()));
            }
        }
    }
    found
}

#[test]
fn no_absolute_machine_path_in_sources_scripts_or_workflows() {
    let mut found = Vec::new();
    for rel in repo_files().iter().filter(|f| is_source(f)) {
        let checked = [
            ".rs", ".sh", ".yml", ".yaml", ".toml", ".py", ".mjs", ".cjs",
        ]
        .iter()
        .any(|e| rel.ends_with(e))
            || rel == ".ci/run";
        if !checked {
            continue;
        }
        let text = without_rust_comments(rel, &read(rel));
        for (line, path) in absolute_paths(&text) {
            let allowed = ABSOLUTE_ALLOWED
                .iter()
                .any(|(f, p, _)| f == rel && path.starts_with(p));
            if !allowed {
                found.push(format!(
                    "{rel}:{line}: `{path}`: take it from an argument, an environment variable or \
                     a path relative to the workspace"
                ));
            }
        }
    }
    assert_none("absolute paths of one machine", found);
}

/// Rust sources without their `//` comments (line numbers kept): a path in prose describing a
/// scenario (`sh /media/kit/verify-kit.sh`) is no input; string literals and code stay.
fn without_rust_comments(rel: &str, text: &str) -> String {
    if !rel.ends_with(".rs") {
        return text.to_owned();
    }
    text.lines()
        .map(|l| {
            let comment = l
                .match_indices("//")
                .find(|(i, _)| *i == 0 || l[..*i].ends_with(char::is_whitespace));
            comment.map_or(l, |(i, _)| &l[..i])
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_absolute_path_checker_finds_planted_paths() {
    let rust = "/// sh /media/kit/verify-kit.sh\nlet p = \"/home/a/x\"; // or /home/b\n";
    let code = without_rust_comments("a.rs", rust);
    assert_eq!(absolute_paths(&code), vec![(2, "/home/a/x".to_owned())]);
    assert_eq!(
        absolute_paths(&without_rust_comments("a.sh", rust)).len(),
        3
    );
    for planted in [
        r#"const CORPUS: &str = "/work/shared/corpora/osv-rustsec";"#,
        r#"fs::read("/home/alice/kit.tar.gz")"#,
        "DIR=/tmp/aoc",
        r#"let u = "sqlite:///root/x.db";"#,
        r#"let p = r"C:\Users\bob\kit";"#,
        "    path: /Users/bob/src",
    ] {
        assert_eq!(absolute_paths(planted).len(), 1, "not found: {planted}");
    }
    for fine in [
        "/usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1",
        r#"std::fs::read_to_string("/proc/self/status")"#,
        "target/tmp/x and out/home/y and ~/home/ and $TMPDIR/tmp/",
        "ArchiveError::AbsolutePath { entry } if entry == \"/etc/passwd\"",
        "https://example.com/home/page",
    ] {
        assert_eq!(absolute_paths(fine), Vec::new(), "false positive: {fine}");
    }
}

// ---------------------------------------------------------------------------------------------
// `//!` docs

/// Rust files whose first line is not a `//!` doc comment.
fn missing_module_doc<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    files
        .into_iter()
        .filter(|(_, text)| !text.lines().next().is_some_and(|l| l.starts_with("//!")))
        .map(|(rel, _)| format!("{rel}: open it with a `//!` line saying what the file is for"))
        .collect()
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let files: Vec<(String, String)> = repo_files()
        .into_iter()
        .filter(|f| f.ends_with(".rs") && is_source(f))
        .map(|f| {
            let text = read(&f);
            (f, text)
        })
        .collect();
    assert!(files.len() > 50, "only {} Rust files found", files.len());
    assert_none(
        "Rust files without a module doc",
        missing_module_doc(files.iter().map(|(f, t)| (f.as_str(), t.as_str()))),
    );
}

#[test]
fn the_module_doc_checker_finds_a_planted_file() {
    let found = missing_module_doc([
        ("a.rs", "//! A.\nfn a() {}\n"),
        ("b.rs", "use super::*;\n"),
        ("c.rs", "/// Not a module doc.\nfn c() {}\n"),
        ("d.rs", ""),
    ]);
    assert_eq!(found.len(), 3, "{found:?}");
}

// ---------------------------------------------------------------------------------------------
// Import cycles

/// A module's path inside its crate (`publish::store`), from its file under `src/`; `None` for
/// files that are not modules of the crate's tree (`src/bin/*`, build scripts).
fn module_path(src_rel: &str) -> Option<String> {
    let p = src_rel.strip_suffix(".rs")?;
    let p = p.strip_suffix("/mod").unwrap_or(p);
    if p == "lib" || p == "main" {
        return Some(String::new());
    }
    (!p.starts_with("bin/")).then(|| p.replace('/', "::"))
}

/// Code without comments, string and char literals (a path inside a string is not an import).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'r'
            && matches!(b.get(i + 1), Some(b'"' | b'#'))
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
        {
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i += 3;
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            i += 2;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The modules `module` (in a crate whose modules are `known`) refers to: `crate::a::b`,
/// `super::x`, `self::x`, and `use x::...` / `x::f()` where `x` is one of its own child modules.
/// Each path resolves to the longest module prefix that exists. A reference to a module's own
/// descendant or ancestor by `mod` nesting is kept: `use super::Item` from a child is an edge to
/// the parent.
fn references_of(module: &str, code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let segs = |m: &str| -> Vec<String> {
        if m.is_empty() {
            Vec::new()
        } else {
            m.split("::").map(str::to_owned).collect()
        }
    };
    let here = segs(module);
    let mut out = BTreeSet::new();
    let bytes = code.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !(is_ident(bytes[i]) && (i == 0 || !(is_ident(bytes[i - 1]) || bytes[i - 1] == b':'))) {
            i += 1;
            continue;
        }
        // A path: ident(::ident)*, also through `use a::{b, c::d}` groups (first level).
        let mut j = i;
        let mut path: Vec<String> = Vec::new();
        loop {
            let start = j;
            while j < bytes.len() && is_ident(bytes[j]) {
                j += 1;
            }
            path.push(code[start..j].to_owned());
            if code[j..].starts_with("::")
                && code[j + 2..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            {
                j += 2;
            } else {
                break;
            }
        }
        let mut groups: Vec<Vec<String>> = vec![path.clone()];
        if code[j..].starts_with("::{") {
            let end = code[j..].find('}').map_or(code.len(), |e| j + e);
            for item in code[j + 3..end].split(',') {
                let item: Vec<String> = item
                    .trim()
                    .split("::")
                    .map(|s| s.split_whitespace().next().unwrap_or("").to_owned())
                    .filter(|s| !s.is_empty() && s != "{")
                    .collect();
                if !item.is_empty() {
                    groups.push(path.iter().cloned().chain(item).collect());
                }
            }
        }
        i = j.max(i + 1);
        for p in groups {
            if p.len() < 2 {
                continue;
            }
            let mut abs: Vec<String> = match p[0].as_str() {
                "crate" => Vec::new(),
                "self" => here.clone(),
                "super" => {
                    let mut h = here.clone();
                    let mut k = 0;
                    while p.get(k).is_some_and(|s| s == "super") {
                        h.pop();
                        k += 1;
                    }
                    let mut abs = h;
                    abs.extend(p[k..].iter().cloned());
                    resolve(&abs, known, &mut out, module);
                    continue;
                }
                first => {
                    let child = here
                        .iter()
                        .cloned()
                        .chain([first.to_owned()])
                        .collect::<Vec<_>>()
                        .join("::");
                    if !known.contains(&child) {
                        continue;
                    }
                    here.clone()
                }
            };
            let skip = usize::from(matches!(p[0].as_str(), "crate" | "self"));
            abs.extend(p[skip..].iter().cloned());
            resolve(&abs, known, &mut out, module);
        }
    }
    out
}

fn resolve(abs: &[String], known: &BTreeSet<String>, out: &mut BTreeSet<String>, from: &str) {
    for n in (0..=abs.len()).rev() {
        let m = abs[..n].join("::");
        if known.contains(&m) {
            if m != from {
                out.insert(m);
            }
            return;
        }
    }
}

/// Every import cycle among `graph`'s modules (strongly connected components of more than one),
/// each as `a -> b -> ... -> a` through real edges.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    // Tarjan's algorithm, iteration order fixed by the BTreeMap so messages are stable.
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        sccs: Vec<Vec<&'g str>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.graph.contains_key(w) {
                continue;
            }
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.push(w);
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                s.sccs.push(scc);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        sccs: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.sccs
        .iter()
        .map(|scc| {
            // A concrete loop: walk from the first member inside the component back to it.
            let members: BTreeSet<&str> = scc.iter().copied().collect();
            let start = scc[0];
            let mut path = vec![start];
            let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut seen = BTreeSet::from([start]);
            let mut last = start;
            'bfs: while let Some(v) = queue.pop_front() {
                for w in &graph[v] {
                    let w = w.as_str();
                    if w == start {
                        last = v;
                        break 'bfs;
                    }
                    if members.contains(w) && seen.insert(w) {
                        prev.insert(w, v);
                        queue.push_back(w);
                    }
                }
            }
            let mut back = vec![last];
            while let Some(&p) = prev.get(back.last().unwrap()) {
                back.push(p);
            }
            back.pop(); // `start`
            path.extend(back.into_iter().rev());
            path.push(start);
            let name = |m: &str| {
                if m.is_empty() {
                    "crate root".to_owned()
                } else {
                    m.to_owned()
                }
            };
            path.into_iter().map(name).collect::<Vec<_>>().join(" -> ")
        })
        .collect()
}

/// The module graph of one crate from its files under `src/`: (path under src, text).
///
/// A module's use of its own submodules is not an edge: it declares them and dispatches to them
/// (`main.rs` calling `backfill::run`), and they are part of it. Every other use is: a child
/// using its parent's items, siblings, cousins. So `store.rs` building `super::dir::DirStore`
/// while `dir.rs` implements `super::store::Store` is a cycle, and so is a child importing a
/// sibling that imports it back.
fn module_graph(files: &[(String, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let modules: Vec<(String, String)> = files
        .iter()
        .filter_map(|(rel, text)| Some((module_path(rel)?, code_only(text))))
        .collect();
    let known: BTreeSet<String> = modules.iter().map(|(m, _)| m.clone()).collect();
    modules
        .iter()
        .map(|(m, code)| {
            let inside = |t: &str| m.is_empty() || t.starts_with(&format!("{m}::"));
            let mut edges = BTreeSet::new();
            for t in references_of(m, code, &known) {
                // Using `a::inner` is using `a`, unless `a` also contains `m`.
                let mut target = t.as_str();
                loop {
                    let contains_m = target.is_empty() || m.starts_with(&format!("{target}::"));
                    if !inside(target) && !contains_m && target != m {
                        edges.insert(target.to_owned());
                    }
                    match target.rsplit_once("::") {
                        Some((parent, _)) => target = parent,
                        None if !target.is_empty() => target = "",
                        None => break,
                    }
                }
            }
            (m.clone(), edges)
        })
        .collect()
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let files = repo_files();
    let mut crates: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for rel in files.iter().filter(|f| f.ends_with(".rs") && is_source(f)) {
        if let Some((krate, under)) = rel.split_once("/src/") {
            crates
                .entry(krate.to_owned())
                .or_default()
                .push((under.to_owned(), read(rel)));
        }
    }
    assert!(
        crates.contains_key("xtask") && crates.len() >= 7,
        "crates found: {:?}",
        crates.keys()
    );
    let mut found = Vec::new();
    for (krate, files) in &crates {
        for cycle in cycles(&module_graph(files)) {
            found.push(format!("{krate}: {cycle}"));
        }
    }
    assert_none(
        "import cycles (move what both sides need into a module both import, or let the \
         module that chooses between implementations import them)",
        found,
    );
}

#[test]
fn the_cycle_checker_finds_planted_cycles() {
    let files = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    // The publish circle as it was: the trait's module built its implementations.
    let publish = files(&[
        ("main.rs", "mod publish;"),
        ("publish.rs", "mod dir; mod s3; mod store;\nuse store::Store;"),
        ("publish/store.rs", "pub trait Store {}\nfn open() { Box::new(super::dir::DirStore::new()); super::s3::S3Store::open(); }"),
        ("publish/dir.rs", "use super::store::{Store, Tag};"),
        ("publish/s3.rs", "use super::store::Store;\n// super::dir in a comment is no import\nconst X: &str = \"crate::main\";"),
    ]);
    let found = cycles(&module_graph(&publish));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("publish::dir") && found[0].contains("publish::store"),
        "{found:?}"
    );
    // Two modules importing each other through `crate::`, and a three-module loop.
    let sbom = files(&[
        ("main.rs", "mod sbom;"),
        ("sbom.rs", "mod features; mod graph;"),
        ("sbom/features.rs", "use crate::sbom::graph::Graph;"),
        (
            "sbom/graph.rs",
            "use crate::sbom::{features::Features, lock};",
        ),
        ("a.rs", "use crate::b::B;"),
        ("b.rs", "fn f() { crate::c::g() }"),
        ("c.rs", "use super::a;"),
    ]);
    let found = cycles(&module_graph(&sbom));
    assert_eq!(found.len(), 2, "{found:?}");
    // A parent dispatching to its children, which use its items: containment, not a cycle.
    let fine = files(&[
        ("lib.rs", "mod a; mod b; pub use a::A; pub struct Root;"),
        (
            "a.rs",
            "use crate::b::B; #[cfg(test)] mod tests { use super::*; }",
        ),
        ("b.rs", "pub struct B; fn f() -> crate::Root { todo!() }"),
        ("b/c.rs", "use super::B;"),
    ]);
    assert_eq!(cycles(&module_graph(&fine)), Vec::<String>::new());
    // ... but a child's sibling that uses the child's parent, which the child uses: a loop.
    let looped = files(&[
        ("lib.rs", "mod a; mod b;"),
        ("a.rs", "mod inner; use crate::b::B;"),
        ("a/inner.rs", "pub struct I;"),
        ("b.rs", "pub struct B; use crate::a::inner::I;"),
    ]);
    assert_eq!(cycles(&module_graph(&looped)), vec!["a -> b -> a"]);
    let fine = files(&[
        ("lib.rs", "mod a; mod b;"),
        ("a.rs", "use crate::b::B;"),
        ("b.rs", "pub struct B;"),
    ]);
    assert_eq!(cycles(&module_graph(&fine)), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// Checkout depth and history reads

/// The `fetch-depth` of the checkout in each job of a workflow that runs one of `tasks`
/// (`actions/checkout` clones one commit unless told `fetch-depth: 0`).
fn checkout_depths(workflow: &str, tasks: &[&str]) -> Vec<(String, u64)> {
    let mut jobs: Vec<(String, Vec<&str>)> = Vec::new();
    let mut in_jobs = false;
    for line in workflow.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            in_jobs = line.trim_end() == "jobs:";
            continue;
        }
        if !in_jobs {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 2 && line.trim_end().ends_with(':') && !line.trim().starts_with('#') {
            jobs.push((line.trim().trim_end_matches(':').to_owned(), Vec::new()));
        } else if let Some((_, body)) = jobs.last_mut() {
            body.push(line);
        }
    }
    jobs.into_iter()
        .filter(|(_, body)| {
            body.iter().any(|l| {
                tasks
                    .iter()
                    .any(|t| l.contains(&format!("cargo xtask {t}")))
            })
        })
        .map(|(name, body)| {
            let depth = body
                .iter()
                .filter_map(|l| l.trim().strip_prefix("fetch-depth:"))
                .filter_map(|v| v.trim().trim_matches(['"', '\'']).parse().ok())
                .next()
                .unwrap_or(1);
            (name, depth)
        })
        .collect()
}

/// Git commands in non-test code that read history beyond `HEAD` itself: `git log` with a
/// pathspec or without `-1`, `rev-list`, `blame`, `describe`, `merge-base`. In a clone of depth
/// N they see only N commits, so whatever they compute (a dataset's clock, say) differs from a
/// full clone's. `git log -1` of HEAD, `rev-parse`, `status`, `ls-files` read no history.
fn history_reads(text: &str) -> Vec<String> {
    let text = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("\"git ").filter(|&i| rest[..i].contains("cmd!(")) {
            let cmd_start = i + 1;
            let end = rest[cmd_start..]
                .find('"')
                .map_or(rest.len(), |e| cmd_start + e);
            let command = &rest[cmd_start..end];
            let words: Vec<&str> = command.split_whitespace().collect();
            let history = match words.get(1).copied() {
                Some("log") | Some("show") => {
                    let one = words
                        .iter()
                        .any(|w| matches!(*w, "-1" | "-n1" | "--max-count=1"));
                    !one || words.contains(&"--") || words.iter().any(|w| w.contains(".."))
                }
                Some("rev-list") | Some("blame") | Some("describe") | Some("merge-base") => true,
                _ => false,
            };
            if history {
                found.push(format!("line {}: `{command}`", n + 1));
            }
            rest = &rest[end.min(rest.len())..];
            if rest.starts_with('"') {
                rest = &rest[1..];
            }
        }
    }
    found
}

#[test]
fn a_shallow_release_checkout_needs_a_release_that_reads_no_history() {
    let workflow_rel = ".gitea/workflows/aoc-backfill-release.yml";
    let workflow = read(workflow_rel);
    let depths = checkout_depths(&workflow, &["aoc-release", "aoc-rehearsal"]);
    assert!(
        !depths.is_empty(),
        "{workflow_rel}: no job runs `cargo xtask aoc-release`; update this test with the workflow"
    );
    let shallow: Vec<String> = depths
        .iter()
        .filter(|(_, d)| *d != 0)
        .map(|(job, d)| format!("job `{job}` (fetch-depth {d})"))
        .collect();
    if shallow.is_empty() {
        return;
    }
    // The release and everything it calls live in xtask/src (the dataset's definition included).
    let mut found = Vec::new();
    for rel in repo_files()
        .iter()
        .filter(|f| f.starts_with("xtask/src/") && f.ends_with(".rs") && !f.ends_with("tests.rs"))
    {
        for read in history_reads(&read(rel)) {
            found.push(format!("{rel}: {read}"));
        }
    }
    assert_none(
        &format!(
            "{workflow_rel} checks out shallow ({}), but the release reads git history, so the \
             dataset (or whatever it computes) would differ from a full clone's: take it from a \
             committed file, or set fetch-depth: 0",
            shallow.join(", ")
        ),
        found,
    );
}

#[test]
fn the_depth_checker_reads_depths_and_finds_history_reads() {
    let workflow = "on: push\njobs:\n  test:\n    steps:\n      - uses: actions/checkout@v4\n      \
                    - run: cargo xtask test\n  release:\n    steps:\n      - uses: actions/checkout@v4\n        \
                    with:\n          fetch-depth: 1\n      - run: cargo xtask aoc-release --out out/aoc\n  \
                    rehearse:\n    steps:\n      - uses: actions/checkout@v4\n        with:\n          \
                    fetch-depth: 0\n      - run: cargo xtask aoc-rehearsal\n  other:\n    steps:\n      \
                    - uses: actions/checkout@v4\n      - run: cargo xtask aoc-release\n";
    assert_eq!(
        checkout_depths(workflow, &["aoc-release", "aoc-rehearsal"]),
        vec![
            ("release".into(), 1),
            ("rehearse".into(), 0),
            ("other".into(), 1)
        ]
    );
    let code = r#"
        let t = cmd!(sh, "git log -1 --format=%ct").read()?;
        let d = cmd!(sh, "git log -1 --format=%ct -- {inputs...}").read()?;
        let c = cmd!(sh, "git rev-parse HEAD").read()?;
        let n = cmd!(sh, "git rev-list --count HEAD").read()?;
        // cmd!(sh, "git log -- seed") in a comment
        #[cfg(test)]
        mod tests { fn f() { cmd!(sh, "git log --oneline").run(); } }
    "#;
    let found = history_reads(code);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].contains("-- {inputs...}") && found[1].contains("rev-list"),
        "{found:?}"
    );
}

// ---- docs/ARCHITECTURE.md §2: the crate table matches `cargo metadata` -------------------------

/// Crate directory → the workspace crates it depends on, short names (`aoc-` dropped).
type CrateDeps = BTreeMap<String, BTreeSet<String>>;

/// The crate table of `docs/ARCHITECTURE.md` §2: each row's directory (`crates/aoc-kit`,
/// `xtask`, `fuzz`) and its "depends on" cell (`archive, sigstore`; `—` for none). A row that
/// does not parse is an error naming it.
fn crate_table(architecture: &str) -> Result<CrateDeps, String> {
    let section = architecture
        .split("\n## ")
        .find(|s| s.starts_with("2. "))
        .ok_or("docs/ARCHITECTURE.md has no section 2")?;
    let mut table = CrateDeps::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        let [dir, _job, deps] = cells[..] else {
            return Err(format!("a crate row without three cells: {row}"));
        };
        let dir = dir.trim_matches('`').trim_end_matches('/').to_owned();
        let deps: BTreeSet<String> = match deps {
            "—" => BTreeSet::new(),
            list => list.split(", ").map(str::to_owned).collect(),
        };
        if let Some(bad) = deps
            .iter()
            .find(|d| d.is_empty() || !d.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        {
            return Err(format!("{dir}: {bad:?} is not a crate's short name"));
        }
        if table.insert(dir.clone(), deps).is_some() {
            return Err(format!("{dir} has two rows"));
        }
    }
    Ok(table)
}

/// The normal (not dev, not build) path dependencies of every package in `cargo metadata
/// --no-deps` output, keyed by the package's directory relative to `root`.
fn metadata_deps(metadata: &serde_json::Value, root: &Path) -> CrateDeps {
    let mut out = CrateDeps::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest
            .parent()
            .and_then(|d| d.strip_prefix(root).ok())
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let deps = package["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].is_null() && d["path"].is_string())
            .filter_map(|d| d["name"].as_str())
            .map(|name| name.strip_prefix("aoc-").unwrap_or(name).to_owned())
            .collect();
        out.insert(dir, deps);
    }
    out
}

/// Every difference between the documented table and the real dependencies.
fn table_drift(table: &CrateDeps, real: &CrateDeps) -> Vec<String> {
    let mut found = Vec::new();
    for (dir, deps) in real {
        let Some(listed) = table.get(dir) else {
            found.push(format!("{dir} is a crate, but has no row in the table"));
            continue;
        };
        for missing in deps.difference(listed) {
            found.push(format!(
                "{dir} depends on {missing}, which its row does not list"
            ));
        }
        for extra in listed.difference(deps) {
            found.push(format!(
                "{dir}'s row lists {extra}, which it does not depend on"
            ));
        }
    }
    for dir in table.keys().filter(|d| !real.contains_key(*d)) {
        found.push(format!("the table has a row for {dir}, which is no crate"));
    }
    found
}

fn cargo_metadata(manifest: &str) -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(root().join(manifest))
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata --manifest-path {manifest}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// The fuzz workspace's committed lock file holds every dependency its crates declare: a
/// workspace crate that gains a dependency needs `fuzz/Cargo.lock` updated too, or the fuzz build
/// rewrites it in CI's clone.
#[test]
fn the_fuzz_lock_file_is_current() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .arg("--manifest-path")
        .arg(root().join("fuzz/Cargo.toml"))
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "fuzz/Cargo.lock is out of date (run `cargo metadata --offline --manifest-path \
         fuzz/Cargo.toml` and commit it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The table lists, for every crate of the workspace and of `fuzz/` (a workspace of its own),
/// exactly the workspace crates among its normal dependencies: dev-dependencies (aoc-testkit
/// everywhere, aoc-dataset in aoc-ingest's tests) are not listed.
#[test]
fn the_architecture_crate_table_matches_cargo_metadata() {
    let table = crate_table(&read("docs/ARCHITECTURE.md")).unwrap();
    // The root is the one `cargo metadata` prints paths under (symlinks resolved).
    let root = root().canonicalize().unwrap();
    let mut real = metadata_deps(&cargo_metadata("Cargo.toml"), &root);
    real.extend(metadata_deps(&cargo_metadata("fuzz/Cargo.toml"), &root));
    assert!(
        real.contains_key("xtask") && real.contains_key("fuzz"),
        "{real:?}"
    );
    assert_none(
        "drift between docs/ARCHITECTURE.md §2's crate table and cargo metadata",
        table_drift(&table, &real),
    );
}

#[test]
fn the_crate_table_checker_finds_planted_drift() {
    let doc = "# A\n\n## 1. One\n\n| `crates/aoc-x` | not this table | y |\n\n\
               ## 2. Crates\n\n| crate | its one job | depends on |\n| --- | --- | --- |\n\
               | `crates/aoc-contract` | the contract | — |\n\
               | `crates/aoc-cli` | stella | contract, archive |\n\
               | `crates/aoc-gone` | removed | contract |\n\
               | `xtask/` | tasks | contract |\n\n## 3. Next\n";
    let table = crate_table(doc).unwrap();
    assert_eq!(table.len(), 4, "{table:?}");
    assert_eq!(table["xtask"], BTreeSet::from(["contract".to_owned()]));
    let metadata = serde_json::json!({"packages": [
        {"manifest_path": "/r/crates/aoc-contract/Cargo.toml", "dependencies": [
            {"name": "serde", "kind": null},
        ]},
        {"manifest_path": "/r/crates/aoc-cli/Cargo.toml", "dependencies": [
            {"name": "aoc-contract", "kind": null, "path": "/r/crates/aoc-contract"},
            {"name": "aoc-term", "kind": null, "path": "/r/crates/aoc-term"},
            {"name": "aoc-archive", "kind": "dev", "path": "/r/crates/aoc-archive"},
        ]},
        {"manifest_path": "/r/crates/aoc-term/Cargo.toml", "dependencies": []},
        {"manifest_path": "/r/xtask/Cargo.toml", "dependencies": [
            {"name": "aoc-contract", "kind": null, "path": "/r/crates/aoc-contract"},
        ]},
    ]});
    let real = metadata_deps(&metadata, Path::new("/r"));
    assert_eq!(real["crates/aoc-cli"].len(), 2, "{real:?}");
    assert_eq!(
        table_drift(&table, &real),
        [
            "crates/aoc-cli depends on term, which its row does not list",
            "crates/aoc-cli's row lists archive, which it does not depend on",
            "crates/aoc-term is a crate, but has no row in the table",
            "the table has a row for crates/aoc-gone, which is no crate",
        ]
    );
    assert!(crate_table("## 2. Crates\n| `a` | b |\n").is_err());
    assert!(crate_table("## 2. Crates\n| `a` | b | Contract |\n").is_err());
    assert!(crate_table("## 1. Only\n").is_err());
}

// ---------------------------------------------------------------------------------------------
// One integration test binary per crate

/// Crates whose `tests/` directory makes more than one binary: cargo links every top-level `.rs`
/// file there, and every `*/main.rs`, as a binary of its own (docs/ARCHITECTURE.md §10 wants one
/// per crate, its subjects as modules in `tests/<crate>/`).
fn extra_test_binaries(files: &[String]) -> Vec<String> {
    let mut binaries: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for rel in files {
        let (krate, rest) = match rel.strip_prefix("tests/") {
            Some(rest) => ("", rest),
            None => match rel.split_once("/tests/") {
                Some(split) => split,
                None => continue,
            },
        };
        let top_level = rest.ends_with(".rs") && !rest.contains('/');
        let main = rest.split('/').count() == 2 && rest.ends_with("/main.rs");
        if top_level || main {
            binaries.entry(krate).or_default().push(rest);
        }
    }
    binaries
        .into_iter()
        .filter(|(_, tests)| tests.len() > 1)
        .map(|(krate, tests)| {
            format!(
                "{krate}/tests/ links {} test binaries ({}): make them modules of one",
                tests.len(),
                tests.join(", ")
            )
        })
        .collect()
}

#[test]
fn each_crate_links_its_integration_tests_as_one_binary() {
    let files = repo_files();
    assert!(
        files.iter().any(|f| f == "xtask/tests/xtask/tidy.rs"),
        "this file is not where the check looks"
    );
    assert_none(
        "more than one integration test binary",
        extra_test_binaries(&files),
    );
}

#[test]
fn the_test_binary_checker_finds_planted_binaries() {
    let files: Vec<String> = [
        "crates/aoc-a/tests/a.rs",
        "crates/aoc-a/tests/a/one.rs",
        "crates/aoc-a/tests/a/two.rs",
        "crates/aoc-a/tests/data/x.json",
        "crates/aoc-b/tests/b.rs",
        "crates/aoc-b/tests/other.rs",
        "crates/aoc-c/tests/c/main.rs",
        "crates/aoc-c/tests/c/util.rs",
        "crates/aoc-c/tests/d/main.rs",
        "crates/aoc-c/src/tests.rs",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        extra_test_binaries(&files),
        [
            "crates/aoc-b/tests/ links 2 test binaries (b.rs, other.rs): make them modules of one",
            "crates/aoc-c/tests/ links 2 test binaries (c/main.rs, d/main.rs): make them modules \
             of one",
        ]
    );
}
