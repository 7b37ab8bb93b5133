//! `cargo xtask keygen`: a new cosign-compatible key pair (`<name>.key`, encrypted with
//! `COSIGN_PASSWORD`, and `<name>.pub`), never overwriting an existing file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

#[derive(clap::Args)]
pub struct Cmd {
    /// Directory to write `<name>.key` and `<name>.pub` into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// File name stem.
    #[arg(long, default_value = "cosign")]
    name: String,
    /// Accept an empty COSIGN_PASSWORD (the private key is then protected by file permissions only).
    #[arg(long)]
    allow_empty_password: bool,
    /// Output: text (the two paths on stdout) or json (paths and key id on stdout).
    #[command(flatten)]
    pub output: aoc_term::FormatArg,
}

impl Cmd {
    pub fn run(self) -> Result<()> {
        let out = std::env::current_dir()?.join(&self.out);
        let password = std::env::var("COSIGN_PASSWORD").ok();
        let (key, public) = keygen(
            &out,
            &self.name,
            password.as_deref(),
            self.allow_empty_password,
        )?;
        let pem = std::fs::read_to_string(&public)
            .with_context(|| format!("reading {}", public.display()))?;
        let key_id = aoc_sigstore::PublicKey::from_pem(&pem, &public.display().to_string())
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .key_id();
        eprintln!("keygen: new key pair, key id {key_id}");
        if self.output.format.is_json() {
            aoc_term::print_json(&serde_json::json!({
                "private_key": key,
                "public_key": public,
                "key_id": key_id,
            }))?;
        } else {
            crate::print_line(key.display())?;
            crate::print_line(public.display())?;
        }
        Ok(())
    }
}

/// Writes the pair; returns (private key path, public key path).
pub fn keygen(
    out: &Path,
    name: &str,
    password: Option<&str>,
    allow_empty_password: bool,
) -> Result<(PathBuf, PathBuf)> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("--name {name:?} must be a plain file name stem such as `cosign`");
    }
    let password = match password {
        None => bail!(
            "COSIGN_PASSWORD is not set: export the password for the new key (or set it to \"\" and \
             pass --allow-empty-password)"
        ),
        Some("") if !allow_empty_password => bail!(
            "COSIGN_PASSWORD is empty: set a password, or pass --allow-empty-password to write an \
             unprotected key"
        ),
        Some(p) => p,
    };
    let key_path = out.join(format!("{name}.key"));
    let pub_path = out.join(format!("{name}.pub"));
    for p in [&key_path, &pub_path] {
        if p.exists() {
            bail!(
                "{} already exists: keygen never overwrites a key; move it away first",
                p.display()
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let (private_pem, public_pem) =
        aoc_sigstore::generate_key_pair(password.as_bytes()).context("generating the key pair")?;
    write_new(&key_path, private_pem.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&pub_path, public_pem.as_bytes(), 0o644) {
        // Leave no half pair behind.
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }
    Ok((key_path, pub_path))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options
        .open(path)
        .with_context(|| format!("creating {} (it must not exist)", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_pair_that_signs_and_verifies_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = keygen(dir.path(), "release", Some("s3cret"), false).unwrap();
        let signer = aoc_sigstore::Signer::from_cosign_pem(
            &std::fs::read_to_string(&key).unwrap(),
            b"s3cret",
            "test",
        )
        .unwrap();
        let pk = aoc_sigstore::PublicKey::from_pem(&std::fs::read_to_string(&public).unwrap(), "t")
            .unwrap();
        assert_eq!(signer.public_key(), &pk);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let before = std::fs::read(&key).unwrap();
        let err = keygen(dir.path(), "release", Some("other"), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(std::fs::read(&key).unwrap(), before);
    }

    #[test]
    fn refuses_a_missing_or_empty_password_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let err = keygen(dir.path(), "k", None, false)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("COSIGN_PASSWORD is not set"), "{err}");
        let err = keygen(dir.path(), "k", Some(""), false)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("COSIGN_PASSWORD is empty"), "{err}");
        assert!(!dir.path().join("k.key").exists());
        keygen(dir.path(), "k", Some(""), true).unwrap();
        assert!(dir.path().join("k.pub").exists());
    }
}
