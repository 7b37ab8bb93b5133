//! The "Exit codes:" and "Environment:" sections of each `stella` command's `--help`: every
//! variable the command's code path reads, besides those clap names beside their flag.

use aoc_term::{after_help, ENV_NO_COLOR};

/// The exit codes of the `aoc` and `sources` commands.
const EXIT: &[(&str, &str)] = &[
    ("0", "success, no violations"),
    ("1", "violations or rejected records"),
    (
        "2",
        "configuration, connection or input error (outranks violations); bad flags; inputs \
         with no record at all (an empty directory, no .json/.ndjson/.jsonl file), or a store \
         holding no document, unless --allow-empty",
    ),
    aoc_term::EXIT_ENVIRONMENT_HELP,
    aoc_term::EXIT_INTERRUPTED_HELP,
];

const CLOCK: (&str, &str) = (
    "SOURCE_DATE_EPOCH",
    "the run clock (ingested_at, retrieved_at when an input has none); else the wall clock",
);
const TMPDIR: (&str, &str) = (
    "TMPDIR",
    "where a dataset's verified bytes are copied (unlinked) before they are read",
);
/// libpq's variables, read for a PostgreSQL store.
const PG: &[(&str, &str)] = aoc_store::ENV_HELP;
/// The test-only fault hooks, listed only in a build that has them (tests enable the
/// `fault-hooks` features of aoc-dataset and aoc-ingest; a release build has neither).
const FAULT: &[(&str, &str)] = aoc_dataset::FAULT_HOOK_VARS;
const FAULT_ABORT: &[(&str, &str)] = aoc_ingest::engine::FAULT_HOOK_VARS;

pub fn top() -> String {
    after_help(
        &[
            (
                "0",
                "success, no violations (kit verify: verified, origin proven)",
            ),
            ("1", "violations or rejected records"),
            ("2", "configuration, connection, input or usage error"),
            aoc_term::EXIT_ENVIRONMENT_HELP,
            (
                "10-15",
                "kit verify's failure classes (stella kit verify --help)",
            ),
            aoc_term::EXIT_INTERRUPTED_HELP,
        ],
        &[CLOCK, ENV_NO_COLOR],
    )
}

pub fn backfill() -> String {
    let mut env = vec![
        ("STELLA_STORE", "the store when --store is not given"),
        ("STELLA_TENANT", "--tenant"),
        ("DATASET_HASH", "--expect-dataset-hash"),
        CLOCK,
        TMPDIR,
    ];
    env.extend_from_slice(PG);
    env.push(ENV_NO_COLOR);
    env.extend_from_slice(FAULT);
    env.extend_from_slice(FAULT_ABORT);
    // Only a backfill writes, so only a backfill finds the store claimed by another run.
    let mut exit = EXIT.to_vec();
    let at = exit
        .iter()
        .position(|(code, _)| {
            let first = code.split(|c: char| !c.is_ascii_digit()).next();
            first
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n > 4)
        })
        .unwrap_or(exit.len());
    exit.insert(
        at,
        (
            "4",
            "another run is writing to the same store for the same tenant and source (--tenant, \
             --source; none: every source); nothing was written: run again once it has ended",
        ),
    );
    after_help(&exit, &env)
}

pub fn verify() -> String {
    let mut env = vec![
        (
            "STELLA_STORE",
            "the store when none of --input, --store, --postgres is given",
        ),
        ("DATASET_HASH", "--expect-dataset-hash"),
        TMPDIR,
    ];
    env.extend_from_slice(PG);
    env.push(ENV_NO_COLOR);
    env.extend_from_slice(FAULT);
    after_help(EXIT, &env)
}

pub fn ingest() -> String {
    after_help(EXIT, &[("STELLA_TENANT", "--tenant"), CLOCK, ENV_NO_COLOR])
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    const PG: &[&str] = &[
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
        "HOME",
    ];

    /// The test-only variables are listed exactly when the build has the hooks.
    fn with_fault_hooks(var: &str) -> bool {
        let hooks = super::FAULT.iter().chain(super::FAULT_ABORT);
        !var.starts_with("STELLA_FAULT") || hooks.into_iter().any(|(name, _)| *name == var)
    }

    /// Every leaf command: `--format`, its exit codes, every variable its code path reads (found
    /// with `grep env::var` and clap's `env =` over the command's crates), a `stella ...` usage.
    #[test]
    fn every_command_keeps_the_command_line_convention() {
        let backfill: Vec<&str> = [
            "STELLA_STORE",
            "STELLA_TENANT",
            "DATASET_HASH",
            "SOURCE_DATE_EPOCH",
            "TMPDIR",
            "NO_COLOR",
            "STELLA_FAULT_ABORT",
            "STELLA_FAULT_PAUSE_AFTER_VERIFY",
        ]
        .into_iter()
        .chain(PG.iter().copied())
        .filter(|v| with_fault_hooks(v))
        .collect();
        let verify: Vec<&str> = [
            "STELLA_STORE",
            "DATASET_HASH",
            "TMPDIR",
            "NO_COLOR",
            "STELLA_FAULT_PAUSE_AFTER_VERIFY",
        ]
        .into_iter()
        .chain(PG.iter().copied())
        .filter(|v| with_fault_hooks(v))
        .collect();
        let problems = aoc_term::convention_problems(
            crate::Cli::command(),
            "stella",
            &[
                ("aoc backfill", &backfill),
                ("aoc verify", &verify),
                (
                    "sources ingest",
                    &["STELLA_TENANT", "SOURCE_DATE_EPOCH", "NO_COLOR"],
                ),
                (
                    "kit verify",
                    &["AOC_VERIFY_KEY", "DATASET_HASH", "TMPDIR", "NO_COLOR"],
                ),
            ],
        );
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        crate::Cli::command().debug_assert();
    }
}
