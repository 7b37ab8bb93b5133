//! The rules every member path obeys, shared by the tar writer and the defensive reader, so that
//! nothing we write is something we would refuse to read.

use std::borrow::Cow;
use std::fmt;

/// Longest accepted path component, in bytes (the common `NAME_MAX` of Linux file systems).
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Longest accepted member path, in bytes (well below `PATH_MAX`, and enough for any kit member).
pub const MAX_PATH_BYTES: usize = 1024;

/// Why a member path is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathProblem {
    /// The path is empty (or only `.` components).
    Empty,
    /// The path starts with `/`.
    Absolute,
    /// A component is `..`.
    ParentComponent,
    /// Two consecutive slashes, or a trailing slash on a file.
    EmptyComponent,
    /// A `.` component (the writer never produces them; the reader drops them).
    DotComponent,
    /// A backslash, which Windows extractors treat as a separator.
    Backslash,
    /// An ASCII control character (newlines would also break `SHA256SUMS` lines).
    ControlCharacter,
    /// The name is not valid UTF-8.
    NotUtf8,
    /// One component is longer than [`MAX_COMPONENT_BYTES`].
    ComponentTooLong { bytes: usize },
    /// The whole path is longer than [`MAX_PATH_BYTES`].
    PathTooLong { bytes: usize },
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathProblem::Empty => f.write_str("empty path"),
            PathProblem::Absolute => f.write_str("absolute path"),
            PathProblem::ParentComponent => f.write_str("`..` component"),
            PathProblem::EmptyComponent => f.write_str("empty path component"),
            PathProblem::DotComponent => f.write_str("`.` component"),
            PathProblem::Backslash => f.write_str("backslash in path"),
            PathProblem::ControlCharacter => f.write_str("control character in path"),
            PathProblem::NotUtf8 => f.write_str("name is not UTF-8"),
            PathProblem::ComponentTooLong { bytes } => write!(
                f,
                "path component of {bytes} bytes (limit {MAX_COMPONENT_BYTES})"
            ),
            PathProblem::PathTooLong { bytes } => {
                write!(f, "path of {bytes} bytes (limit {MAX_PATH_BYTES})")
            }
        }
    }
}

/// How strictly `.` components and a trailing `/` are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathMode {
    /// Paths handed to the writer: canonical form only.
    Write,
    /// Paths read from an archive: `.` components are dropped (GNU tar's `./x`), and a directory
    /// may end in `/`.
    Read { is_dir: bool },
}

/// Checks `path` and returns its canonical form (no `.` components, no trailing slash).
pub(crate) fn check_path(path: &str, mode: PathMode) -> Result<Cow<'_, str>, PathProblem> {
    if path.len() > MAX_PATH_BYTES {
        return Err(PathProblem::PathTooLong { bytes: path.len() });
    }
    if path.starts_with('/') {
        return Err(PathProblem::Absolute);
    }
    if path.contains('\\') {
        return Err(PathProblem::Backslash);
    }
    if path.chars().any(|c| c.is_ascii_control()) {
        return Err(PathProblem::ControlCharacter);
    }
    let body = match mode {
        PathMode::Read { is_dir: true } => path.strip_suffix('/').unwrap_or(path),
        _ => path,
    };
    if body.is_empty() {
        return Err(PathProblem::Empty);
    }
    let mut dropped_dot = false;
    for component in body.split('/') {
        match component {
            ".." => return Err(PathProblem::ParentComponent),
            "." if matches!(mode, PathMode::Read { .. }) => dropped_dot = true,
            "." => return Err(PathProblem::DotComponent),
            "" => return Err(PathProblem::EmptyComponent),
            c if c.len() > MAX_COMPONENT_BYTES => {
                return Err(PathProblem::ComponentTooLong { bytes: c.len() })
            }
            _ => {}
        }
    }
    if !dropped_dot {
        return Ok(Cow::Borrowed(body));
    }
    let canonical: Vec<&str> = body.split('/').filter(|c| *c != ".").collect();
    if canonical.is_empty() {
        return Err(PathProblem::Empty);
    }
    Ok(Cow::Owned(canonical.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_accepts_only_canonical_relative_paths() {
        assert_eq!(check_path("a/b.json", PathMode::Write).unwrap(), "a/b.json");
        assert_eq!(
            check_path("/a", PathMode::Write),
            Err(PathProblem::Absolute)
        );
        assert_eq!(
            check_path("a/../b", PathMode::Write),
            Err(PathProblem::ParentComponent)
        );
        assert_eq!(
            check_path("./a", PathMode::Write),
            Err(PathProblem::DotComponent)
        );
        assert_eq!(
            check_path("a//b", PathMode::Write),
            Err(PathProblem::EmptyComponent)
        );
        assert_eq!(
            check_path("a/", PathMode::Write),
            Err(PathProblem::EmptyComponent)
        );
        assert_eq!(
            check_path("a\\b", PathMode::Write),
            Err(PathProblem::Backslash)
        );
        assert_eq!(
            check_path("a\nb", PathMode::Write),
            Err(PathProblem::ControlCharacter)
        );
        assert_eq!(check_path("", PathMode::Write), Err(PathProblem::Empty));
        let long = "x".repeat(256);
        assert_eq!(
            check_path(&long, PathMode::Write),
            Err(PathProblem::ComponentTooLong { bytes: 256 })
        );
        let deep = ["y"; 600].join("/");
        assert_eq!(
            check_path(&deep, PathMode::Write),
            Err(PathProblem::PathTooLong { bytes: 1199 })
        );
    }

    #[test]
    fn reader_drops_dot_components_and_directory_slashes() {
        let dir = PathMode::Read { is_dir: true };
        let file = PathMode::Read { is_dir: false };
        assert_eq!(check_path("./a/./b", file).unwrap(), "a/b");
        assert_eq!(check_path("./a/", dir).unwrap(), "a");
        assert_eq!(check_path("./", dir), Err(PathProblem::Empty));
        assert_eq!(check_path("a/", file), Err(PathProblem::EmptyComponent));
        assert_eq!(
            check_path("./../a", file),
            Err(PathProblem::ParentComponent)
        );
    }
}
