//! A production release (`AOC_REQUIRE_PROD_KEY=1`) refuses, before anything is built and within
//! seconds, a dataset that is not pinned to a real hash and a signing key that is not the committed
//! production public key `tools/cosign/cosign.pub`; each refusal is one line naming the problem
//! and leaves nothing behind.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::tests::{names, root, EPOCH};
use super::{release, ReleaseOptions, DATASET_PLACEHOLDER, PROD_PUBLIC_KEY};

const PASSWORD: &str = "prod";

/// A workspace root holding only what the preconditions read, and a production key pair.
struct Site {
    dir: tempfile::TempDir,
    key: String,
    public: std::path::PathBuf,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let (key, public) = crate::keygen::keygen(&keys, "prod", Some(PASSWORD), false).unwrap();
    std::fs::create_dir_all(dir.path().join("tools/cosign")).unwrap();
    Site {
        dir,
        key: key.display().to_string(),
        public,
    }
}

impl Site {
    fn commit_public_key(&self, from: &Path) {
        std::fs::copy(from, self.dir.path().join(PROD_PUBLIC_KEY)).unwrap();
    }

    fn env(&self, pin: Option<&str>) -> BTreeMap<String, String> {
        let mut env = BTreeMap::from([
            ("AOC_REQUIRE_PROD_KEY".to_string(), "1".to_string()),
            ("COSIGN_KEY".to_string(), self.key.clone()),
            ("COSIGN_PASSWORD".to_string(), PASSWORD.to_string()),
        ]);
        if let Some(p) = pin {
            env.insert("DATASET_HASH".into(), p.into());
        }
        env
    }

    /// Runs the release rooted here; returns its error, after checking it came fast and left
    /// nothing (the runner binary does not exist, so reaching the build would fail differently).
    fn refused(&self, env: BTreeMap<String, String>) -> String {
        let sh = xshell::Shell::new().unwrap();
        sh.change_dir(self.dir.path());
        let out = tempfile::tempdir().unwrap();
        let opts = ReleaseOptions {
            out: out.path().join("aoc"),
            dataset_from: Vec::new(),
            publish: None,
            runner_binary: Some(out.path().join("no-such-stella")),
            epoch: Some(EPOCH),
            env,
            print: false,
        };
        let t = Instant::now();
        let err = format!("{:#}", release(&sh, &opts).err().expect("must be refused"));
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "took {:?}: {err}",
            t.elapsed()
        );
        assert!(!err.contains("build runner"), "reached the build: {err}");
        assert!(names(out.path()).is_empty(), "left {:?}", names(out.path()));
        err
    }
}

#[test]
fn an_unpinned_or_placeholder_dataset_hash_is_refused_before_the_build() {
    let s = site();
    s.commit_public_key(&s.public.clone());
    for pin in [None, Some("")] {
        let err = s.refused(s.env(pin));
        assert!(
            err.starts_with("AOC_REQUIRE_PROD_KEY=1 needs DATASET_HASH") && !err.contains('\n'),
            "{pin:?}: {err}"
        );
    }
    let err = s.refused(s.env(Some(DATASET_PLACEHOLDER)));
    assert!(
        err.starts_with(&format!(
            "DATASET_HASH={DATASET_PLACEHOLDER} accepts any dataset and AOC_REQUIRE_PROD_KEY=1 \
             refuses it"
        )) && !err.contains('\n'),
        "{err}"
    );
    // Without AOC_REQUIRE_PROD_KEY the placeholder is the rehearsal's, and the release goes on
    // (here to the dataset step, which finds no definition in this bare root).
    let mut dev = s.env(Some(DATASET_PLACEHOLDER));
    dev.insert("AOC_REQUIRE_PROD_KEY".into(), "0".into());
    let err = s.refused(dev);
    assert!(err.contains("reading the dataset definition"), "{err}");
}

#[test]
fn a_missing_dev_or_foreign_production_public_key_is_refused_before_the_build() {
    let s = site();
    let pin = "a".repeat(64);
    let err = s.refused(s.env(Some(&pin)));
    assert!(
        err.starts_with(&format!(
            "AOC_REQUIRE_PROD_KEY=1 needs the production public key {PROD_PUBLIC_KEY}"
        )) && !err.contains('\n'),
        "{err}"
    );

    s.commit_public_key(&root().join("tools/cosign/cosign.dev.pub"));
    let err = s.refused(s.env(Some(&pin)));
    assert!(
        err.starts_with(&format!("{PROD_PUBLIC_KEY} is the public dev key")),
        "{err}"
    );

    let other = tempfile::tempdir().unwrap();
    let (_, other_pub) = crate::keygen::keygen(other.path(), "other", Some("x"), false).unwrap();
    s.commit_public_key(&other_pub);
    let err = s.refused(s.env(Some(&pin)));
    assert!(
        err.starts_with("the signing key (key id ")
            && err.contains(&format!(
                "is not the production public key {PROD_PUBLIC_KEY}"
            )),
        "{err}"
    );

    std::fs::write(s.dir.path().join(PROD_PUBLIC_KEY), "not a key\n").unwrap();
    let err = s.refused(s.env(Some(&pin)));
    assert!(
        err.starts_with(&format!("{PROD_PUBLIC_KEY} is not a public key")),
        "{err}"
    );

    // The right key, committed: the preconditions pass and the release goes on to the dataset.
    s.commit_public_key(&s.public.clone());
    let err = s.refused(s.env(Some(&pin)));
    assert!(err.contains("reading the dataset definition"), "{err}");
}
