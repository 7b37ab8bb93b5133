//! The setup scripts' shared pieces, run for real: `scripts/venv.sh`'s `ensure_venv`.

use crate::root;
use std::path::Path;
use std::process::Command;

/// `ensure_venv DIR` in `sh`: (exit code, stdout, stderr).
fn ensure_venv(dir: &Path) -> (i32, String, String) {
    let script = format!(
        ". '{}'; ensure_venv \"$1\"",
        root().join("scripts/venv.sh").display()
    );
    let out = Command::new("sh")
        .args(["-c", &script, "sh"])
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn first_line(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().next().unwrap_or_default().to_owned()
}

/// A venv asked for through a symlink (a clone's `target/` pointing into `.ci/run`'s cache) is
/// made at the physical path, so its scripts keep working after that clone is gone; one made
/// through a path that no longer exists (the old behaviour) is made again.
#[test]
fn a_venv_is_made_at_its_physical_path_and_remade_when_made_elsewhere() {
    if Command::new("python3").arg("--version").output().is_err() {
        return aoc_testkit::skip("no python3 to make a venv with");
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let clone = dir.path().join("clone");
    std::fs::create_dir(&clone).unwrap();
    std::os::unix::fs::symlink(&cache, clone.join("target")).unwrap();
    let physical = cache.canonicalize().unwrap().join("venv");

    let (code, out, err) = ensure_venv(&clone.join("target/venv"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), physical.to_str().unwrap());
    let shebang = first_line(&physical.join("bin/pip"));
    assert!(
        shebang.starts_with(&format!("#!{}/bin/python", physical.display())),
        "{shebang}"
    );
    // A second call keeps it.
    let made = std::fs::metadata(physical.join("bin/python"))
        .unwrap()
        .modified()
        .unwrap();
    let (code, out, err) = ensure_venv(&clone.join("target/venv"));
    assert_eq!((code, out.trim()), (0, physical.to_str().unwrap()), "{err}");
    assert!(!err.contains("making it again"), "{err}");
    let kept = std::fs::metadata(physical.join("bin/python"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(made, kept);

    // A venv whose scripts name a path that is gone: made again, and working.
    let pip = physical.join("bin/pip");
    let text = std::fs::read_to_string(&pip).unwrap();
    let moved = text.replacen(
        &format!("#!{}", physical.display()),
        "#!/nonexistent/clone/target/venv",
        1,
    );
    std::fs::write(&pip, moved).unwrap();
    let (code, out, err) = ensure_venv(&clone.join("target/venv"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), physical.to_str().unwrap());
    assert!(err.contains("making it again"), "{err}");
    let out = Command::new(physical.join("bin/pip"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// A venv at a path too long for a shebang line (pip then writes a `/bin/sh` trampoline that
/// names the interpreter on its second line) is kept, not made again on every call.
#[test]
fn a_venv_at_a_path_too_long_for_a_shebang_is_kept() {
    if Command::new("python3").arg("--version").output().is_err() {
        return aoc_testkit::skip("no python3 to make a venv with");
    }
    let dir = tempfile::tempdir().unwrap();
    let deep = dir
        .path()
        .join("d".repeat(100))
        .join("e".repeat(100))
        .join("venv");
    let (code, out, err) = ensure_venv(&deep);
    assert_eq!(code, 0, "{err}");
    let physical = Path::new(out.trim()).to_owned();
    assert!(physical.join("bin/pip").is_file(), "{err}");
    let (code, _, err) = ensure_venv(&deep);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("making it again"), "{err}");
    let out = Command::new(physical.join("bin/pip"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}
