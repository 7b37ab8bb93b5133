//! The READMEs' command synopses, parsed by the real clap tree of the binary they describe
//! (docs/ARCHITECTURE.md §10). One file for the three binaries: `stella`, `aoc-dataset` and
//! `cargo xtask` each include it as a test module (`#[path]`) whose parent holds their `Cli`, so a
//! README that shows a flag, value or subcommand the binary does not have fails `cargo test`.
//!
//! A synopsis is a command in a fenced block (continued by a trailing `\` or an indented next
//! line; leading `VAR=value` assignments and `# comments` dropped) or an inline code span that
//! starts with the binary's name. Notation: `[...]` optional (nestable), `(A | B)` one of,
//! `X...` repeatable, `a|b` one of these values, `<x>` and capitals placeholders. Each synopsis
//! becomes concrete argument vectors: every optional part in and every optional part out, and
//! each `(A | B)` alternative in turn. Inline spans may name a command without its required
//! arguments (prose says "`stella aoc verify` reads..."): for them only a missing argument is
//! accepted.

use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

/// The workspace root: the nearest ancestor of this crate holding `Cargo.lock`.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .expect("a workspace root with Cargo.lock above the crate")
        .to_path_buf()
}

/// Every `README.md` of the repository (generated and third-party trees left out).
fn readmes(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() {
            if !matches!(&*name, "target" | "out" | "node_modules" | ".git") {
                readmes(&path, out);
            }
        } else if name == "README.md" {
            out.push(path);
        }
    }
}

/// Where a synopsis came from, which decides how strictly it is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Block,
    Inline,
}

/// The synopses of `program` (`stella`, `cargo xtask`) in a markdown text: (line, origin, the
/// words after the program name).
fn synopses(markdown: &str, program: &str) -> Vec<(usize, Origin, String)> {
    let mut found = Vec::new();
    let mut in_block = false;
    let mut command: Option<(usize, String)> = None;
    let mut prose = String::new();
    let mut prose_lines: Vec<usize> = Vec::new();
    let flush = |command: &mut Option<(usize, String)>, found: &mut Vec<_>| {
        if let Some((line, text)) = command.take() {
            if let Some(rest) = after_program(&text, program) {
                found.push((line, Origin::Block, rest));
            }
        }
    };
    for (n, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            flush(&mut command, &mut found);
            in_block = !in_block;
            continue;
        }
        if !in_block {
            prose.push_str(line);
            prose.push(' ');
            prose_lines.extend(std::iter::repeat_n(n + 1, line.len() + 1));
            continue;
        }
        let continued = command
            .as_ref()
            .is_some_and(|(_, t)| t.ends_with('\\') || line.starts_with([' ', '\t']));
        let text = strip_comment(line);
        match &mut command {
            Some((_, t)) if continued => {
                let t2 = t.trim_end_matches('\\').to_owned();
                *t = format!("{t2} {}", text.trim());
            }
            _ => {
                flush(&mut command, &mut found);
                command = Some((n + 1, text.trim().to_owned()));
            }
        }
    }
    flush(&mut command, &mut found);
    // Inline code spans of the prose, which may run over a line break.
    let mut rest = prose.as_str();
    let mut offset = 0;
    while let Some(open) = rest.find('`') {
        let Some(len) = rest[open + 1..].find('`') else {
            break;
        };
        let span = &rest[open + 1..open + 1 + len];
        if let Some(words) = after_program(span, program) {
            let line = prose_lines.get(offset + open).copied().unwrap_or(0);
            found.push((line, Origin::Inline, words));
        }
        offset += open + len + 2;
        rest = &rest[open + len + 2..];
    }
    found
}

/// `# comment` at the end of a shell line (a `#` after whitespace).
fn strip_comment(line: &str) -> &str {
    line.find(" #").map_or(line, |i| &line[..i])
}

