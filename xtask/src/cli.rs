//! The `--help` sections of the xtask tasks (exit codes and environment, in `aoc-term`'s form)
//! and the variables several tasks share. Each task names the variables its code path reads.

use aoc_term::{after_help, ENV_NO_COLOR};

/// Every task but `aoc-verify` (the kit verifier's codes) and `test`.
pub const EXIT: &[(&str, &str)] = &[
    ("0", "success"),
    ("1", "failure: one line naming the step and the cause"),
    ("2", "usage: bad flags"),
    aoc_term::EXIT_INTERRUPTED_HELP,
];

/// The signing key, as `aoc_sigstore::select_signing_key` reads it.
pub const KEY: &[(&str, &str)] = &[
    (
        "COSIGN_KEY",
        "path of the production signing key (cosign format)",
    ),
    ("COSIGN_KEY_B64", "the production signing key, base64"),
    ("COSIGN_PASSWORD", "its password"),
    (
        "COSIGN_ALLOW_DEV_KEY",
        "1: sign with the public dev key in tools/cosign/ when no production key is set",
    ),
    (
        "AOC_REQUIRE_PROD_KEY",
        "1: refuse the dev key (and, for a release, an unpinned dataset)",
    ),
];

pub const SOURCE_DATE_EPOCH: (&str, &str) = (
    "SOURCE_DATE_EPOCH",
    "the release clock; default the committer time of HEAD",
);

/// What building `stella` reads (`kit::runner`), and `cargo metadata` / `rustc` for the SBOMs.
pub const BUILD: &[(&str, &str)] = &[
    ("CARGO", "the cargo to run (set by cargo)"),
    ("RUSTC", "the rustc whose host target the SBOM describes"),
    (
        "RUSTFLAGS",
        "extra flags for the runner build (CARGO_ENCODED_RUSTFLAGS wins)",
    ),
    (
        "CARGO_ENCODED_RUSTFLAGS",
        "extra flags for the runner build",
    ),
    (
        "CARGO_HOME",
        "remapped out of the runner's paths (else HOME/.cargo)",
    ),
    ("HOME", "the default CARGO_HOME"),
];

/// An S3 destination's settings (object_store reads every `AWS_*`).
pub const AWS: &[(&str, &str)] = &[
    ("AWS_ENDPOINT_URL", "an s3:// destination's endpoint"),
    ("AWS_REGION", "its region"),
    ("AWS_ACCESS_KEY_ID", "its credentials"),
    ("AWS_SECRET_ACCESS_KEY", "its credentials"),
    ("AWS_*", "any other object_store S3 setting"),
];

/// libpq's variables, read for a PostgreSQL store (the parser stella uses).
pub const PG: &[(&str, &str)] = aoc_store::ENV_HELP;

pub const TMPDIR: (&str, &str) = ("TMPDIR", "scratch and read-back copies");

/// Where a publisher keeps the sequence of the indexes it signed (publish/state.rs).
pub const PUBLISH_STATE: &[(&str, &str)] = &[
    ("AOC_PUBLISH_STATE", "--state: the publisher's state file"),
    (
        "XDG_STATE_HOME",
        "the state file's default directory (else ~/.local/state)",
    ),
    ("HOME", "~/.local/state/aoc-publish/state.json"),
    (
        "AOC_PUBLISH_SETTLE_SECS",
        "how long an index without its signature is waited for (default 30)",
    ),
];

/// `EXIT` and the variables of several groups, as an `after_help`.
pub fn help(groups: &[&[(&str, &str)]]) -> String {
    let mut env: Vec<(&str, &str)> = Vec::new();
    // A variable two groups read (HOME) is listed once, as the first group says it.
    for (name, meaning) in groups.iter().flat_map(|g| g.iter().copied()) {
        if !env.iter().any(|(n, _)| *n == name) {
            env.push((name, meaning));
        }
    }
    if !env.contains(&ENV_NO_COLOR) {
        env.push(ENV_NO_COLOR);
    }
    after_help(EXIT, &env)
}

pub fn release() -> String {
    help(&[
        KEY,
        &[
            (
                "DATASET_HASH",
                "the dataset hash the kit must carry (dev-rehearsal-placeholder: any)",
            ),
            (
                "AOC_DATASET_EPOCH",
                "--dataset-epoch: the clock of --dataset-from inputs without a definition",
            ),
            SOURCE_DATE_EPOCH,
        ],
        BUILD,
        AWS,
        PUBLISH_STATE,
        &[TMPDIR],
    ])
}

pub fn rehearsal() -> String {
    help(&[
        &[
            ("AOC_DATASET_EPOCH", "--dataset-epoch"),
            ("STELLA_STORE", "--store"),
            SOURCE_DATE_EPOCH,
        ],
        BUILD,
        PG,
        &[TMPDIR],
    ])
}

pub fn publish() -> String {
    help(&[
        KEY,
        AWS,
        PUBLISH_STATE,
        &[
            TMPDIR,
            (
                "AOC_PUBLISH_FAIL_AFTER",
                "tests only: stop after this many uploaded objects",
            ),
        ],
    ])
}

