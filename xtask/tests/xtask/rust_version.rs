//! The workspace's `rust-version` is the real minimum: the highest `rust-version` any package in
//! `Cargo.lock` declares (every target platform, so no build of this lock needs a newer compiler),
//! and every workspace member inherits it. A dependency update that raises the floor fails here
//! until `Cargo.toml` says so; a floor set higher than any dependency needs fails too.

use crate::root;
use std::process::Command;

use serde_json::Value;

/// `1.88` and `1.88.0` are the same version; compared as numbers.
fn version(v: &str) -> Vec<u64> {
    let mut parts: Vec<u64> = v
        .split('.')
        .map(|p| p.parse().unwrap_or_else(|_| panic!("rust-version {v:?}")))
        .collect();
    while parts.len() > 1 && parts.last() == Some(&0) {
        parts.pop();
    }
    parts
}

#[test]
fn rust_version_is_the_highest_any_locked_package_declares() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata --locked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let packages = meta["packages"].as_array().unwrap();

    let (mut floor, mut needed_by) = (vec![0], Vec::new());
    for p in packages
        .iter()
        .filter(|p| !members.contains(&p["id"].as_str().unwrap()))
    {
        let Some(v) = p["rust_version"].as_str() else {
            continue;
        };
        let id = format!("{} {}", p["name"].as_str().unwrap(), p["version"]);
        match version(v).cmp(&floor) {
            std::cmp::Ordering::Greater => (floor, needed_by) = (version(v), vec![id]),
            std::cmp::Ordering::Equal => needed_by.push(id),
            std::cmp::Ordering::Less => {}
        }
    }
    assert!(
        !needed_by.is_empty(),
        "no locked package declares a rust-version"
    );

    let workspace = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let declared = workspace
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version"))
        .and_then(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("[workspace.package] rust-version");
    let floor_text = floor
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".");
    assert_eq!(
        version(&declared),
        floor,
        "Cargo.toml says rust-version = {declared:?}, the locked dependencies need {floor_text} \
         ({}): set it to {floor_text}",
        needed_by.join(", ")
    );
    for p in packages
        .iter()
        .filter(|p| members.contains(&p["id"].as_str().unwrap()))
    {
        assert_eq!(
            p["rust_version"].as_str().map(version),
            Some(floor.clone()),
            "{} does not inherit the workspace rust-version (rust-version.workspace = true)",
            p["name"]
        );
    }
}

#[test]
fn the_pinned_toolchain_is_at_least_the_rust_version() {
    let text = std::fs::read_to_string(root().join("rust-toolchain.toml")).unwrap();
    let channel = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel"))
        .and_then(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("rust-toolchain.toml pins a channel");
    let workspace = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let declared = workspace
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version"))
        .and_then(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .unwrap();
    assert!(
        version(&channel) >= version(&declared),
        "rust-toolchain.toml pins {channel}, older than rust-version {declared}"
    );
    // The tests run on the pinned toolchain (rustup reads the file), so rustc says so.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .arg("--version")
        .current_dir(root())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with(&format!("rustc {channel} ")),
        "rustc in the workspace is {said:?}, rust-toolchain.toml pins {channel}"
    );
}