/// The words after `program` when `text` runs it, after any `VAR=value` assignments.
fn after_program(text: &str, program: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let start = words
        .iter()
        .position(|w| !is_assignment(w))
        .unwrap_or(words.len());
    let rest = words[start..].join(" ");
    let tail = rest.strip_prefix(program)?;
    (tail.is_empty() || tail.starts_with(' ')).then(|| tail.trim().to_owned())
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// A synopsis as a tree: words, optional parts and choices between alternatives.
#[derive(Debug)]
enum Node {
    Word(String),
    Optional(Vec<Node>),
    /// One choice among alternatives; `id` numbers the choices of a synopsis in order.
    OneOf(usize, Vec<Vec<Node>>),
}

/// Parses the notation; `Err` names what is malformed (an unclosed bracket, say).
fn parse(words: &str) -> Result<Vec<Node>, String> {
    // Brackets become tokens of their own; ` | ` separates alternatives, `a|b` is one word.
    let mut tokens: Vec<String> = Vec::new();
    for word in words.split_whitespace() {
        let mut w = word;
        while let Some(r) = w.strip_prefix(['[', '(']) {
            tokens.push(w[..1].to_owned());
            w = r;
        }
        let mut closing = Vec::new();
        while let Some(r) = w.strip_suffix([']', ')']) {
            closing.push(w[w.len() - 1..].to_owned());
            w = r;
        }
        if !w.is_empty() {
            tokens.push(w.to_owned());
        }
        tokens.extend(closing.into_iter().rev());
    }
    let mut ids = 0;
    let mut pos = 0;
    let nodes = parse_seq(&tokens, &mut pos, &mut ids, None)?;
    if pos != tokens.len() {
        return Err(format!("unexpected `{}`", tokens[pos]));
    }
    Ok(nodes)
}

fn parse_seq(
    tokens: &[String],
    pos: &mut usize,
    ids: &mut usize,
    close: Option<&str>,
) -> Result<Vec<Node>, String> {
    let mut alternatives: Vec<Vec<Node>> = vec![Vec::new()];
    while *pos < tokens.len() {
        let t = tokens[*pos].as_str();
        *pos += 1;
        match t {
            "[" => {
                let inner = parse_seq(tokens, pos, ids, Some("]"))?;
                alternatives.last_mut().unwrap().push(Node::Optional(inner));
            }
            "(" => {
                let inner = parse_seq(tokens, pos, ids, Some(")"))?;
                alternatives.last_mut().unwrap().extend(inner);
            }
            "]" | ")" => {
                if Some(t) != close {
                    return Err(format!("unbalanced `{t}`"));
                }
                return Ok(finish(alternatives, ids));
            }
            "|" => alternatives.push(Vec::new()),
            word => alternatives
                .last_mut()
                .unwrap()
                .push(Node::Word(word.to_owned())),
        }
    }
    match close {
        Some(c) => Err(format!("`{c}` missing")),
        None => Ok(finish(alternatives, ids)),
    }
}

fn finish(mut alternatives: Vec<Vec<Node>>, ids: &mut usize) -> Vec<Node> {
    if alternatives.len() == 1 {
        return alternatives.pop().unwrap();
    }
    *ids += 1;
    vec![Node::OneOf(*ids - 1, alternatives)]
}

/// A concrete word for a synopsis word: the first of `a|b` values, `...` dropped, capitals
/// placeholders that stand for numbers given one.
fn concrete(word: &str) -> Option<String> {
    let w = word.trim_end_matches("...");
    let w = w.split('|').next().unwrap_or(w);
    if w.is_empty() {
        return None;
    }
    Some(match w {
        "N" | "SECONDS" => "1".to_owned(),
        other => other.to_owned(),
    })
}

fn render(nodes: &[Node], optional: bool, choice: (usize, usize), out: &mut Vec<String>) {
    for node in nodes {
        match node {
            Node::Word(w) => out.extend(concrete(w)),
            Node::Optional(inner) => {
                if optional {
                    render(inner, optional, choice, out);
                }
            }
            Node::OneOf(id, alternatives) => {
                let pick = if *id == choice.0 { choice.1 } else { 0 };
                render(
                    &alternatives[pick.min(alternatives.len() - 1)],
                    optional,
                    choice,
                    out,
                );
            }
        }
    }
}

fn choices(nodes: &[Node], out: &mut Vec<(usize, usize)>) {
    for node in nodes {
        match node {
            Node::Word(_) => {}
            Node::Optional(inner) => choices(inner, out),
            Node::OneOf(id, alternatives) => {
                out.extend((0..alternatives.len()).map(|k| (*id, k)));
                for a in alternatives {
                    choices(a, out);
                }
            }
        }
    }
}

/// The argument vectors a synopsis stands for (program name not included).
fn samples(words: &str) -> Result<Vec<Vec<String>>, String> {
    let nodes = parse(words)?;
    let mut picks = vec![(usize::MAX, 0)];
    choices(&nodes, &mut picks);
    let mut out: Vec<Vec<String>> = Vec::new();
    for optional in [true, false] {
        for &pick in &picks {
            let mut argv = Vec::new();
            render(&nodes, optional, pick, &mut argv);
            if !out.contains(&argv) {
                out.push(argv);
            }
        }
    }
    Ok(out)
}

/// Every synopsis of `program` in every README, parsed by `parse`; panics listing each one that
/// fails, and when there is none at all (the check would be looking at nothing).
fn check(program: &str, parse: impl Fn(&[String]) -> Result<(), clap::Error>) {
    let root = workspace_root();
    let mut files = Vec::new();
    readmes(&root, &mut files);
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let rel = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        for (line, origin, words) in synopses(&text, program) {
            let where_ = format!("{rel}:{line}: `{program} {words}`");
            let samples = match samples(&words) {
                Ok(s) => s,
                Err(e) => {
                    failures.push(format!("{where_}: malformed synopsis: {e}"));
                    continue;
                }
            };
            for args in samples {
                checked += 1;
                let argv: Vec<String> = std::iter::once(program.to_owned()).chain(args).collect();
                let Err(e) = parse(&argv) else { continue };
                let incomplete = |e: &clap::Error| {
                    matches!(
                        e.kind(),
                        ErrorKind::MissingRequiredArgument
                            | ErrorKind::MissingSubcommand
                            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                    )
                };
                // Prose names a flag without its value ("`stella aoc verify --store` falls back
                // to ..."): the flag must exist and take a value.
                let named_flag = || {
                    argv.last().is_some_and(|w| w.starts_with("--"))
                        && match parse(&[argv.clone(), vec!["VALUE".to_owned()]].concat()) {
                            Ok(()) => true,
                            Err(e) => incomplete(&e),
                        }
                };
                if !(origin == Origin::Inline && (incomplete(&e) || named_flag())) {
                    let msg = e.to_string();
                    let first = msg.lines().next().unwrap_or_default();
                    failures.push(format!("{where_}: {argv:?}: {first}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "README synopses the `{program}` command line refuses:\n  {}\n",
        failures.join("\n  ")
    );
    assert!(
        checked > 0,
        "no `{program}` synopsis found in any README.md under {}",
        root.display()
    );
}

#[test]
fn readme_synopses_are_accepted_by_the_command_line() {
    let program = super::Cli::command().get_name().to_owned();
    check(&program, |argv| super::Cli::try_parse_from(argv).map(drop));
}

#[test]
fn the_command_line_definition_is_consistent() {
    super::Cli::command().debug_assert();
}

#[test]
fn synopsis_notation_expands_to_argument_vectors() {
    let md = "Run `tool sub --a X` or\n`tool other\n--b` and `tooling x`.\n\n```sh\n\
              FOO=1 tool sub --from PATH... [--fmt json|text] \\\n  [--n N]   # comment\n\
              tool pick (--input FILE|DIR... | --store URL) [--x [--y Y]]\n\
              cargo run -p tool\n```\n";
    let found = synopses(md, "tool");
    let words: Vec<(Origin, &str)> = found.iter().map(|(_, o, w)| (*o, w.as_str())).collect();
    assert_eq!(
        words,
        [
            (
                Origin::Block,
                "sub --from PATH... [--fmt json|text] [--n N]"
            ),
            (
                Origin::Block,
                "pick (--input FILE|DIR... | --store URL) [--x [--y Y]]"
            ),
            (Origin::Inline, "sub --a X"),
            (Origin::Inline, "other --b"),
        ]
    );
    assert_eq!(
        found[3].0, 2,
        "an inline span is reported at the line it starts on"
    );
    let s = |v: &[&str]| v.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    assert_eq!(
        samples("sub --from PATH... [--fmt json|text] [--n N]").unwrap(),
        [
            s(&["sub", "--from", "PATH", "--fmt", "json", "--n", "1"]),
            s(&["sub", "--from", "PATH"])
        ]
    );
    assert_eq!(
        samples("pick (--input FILE|DIR... | --store URL) [--x [--y Y]]").unwrap(),
        [
            s(&["pick", "--input", "FILE", "--x", "--y", "Y"]),
            s(&["pick", "--store", "URL", "--x", "--y", "Y"]),
            s(&["pick", "--input", "FILE"]),
            s(&["pick", "--store", "URL"]),
        ]
    );
    assert!(samples("a [--b").is_err() && samples("a --b]").is_err());
}

#[test]
fn a_planted_flag_the_command_line_lacks_is_refused() {
    // The real tree, a synopsis that names a flag it does not have: the parse the check runs
    // must fail on it, for every binary that includes this file.
    let program = super::Cli::command().get_name().to_owned();
    let argv: Vec<String> = [program.as_str(), "--no-such-flag-anywhere"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let err = super::Cli::try_parse_from(&argv)
        .err()
        .expect("an unknown flag is refused");
    assert_eq!(err.kind(), ErrorKind::UnknownArgument);
}