pub fn keygen() -> String {
    help(&[&[(
        "COSIGN_PASSWORD",
        "the new key's password (required; empty only with --allow-empty-password)",
    )]])
}

pub fn sbom() -> String {
    help(&[&[SOURCE_DATE_EPOCH], BUILD])
}

pub fn bench() -> String {
    help(&[&[SOURCE_DATE_EPOCH], BUILD, &[TMPDIR]])
}

pub fn test() -> String {
    after_help(
        &[
            ("0", "no test failed (skips are counted and listed)"),
            (
                "1",
                "a test failed, none ran, a step before them failed, or under CI a test skipped",
            ),
            ("2", "usage: bad flags"),
            aoc_term::EXIT_INTERRUPTED_HELP,
        ],
        &[
            (
                "CI",
                "set (not empty, 0 or false): a missing tool or server fails instead of skipping",
            ),
            ("CARGO", "the cargo to run (set by cargo)"),
            (
                "AOC_TEST_PG",
                "set for the tests to the throwaway cluster's URL (tests read it)",
            ),
            (
                "AOC_THIRD_PARTY",
                "set to 1 for the tests when the third-party verifiers are installed",
            ),
            (
                aoc_testkit::SKIP_LOG_ENV,
                "set for the tests to a fresh file each skip is recorded in",
            ),
            ENV_NO_COLOR,
        ],
    )
}

pub fn top() -> String {
    after_help(
        &[
            ("0", "success (aoc-verify: verified, origin proven)"),
            ("1", "failure: one line naming the step and the cause"),
            ("2", "usage: bad flags"),
            (
                "10-15",
                "aoc-verify's failure classes (cargo xtask aoc-verify --help)",
            ),
        ],
        &[SOURCE_DATE_EPOCH, ENV_NO_COLOR],
    )
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every task: a `cargo xtask ...` usage line, `--format`, its exit codes and every variable
    /// its code path reads (`grep env::var` and clap's `env =` over the task's modules).
    #[test]
    fn every_task_keeps_the_command_line_convention() {
        let key = [
            "COSIGN_KEY",
            "COSIGN_KEY_B64",
            "COSIGN_PASSWORD",
            "COSIGN_ALLOW_DEV_KEY",
            "AOC_REQUIRE_PROD_KEY",
        ];
        let build = [
            "CARGO",
            "RUSTC",
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_HOME",
            "HOME",
        ];
        let aws = [
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ];
        let all = |groups: &[&[&'static str]]| -> Vec<&'static str> {
            let mut v: Vec<&str> = groups.iter().flat_map(|g| g.iter().copied()).collect();
            v.push("NO_COLOR");
            v
        };
        let state = [
            "AOC_PUBLISH_STATE",
            "XDG_STATE_HOME",
            "HOME",
            "AOC_PUBLISH_SETTLE_SECS",
        ];
        let release = all(&[
            &key,
            &build,
            &aws,
            &state,
            &[
                "DATASET_HASH",
                "AOC_DATASET_EPOCH",
                "SOURCE_DATE_EPOCH",
                "TMPDIR",
            ],
        ]);
        let rehearsal = all(&[
            &build,
            &[
                "AOC_DATASET_EPOCH",
                "STELLA_STORE",
                "SOURCE_DATE_EPOCH",
                "TMPDIR",
            ],
            &[
                "PGHOST",
                "PGHOSTADDR",
                "PGPORT",
                "PGUSER",
                "PGDATABASE",
                "PGOPTIONS",
                "PGAPPNAME",
                "PGCONNECT_TIMEOUT",
                "PGSSLMODE",
                "PGSSLROOTCERT",
                "PGPASSWORD",
                "PGPASSFILE",
            ],
        ]);
        let publish = all(&[&key, &aws, &state, &["TMPDIR", "AOC_PUBLISH_FAIL_AFTER"]]);
        let bench = all(&[&build, &["SOURCE_DATE_EPOCH", "TMPDIR"]]);
        let problems = aoc_term::convention_problems(
            crate::Cli::command(),
            "cargo xtask",
            &[
                ("aoc-release", &release),
                (
                    "aoc-verify",
                    &[
                        "AOC_VERIFY_KEY",
                        "DATASET_HASH",
                        "AOC_MIN_INDEX_SEQUENCE",
                        "TMPDIR",
                        "NO_COLOR",
                    ],
                ),
                ("aoc-rehearsal", &rehearsal),
                ("aoc-publish", &publish),
                ("keygen", &["COSIGN_PASSWORD", "NO_COLOR"]),
                ("sbom", &all(&[&build, &["SOURCE_DATE_EPOCH"]])),
                ("bench sbom", &bench),
                ("bench release", &bench),
                ("bench verify", &bench),
                (
                    "test",
                    &[
                        "CI",
                        "CARGO",
                        "AOC_TEST_PG",
                        "AOC_THIRD_PARTY",
                        "AOC_SKIP_LOG",
                        "NO_COLOR",
                    ],
                ),
            ],
        );
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        crate::Cli::command().debug_assert();
    }
}
