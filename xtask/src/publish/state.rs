//! The publisher's own record of the indexes it signed, kept where the publisher and not the
//! bucket controls it (`--state`, `AOC_PUBLISH_STATE`, default
//! `$XDG_STATE_HOME/aoc-publish/state.json` or `~/.local/state/aoc-publish/state.json`).
//!
//! Someone who can write the bucket but has no key can put back any index the key ever signed
//! (a rollback) and can leave an index that matches no signature. This file is what the
//! publisher compares against: per prefix, the highest `sequence` it signed or verified, and
//! the digest of the index it is about to write (recorded before the write, so an interrupted
//! publish can finish signing exactly those bytes and nothing else).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use aoc_digest::Sha256Digest;
use serde::{Deserialize, Serialize};

/// The environment variable of `--state`.
pub const STATE_ENV: &str = "AOC_PUBLISH_STATE";

/// The file, one entry per prefix.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    /// By the index's URL (`<prefix>/offline-kit.json`).
    prefixes: BTreeMap<String, Prefix>,
}

/// What this publisher knows of one prefix's index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prefix {
    /// The highest sequence of an index this publisher signed, or read with a valid signature:
    /// an index older than this is a rollback.
    pub sequence: u64,
    /// The index this publisher is writing (sequence and SHA-256 of its bytes), recorded before
    /// the write: if the publish is interrupted between the index and its signature, only these
    /// bytes are signed on the re-run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    pub sequence: u64,
    pub sha256: Sha256Digest,
}

/// The state file of one publisher.
#[derive(Clone, Debug)]
pub struct State {
    path: PathBuf,
}

impl State {
    pub fn at(path: PathBuf) -> State {
        State { path }
    }

    /// `--state` / `AOC_PUBLISH_STATE`, else the XDG state directory.
    pub fn default_path(var: impl Fn(&str) -> Option<String>) -> Result<PathBuf> {
        let nonempty = |k: &str| var(k).filter(|v| !v.is_empty());
        if let Some(p) = nonempty(STATE_ENV) {
            return Ok(PathBuf::from(p));
        }
        let base = match (nonempty("XDG_STATE_HOME"), nonempty("HOME")) {
            (Some(state), _) => PathBuf::from(state),
            (None, Some(home)) => Path::new(&home).join(".local/state"),
            (None, None) => anyhow::bail!(
                "neither {STATE_ENV}, XDG_STATE_HOME nor HOME is set: pass --state FILE, where \
                 the publisher keeps the sequence of the indexes it signed"
            ),
        };
        Ok(base.join("aoc-publish/state.json"))
    }

    /// Takes the state for one index update: an exclusive `flock` on `<file>.lock`, held until
    /// the returned guard is dropped. Publishes on this machine that share the file update one
    /// at a time, so a pending write recorded in it is always a finished (or killed) run's,
    /// never a concurrent one's.
    pub fn lock(&self) -> Result<Locked<'_>> {
        let dir = self.dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating {} (the publisher's state)", dir.display()))?;
        let lock_path = self.path.with_extension("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", lock_path.display()))?;
        Ok(Locked {
            state: self,
            _lock: file,
        })
    }

    fn read(&self) -> Result<StateFile> {
        const CAP: u64 = 16 << 20;
        match aoc_archive::fs::read_bounded(&self.path, CAP) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not the publisher's state file (it records the index sequence per \
                     prefix); fix or move it",
                    self.path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StateFile::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.path.display())),
        }
    }

    fn write(&self, file: &StateFile) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(file)?;
        bytes.push(b'\n');
        // Only the publisher reads its state.
        aoc_archive::fs::write_atomic(&self.path, &bytes, 0o600)
            .with_context(|| format!("writing {}", self.path.display()))
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

/// The state while this publisher holds it ([`State::lock`]).
pub struct Locked<'a> {
    state: &'a State,
    _lock: std::fs::File,
}

impl Locked<'_> {
    /// The state file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.state.path
    }

    /// What the file records for `prefix` (nothing yet: the default).
    pub fn get(&self, prefix: &str) -> Result<Prefix> {
        Ok(self
            .state
            .read()?
            .prefixes
            .remove(prefix)
            .unwrap_or_default())
    }

    /// Records that the index `sha256` with `sequence` is about to be written to `prefix`.
    pub fn begin(&self, prefix: &str, sequence: u64, sha256: Sha256Digest) -> Result<()> {
        self.update(prefix, |p| p.pending = Some(Pending { sequence, sha256 }))
    }

    /// Records that `prefix` holds a signed index of `sequence` (written or verified by this
    /// publisher); the sequence kept never goes down, and a pending write at or below it is done.
    pub fn signed(&self, prefix: &str, sequence: u64) -> Result<()> {
        self.update(prefix, |p| {
            p.sequence = p.sequence.max(sequence);
            if p.pending.as_ref().is_some_and(|w| w.sequence <= p.sequence) {
                p.pending = None;
            }
        })
    }

    fn update(&self, prefix: &str, change: impl FnOnce(&mut Prefix)) -> Result<()> {
        let mut file = self.state.read()?;
        change(file.prefixes.entry(prefix.to_string()).or_default());
        self.state.write(&file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_never_goes_down_and_a_signed_write_is_no_longer_pending() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path().join("state/state.json"));
        let state = state.lock().unwrap();
        assert_eq!(state.get("p").unwrap(), Prefix::default());
        let index = Sha256Digest::of(b"index");
        state.begin("p", 3, index).unwrap();
        let p = state.get("p").unwrap();
        assert_eq!((p.sequence, p.pending.unwrap().sha256), (0, index));
        // Written as the 64 hex digits, as before the field was typed.
        let written = std::fs::read_to_string(state.path()).unwrap();
        assert!(
            written.contains(&format!("\"sha256\": \"{index}\"")),
            "{written}"
        );
        state.signed("p", 3).unwrap();
        state.signed("p", 2).unwrap();
        assert_eq!(
            state.get("p").unwrap(),
            Prefix {
                sequence: 3,
                pending: None
            }
        );
        assert_eq!(state.get("other").unwrap(), Prefix::default());
        // Not JSON, or a pending digest that is not 64 lower-case hex digits: refused naming the
        // file, never taken as "not ours".
        let upper = written.replace(&index.to_string(), &index.to_string().to_uppercase());
        for bad in [b"{not json".to_vec(), upper.into_bytes()] {
            std::fs::write(state.path(), bad).unwrap();
            let err = format!("{:#}", state.get("p").unwrap_err());
            assert!(err.contains("not the publisher's state file"), "{err}");
            assert!(err.contains(&state.path().display().to_string()), "{err}");
        }
    }

    #[test]
    fn the_default_path_is_the_flag_or_the_xdg_state_directory() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            State::default_path(vars(&[(STATE_ENV, "/s.json"), ("HOME", "/h")])).unwrap(),
            PathBuf::from("/s.json")
        );
        assert_eq!(
            State::default_path(vars(&[("XDG_STATE_HOME", "/x"), ("HOME", "/h")])).unwrap(),
            PathBuf::from("/x/aoc-publish/state.json")
        );
        assert_eq!(
            State::default_path(vars(&[("HOME", "/h")])).unwrap(),
            PathBuf::from("/h/.local/state/aoc-publish/state.json")
        );
        assert!(State::default_path(vars(&[])).is_err());
    }
}
