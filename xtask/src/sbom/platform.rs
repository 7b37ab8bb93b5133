//! The target platform and `cfg(...)` evaluation for platform-specific dependencies.
//!
//! `cargo metadata --filter-platform` drops a resolve edge only when none of its declarations can
//! apply, and still lists every declaration's `dep_kinds` (e.g. rustix -> errno keeps its
//! `cfg(windows)` entry on Linux), so each declaration's `target` is evaluated here against
//! `rustc --print cfg`, as cargo does when it builds.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

pub struct Platform {
    pub triple: String,
    /// `unix`, `target_os="linux"`, ... as `(name, value)`.
    cfgs: BTreeSet<(String, Option<String>)>,
}

impl Platform {
    /// The host, which is also the release target: the runner is built without `--target`.
    pub fn host(sh: &Shell) -> Result<Platform> {
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let version = cmd!(sh, "{rustc} -vV")
            .read()
            .context("running rustc -vV")?;
        let triple = version
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .context("rustc -vV printed no `host:` line")?
            .to_string();
        let cfg = cmd!(sh, "{rustc} --print cfg")
            .read()
            .context("running rustc --print cfg")?;
        Ok(Platform::new(triple, &cfg))
    }

    pub fn new(triple: String, print_cfg: &str) -> Platform {
        let cfgs = print_cfg
            .lines()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.trim_matches('"').to_string())),
                None => (l.to_string(), None),
            })
            .collect();
        Platform { triple, cfgs }
    }

    /// Whether a dependency declared for `target` (a triple or `cfg(...)`) applies here.
    pub fn applies(&self, target: Option<&str>) -> Result<bool> {
        let Some(target) = target else {
            return Ok(true);
        };
        let Some(expr) = target
            .strip_prefix("cfg(")
            .and_then(|s| s.strip_suffix(')'))
        else {
            return Ok(target == self.triple);
        };
        let tokens = tokenize(expr).with_context(|| format!("parsing {target}"))?;
        let mut at = 0;
        let value = self
            .eval(&tokens, &mut at)
            .with_context(|| format!("parsing {target}"))?;
        if at != tokens.len() {
            bail!("trailing tokens in {target}");
        }
        Ok(value)
    }

    fn eval(&self, t: &[Token], at: &mut usize) -> Result<bool> {
        let Some(Token::Ident(name)) = t.get(*at) else {
            bail!("expected a cfg name")
        };
        *at += 1;
        match (name.as_str(), t.get(*at)) {
            ("all" | "any" | "not", Some(Token::Open)) => {
                *at += 1;
                let mut values = Vec::new();
                while t.get(*at) != Some(&Token::Close) {
                    values.push(self.eval(t, at)?);
                    if t.get(*at) == Some(&Token::Comma) {
                        *at += 1;
                    }
                }
                *at += 1;
                Ok(match name.as_str() {
                    "all" => values.iter().all(|&v| v),
                    "any" => values.iter().any(|&v| v),
                    _ if values.len() == 1 => !values[0],
                    _ => bail!("not() takes one predicate"),
                })
            }
            (_, Some(Token::Eq)) => {
                let Some(Token::Str(value)) = t.get(*at + 1) else {
                    bail!("expected a string")
                };
                *at += 2;
                Ok(self.cfgs.contains(&(name.clone(), Some(value.clone()))))
            }
            _ => Ok(self.cfgs.contains(&(name.clone(), None))),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Open,
    Close,
    Comma,
    Eq,
}

fn tokenize(s: &str) -> Result<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {}
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            ',' => out.push(Token::Comma),
            '=' => out.push(Token::Eq),
            '"' => {
                let mut v = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => v.push(c),
                        None => bail!("unterminated string"),
                    }
                }
                out.push(Token::Str(v));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut v = c.to_string();
                while let Some(&c) = chars.peek() {
                    if !(c.is_alphanumeric() || c == '_') {
                        break;
                    }
                    v.push(c);
                    chars.next();
                }
                out.push(Token::Ident(v));
            }
            other => bail!("unexpected {other:?}"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux() -> Platform {
        let cfg = "debug_assertions\npanic=\"unwind\"\ntarget_arch=\"x86_64\"\ntarget_endian=\"little\"\ntarget_os=\"linux\"\ntarget_pointer_width=\"64\"\nunix\n";
        Platform::new("x86_64-unknown-linux-gnu".into(), cfg)
    }

    #[test]
    fn evaluates_cfg_expressions_like_cargo() {
        let p = linux();
        assert!(p.applies(None).unwrap());
        assert!(p.applies(Some("x86_64-unknown-linux-gnu")).unwrap());
        assert!(!p.applies(Some("x86_64-pc-windows-msvc")).unwrap());
        assert!(p.applies(Some("cfg(unix)")).unwrap());
        assert!(!p.applies(Some("cfg(windows)")).unwrap());
        assert!(p
            .applies(Some(r#"cfg(all(target_os = "linux", not(miri)))"#))
            .unwrap());
        assert!(!p
            .applies(Some(
                r#"cfg(any(rustix_use_libc, miri, target_os = "wasi"))"#
            ))
            .unwrap());
        assert!(p
            .applies(Some(
                r#"cfg(all(target_arch = "x86_64", target_pointer_width = "64",))"#
            ))
            .unwrap());
        assert!(p.applies(Some("cfg(unix garbage)")).is_err());
    }
}
