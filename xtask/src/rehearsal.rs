//! `cargo xtask aoc-rehearsal`: the dev rehearsal of the release runbook. It proves, with the real
//! runner, that the dataset the release will ship loads cleanly into a fresh store, and captures
//! the dataset hash the production release is then pinned to (`DATASET_HASH`).
//!
//! Plan: check the store is fresh → build the dataset (the release's own builder and clock, so
//! the hash is the one `aoc-release` computes) → build `stella` (the release build, so cached) →
//! `stella aoc backfill` the dataset tarball → `stella aoc verify` the store (exit 0) → export the
//! store again (same hash) → backfill again (a no-op) → write `rehearsal-<hash>.json`.
//!
//! The report is written last and atomically: a failed step stops the run with the step named,
//! and only `rehearsal-FAILED-<time>.json` (`"ok": false`) is left to say so.

pub mod report;
mod store;
#[cfg(test)]
pub(crate) mod tests;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use aoc_ingest::report::{BackfillReport, VerifyReport};
use xshell::{cmd, Shell};

use crate::dataset_definition::{display_rel, explicit_epoch, DatasetSpec};
use crate::kit;
use crate::steps::Steps;
use report::{Counts, DatasetInfo, Report, SourceInfo, StepTime, Tools};

/// The rehearsal's default output directory, where `aoc-release` looks for the report.
pub const DEFAULT_OUT: &str = "out/rehearsal";

/// `cargo xtask aoc-rehearsal`
#[derive(clap::Args)]
pub struct Cmd {
    /// A dataset definition (JSON naming inputs and clock), or dataset inputs (OSV/CSAF files or
    /// directories, NDJSON feeds, dataset tarballs), which then need --dataset-epoch
    /// [default: the repository's seed/dataset.json].
    #[arg(long, num_args = 1..)]
    from: Vec<PathBuf>,
    /// The clock of --from inputs given without a definition: seconds since 1970 or RFC 3339.
    /// Refused with a definition, which carries its own.
    #[arg(long, env = "AOC_DATASET_EPOCH")]
    dataset_epoch: Option<String>,
    /// The store to load, any store stella takes (sqlite:PATH, postgres://USER@HOST:PORT/DB,
    /// a libpq key=value string), which must be empty [default: a temporary SQLite file].
    #[arg(long, env = "STELLA_STORE", hide_env_values = true)]
    store: Option<String>,
    /// Where the dataset and `rehearsal-<hash>.json` are written.
    #[arg(long, default_value = DEFAULT_OUT)]
    out: PathBuf,
    /// Use this `stella` instead of building it (tests; the binary must be a release build).
    #[arg(long, hide = true)]
    runner_binary: Option<PathBuf>,
    #[command(flatten)]
    pub output: aoc_term::FormatArg,
}

impl Cmd {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let cwd = std::env::current_dir()?;
        let opts = RehearsalOptions {
            out: cwd.join(self.out),
            from: self.from.iter().map(|p| cwd.join(p)).collect(),
            store: self.store,
            runner_binary: self.runner_binary.map(|p| cwd.join(p)),
            epoch: None,
            dataset_epoch: explicit_epoch(self.dataset_epoch.as_deref())?,
            print: true,
        };
        let done = rehearse(sh, &opts)?;
        eprint!("{}", summary(&done));
        if self.output.format.is_json() {
            aoc_term::print_json(&summary_json(&done))?;
        } else {
            // Data on stdout: the hash alone, so `HASH=$(cargo xtask aoc-rehearsal)` works.
            crate::print_line(&done.report.dataset_hash)?;
        }
        Ok(())
    }
}

/// `--format json`: the passed rehearsal, as one document (its report, where it is).
pub fn summary_json(done: &Rehearsal) -> serde_json::Value {
    serde_json::json!({
        "ok": true,
        "dataset_hash": done.report.dataset_hash,
        "report_path": done.path,
        "archive": done.archive,
        "report": done.report,
    })
}

pub struct RehearsalOptions {
    /// Absolute output directory.
    pub out: PathBuf,
    /// Absolute dataset inputs, or one dataset definition; empty for `seed/dataset.json`.
    pub from: Vec<PathBuf>,
    /// Store URL; `None` for a temporary SQLite file.
    pub store: Option<String>,
    /// Skip the cargo build and run this `stella`.
    pub runner_binary: Option<PathBuf>,
    /// The clock of `from` inputs given without a definition when `dataset_epoch` is unset
    /// (callers that pin every clock, as the release's `epoch`); never a definition's clock.
    pub epoch: Option<i64>,
    /// `--dataset-epoch` / `AOC_DATASET_EPOCH`: the explicit clock of `from` inputs; refused
    /// with a definition.
    pub dataset_epoch: Option<i64>,
    /// Step lines on stderr.
    pub print: bool,
}

/// A rehearsal that passed.
pub struct Rehearsal {
    pub report: Report,
    /// `<out>/rehearsal-<hash>.json`.
    pub path: PathBuf,
    pub archive: PathBuf,
}

/// The step times a report lists.
fn step_times(steps: &Steps) -> Vec<StepTime> {
    steps
        .done
        .iter()
        .map(|(name, took)| StepTime {
            name: name.clone(),
            seconds: took.as_secs_f64(),
        })
        .collect()
}

/// What is known so far, for the failure report.
#[derive(Default)]
struct Progress {
    hash: Option<String>,
    store: Option<report::StoreInfo>,
    epoch: Option<i64>,
}

/// Runs the whole plan (see the module documentation); on failure writes the failure report and
/// returns the error naming the step.
pub fn rehearse(sh: &Shell, opts: &RehearsalOptions) -> Result<Rehearsal> {
    let mut steps = Steps::new("aoc-rehearsal", opts.print);
    let mut progress = Progress::default();
    match run(sh, opts, &mut steps, &mut progress) {
        Ok(r) => Ok(r),
        Err(e) => {
            let failure = report::Failure {
                kind: report::KIND,
                schema_version: report::SCHEMA_VERSION,
                ok: false,
                failed_step: steps.failed.clone().unwrap_or_else(|| "setup".into()),
                error: format!("{e:#}"),
                dataset_hash: progress.hash,
                steps: step_times(&steps),
                store: progress.store,
                source_date_epoch: progress.epoch,
                finished_at: report::now_rfc3339(),
            };
            let name = report::failure_name(time::OffsetDateTime::now_utc());
            let written = std::fs::create_dir_all(&opts.out)
                .map_err(anyhow::Error::from)
                .and_then(|()| report::write_atomic(&opts.out, &name, &failure));
            // The error itself (the step, then the cause) is what main prints last.
            match written {
                Ok(path) => eprintln!("aoc-rehearsal: FAILED; recorded in {}", path.display()),
                Err(w) => {
                    eprintln!("aoc-rehearsal: FAILED; writing the failure report failed too: {w:#}")
                }
            }
            Err(e)
        }
    }
}

fn run(
    sh: &Shell,
    opts: &RehearsalOptions,
    steps: &mut Steps,
    progress: &mut Progress,
) -> Result<Rehearsal> {
    let root = sh.current_dir();
    // The dataset, as the release resolves it: its definition (inputs and clock), so the hash is
    // the one `aoc-release` computes from any checkout of the same files.
    let spec = DatasetSpec::resolve(&root, &opts.from, opts.dataset_epoch, opts.epoch)?;
    let epoch = spec.epoch;
    progress.epoch = Some(epoch);
    let source = git_source(sh)?;
    let target = store::Target::new(opts.store.as_deref())?;
    progress.store = Some(target.info.clone());
    if opts.print {
        eprintln!(
            "aoc-rehearsal: store {}{}, dataset {} (clock {epoch}), out {}",
            target.info.url,
            if target.info.temporary {
                " (temporary)"
            } else {
                ""
            },
            spec.definition()
                .map_or_else(|| "from explicit inputs".into(), |d| display_rel(&root, d)),
            opts.out.display()
        );
    }

    steps.run("fresh store", || target.ensure_fresh())?;

    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    // stella's own reports and the re-export: removed on every path out.
    let work = tempfile::Builder::new()
        .prefix(".rehearsal-work-")
        .tempdir_in(&opts.out)
        .with_context(|| format!("creating a work directory in {}", opts.out.display()))?;

    let (built, manifest) = steps.run("dataset", || build_dataset(&spec, &opts.out))?;
    progress.hash = Some(built.hash.clone());
    let records = manifest.totals.records;
    if opts.print {
        eprintln!("aoc-rehearsal: dataset {} ({records} records)", built.hash);
    }

    let (stella, stella_version) = steps.run("build runner", || build_runner(sh, &root, opts))?;
    let rehearse = Rehearse {
        runner: Runner {
            sh,
            binary: &stella,
            target: &target,
            print: opts.print,
        },
        root: &root,
        opts,
        spec: &spec,
        built: &built,
        manifest: &manifest,
        records,
        work: work.path(),
    };
    let (first, by_vendor) = steps.run("backfill", || rehearse.backfill())?;
    let verified = steps.run("verify", || rehearse.verify())?;
    steps.run("re-export", || rehearse.re_export())?;
    let rerun = steps.run("backfill again", || rehearse.backfill_again())?;

    let found = Found {
        first,
        by_vendor,
        verified,
        rerun,
    };
    let mut report = rehearse.report(found, source, stella_version)?;
    // The file lists the steps before its own writing; the returned copy includes that too.
    report.steps = step_times(steps);
    report.finished_at = report::now_rfc3339();
    let path = steps.run("report", || {
        report::write_atomic(&opts.out, &kit::rehearsal_report(&built.hash), &report)
    })?;
    report.steps = step_times(steps);
    Ok(Rehearsal {
        report,
        path,
        archive: built.archive,
    })
}

/// The dataset built as the release builds it (its builder, compression and clock: the hash is
/// the one aoc-release computes), and its manifest.
fn build_dataset(
    spec: &DatasetSpec,
    out: &Path,
) -> Result<(kit::dataset::Built, aoc_dataset::Manifest)> {
    let built = spec.build(out)?;
    let bytes = std::fs::read(&built.manifest)
        .with_context(|| format!("reading {}", built.manifest.display()))?;
    let manifest = aoc_dataset::Manifest::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", built.manifest.display()))?;
    Ok((built, manifest))
}

/// The `stella` binary (`--runner-binary`, or built) and its `--version`.
fn build_runner(sh: &Shell, root: &Path, opts: &RehearsalOptions) -> Result<(PathBuf, String)> {
    let binary = match &opts.runner_binary {
        Some(b) => {
            anyhow::ensure!(
                b.is_file(),
                "--runner-binary {} does not exist",
                b.display()
            );
            b.clone()
        }
        // The release's own build (one fixed compile clock), so the release reuses it and
        // ships the binary rehearsed.
        None => kit::runner::build(sh, root)?,
    };
    let version = cmd!(sh, "{binary} --version")
        .quiet()
        .read()
        .with_context(|| format!("{} --version", binary.display()))?;
    Ok((binary, version.trim().to_string()))
}

/// What the steps on the store share: the built dataset, the runner and a work directory for
/// stella's own reports and the re-export.
struct Rehearse<'a> {
    runner: Runner<'a>,
    root: &'a Path,
    opts: &'a RehearsalOptions,
    spec: &'a DatasetSpec,
    built: &'a kit::dataset::Built,
    manifest: &'a aoc_dataset::Manifest,
    records: u64,
    work: &'a Path,
}

/// What the steps on the store found.
struct Found {
    first: BackfillReport,
    by_vendor: Vec<report::VendorCount>,
    verified: VerifyReport,
    rerun: BackfillReport,
}

impl Rehearse<'_> {
    /// The dataset into the fresh store: every record written, and the store's counts per vendor
    /// those of the manifest.
    fn backfill(&self) -> Result<(BackfillReport, Vec<report::VendorCount>)> {
        let (hash, records) = (&self.built.hash, self.records);
        let r =
            self.runner
                .backfill(&self.built.archive, hash, &self.work.join("backfill.json"))?;
        anyhow::ensure!(
            r.records == records && r.written == records && r.noop == 0 && r.rejected == 0,
            "the backfill of {records} record(s) into a fresh store reported {} record(s): \
             {} written, {} no-op, {} rejected",
            r.records,
            r.written,
            r.noop,
            r.rejected
        );
        let by_vendor = self.runner.target.counts()?;
        let expected: Vec<report::VendorCount> = self
            .manifest
            .vendors
            .iter()
            .map(|v| report::VendorCount {
                tenant: v.tenant.clone(),
                vendor: v.vendor.clone(),
                records: v.records,
                upstream_documents: v.upstream_documents,
            })
            .collect();
        anyhow::ensure!(
            by_vendor == expected,
            "the store's counts per vendor {by_vendor:?} differ from the manifest's {expected:?}"
        );
        Ok((r, by_vendor))
    }

    /// `stella aoc verify` of the store: every record loaded checked.
    fn verify(&self) -> Result<VerifyReport> {
        let records = self.records;
        let v = self.runner.verify(&self.work.join("verify.json"))?;
        anyhow::ensure!(
            v.documents_checked == records,
            "stella aoc verify checked {} document(s), the store was loaded with {records}",
            v.documents_checked
        );
        Ok(v)
    }

    /// The store exported again: the dataset loaded, byte for byte (the same hash).
    fn re_export(&self) -> Result<()> {
        let hash = &self.built.hash;
        let again = self
            .runner
            .target
            .export(&self.work.join("export"), self.spec.epoch)?;
        if again.hash.to_string() != *hash {
            bail!(
                "exporting the loaded store gives dataset {}, the dataset loaded was {hash}{}",
                again.hash,
                differing_files(self.manifest, &again.manifest)
            );
        }
        Ok(())
    }

    /// The same dataset again: a no-op for every record.
    fn backfill_again(&self) -> Result<BackfillReport> {
        let records = self.records;
        let r = self.runner.backfill(
            &self.built.archive,
            &self.built.hash,
            &self.work.join("backfill-again.json"),
        )?;
        anyhow::ensure!(
            r.written == 0 && r.noop == records && r.rejected == 0,
            "backfilling the same dataset again must be a no-op, but it reported {} written, \
             {} no-op (of {records}), {} rejected",
            r.written,
            r.noop,
            r.rejected
        );
        Ok(r)
    }

    /// The rehearsal's report, without its steps and finishing time.
    fn report(&self, found: Found, source: SourceInfo, stella_version: String) -> Result<Report> {
        let (hash, manifest) = (&self.built.hash, self.manifest);
        Ok(Report {
            kind: report::KIND.into(),
            schema_version: report::SCHEMA_VERSION,
            ok: true,
            dataset_hash: hash.clone(),
            dataset: DatasetInfo {
                archive: kit::dataset_tarball(hash),
                archive_sha256: kit::sha256_file(&self.built.archive)?.to_string(),
                inputs: self
                    .spec
                    .inputs
                    .iter()
                    .map(|p| display_path(self.root, p))
                    .collect(),
            },
            counts: Counts {
                records: self.records,
                upstream_documents: manifest.totals.upstream_documents,
                written: found.first.written,
                noop: found.first.noop,
                rejected: found.first.rejected,
                rerun_written: found.rerun.written,
                rerun_noop: found.rerun.noop,
                verified_documents: found.verified.documents_checked,
                violations: found.verified.violations_total,
                by_vendor: found.by_vendor,
            },
            steps: Vec::new(),
            tools: Tools {
                stella: stella_version,
                aoc_dataset: format!("{} {}", manifest.tool.name, manifest.tool.version),
                dataset_schema_version: manifest.schema_version,
                xtask: env!("CARGO_PKG_VERSION").into(),
            },
            source,
            store: self.runner.target.info.clone(),
            source_date_epoch: self.spec.epoch,
            finished_at: String::new(),
            release_command: release_command(self.root, self.opts, self.spec, hash),
        })
    }
}

/// The real runner against the rehearsal's store.
struct Runner<'a> {
    sh: &'a Shell,
    binary: &'a Path,
    target: &'a store::Target,
    print: bool,
}

impl Runner<'_> {
    /// `stella aoc backfill` of the dataset, pinned to its hash; its report, read as the type
    /// `stella` writes it.
    fn backfill(&self, dataset: &Path, hash: &str, report: &Path) -> Result<BackfillReport> {
        let binary = self.binary;
        // The store in the environment, not on the command line (which other users can read).
        let out = cmd!(
            self.sh,
            "{binary} aoc backfill --from {dataset} --report {report} --no-progress --expect-dataset-hash {hash}"
        )
        .env("STELLA_STORE", &self.target.url)
        .quiet()
        .ignore_status()
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
        self.check_exit("stella aoc backfill", &out, 0)?;
        let r: BackfillReport = read_report(report)?;
        if let Some(why) = &r.stopped {
            bail!("stella aoc backfill stopped: {why}");
        }
        Ok(r)
    }

    fn verify(&self, output: &Path) -> Result<VerifyReport> {
        let binary = self.binary;
        let out = cmd!(self.sh, "{binary} aoc verify --output {output}")
            .env("STELLA_STORE", &self.target.url)
            .quiet()
            .ignore_status()
            .output()
            .with_context(|| format!("running {}", binary.display()))?;
        self.check_exit("stella aoc verify", &out, 0)?;
        read_report(output)
    }

    /// The runner's exit code must be `want`; its last stderr line (credentials redacted) is
    /// shown either way.
    fn check_exit(&self, what: &str, out: &std::process::Output, want: i32) -> Result<()> {
        let stderr =
            String::from_utf8_lossy(&out.stderr).replace(&self.target.url, &self.target.info.url);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("(no output)")
            .trim()
            .to_string();
        if self.print {
            eprintln!("  {last}");
        }
        match out.status.code() {
            Some(c) if c == want => Ok(()),
            code => bail!(
                "{what} on {} exited with {} (expected {want}): {last}",
                self.target.info.url,
                code.map_or("a signal".into(), |c| c.to_string())
            ),
        }
    }
}

/// A report `stella` wrote, as the type it wrote it with.
fn read_report<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a report of this stella", path.display()))
}

/// Names the data files whose digests differ between two manifests, for the hash mismatch error.
fn differing_files(a: &aoc_dataset::Manifest, b: &aoc_dataset::Manifest) -> String {
    let digests = |m: &aoc_dataset::Manifest| -> std::collections::BTreeMap<String, String> {
        m.files
            .iter()
            .map(|f| (f.path.clone(), f.sha256.clone()))
            .collect()
    };
    let (a, b) = (digests(a), digests(b));
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    let differ: Vec<&str> = names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .map(|n| n.as_str())
        .collect();
    if differ.is_empty() {
        String::new()
    } else {
        format!(" (data files that differ: {})", differ.join(", "))
    }
}

fn git_source(sh: &Shell) -> Result<SourceInfo> {
    let commit = cmd!(sh, "git rev-parse HEAD")
        .quiet()
        .read()
        .context("git rev-parse HEAD: the rehearsal records the commit it ran at")?;
    let status = cmd!(sh, "git status --porcelain --untracked-files=no")
        .quiet()
        .read()
        .context("git status")?;
    Ok(SourceInfo {
        commit: commit.trim().to_string(),
        dirty: !status.trim().is_empty(),
    })
}

/// A path relative to the workspace when inside it, else as given.
fn display_path(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// The release pinned to this rehearsal. A dataset definition carries its clock, so the command
/// names only the definition (none for the default `seed/dataset.json`); inputs without one carry
/// their clock as `--dataset-epoch`, because the records' `ingested_at` stamps come from it and
/// another value builds a dataset with another hash, which the pin would rightly refuse.
fn release_command(root: &Path, opts: &RehearsalOptions, spec: &DatasetSpec, hash: &str) -> String {
    let mut words = vec![
        format!("DATASET_HASH={hash}"),
        "AOC_REQUIRE_PROD_KEY=1".into(),
        "COSIGN_KEY=…".into(),
        "cargo xtask aoc-release".into(),
    ];
    if !opts.from.is_empty() {
        words.push("--dataset-from".into());
        words.extend(opts.from.iter().map(|p| shell_word(&display_path(root, p))));
    }
    if spec.definition().is_none() {
        words.push("--dataset-epoch".into());
        words.push(spec.epoch.to_string());
    }
    if opts.out != root.join(DEFAULT_OUT) {
        let report = opts.out.join(kit::rehearsal_report(hash));
        words.push("--rehearsal-report".into());
        words.push(shell_word(&display_path(root, &report)));
    }
    words.join(" ")
}

/// `s`, single-quoted for sh when it holds anything but plain path characters.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The closing lines on stderr: what was proved, where the report is, and the release command.
pub fn summary(r: &Rehearsal) -> String {
    let rep = &r.report;
    let total: f64 = rep.steps.iter().map(|s| s.seconds).sum();
    let mut s = String::new();
    s.push('\n');
    s.push_str(&format!(
        "aoc-rehearsal: dataset {} rehearsed on {} ({})\n",
        rep.dataset_hash, rep.store.engine, rep.store.url
    ));
    s.push_str(&format!(
        "  {} records ({} upstream documents): {} written, verified ({} violations), re-exported \
         with the same hash, reloaded as a no-op ({} no-op)\n",
        rep.counts.records,
        rep.counts.upstream_documents,
        rep.counts.written,
        rep.counts.violations,
        rep.counts.rerun_noop
    ));
    s.push_str(&format!("  dataset {}\n", r.archive.display()));
    s.push_str(&format!("  report  {}\n", r.path.display()));
    s.push_str(&format!(
        "  {}, commit {}, SOURCE_DATE_EPOCH={}, total {total:.1} s\n",
        rep.tools.stella, rep.source.commit, rep.source_date_epoch
    ));
    if rep.source.dirty {
        s.push_str(
            "  WARNING: the working tree has uncommitted changes: release from the same tree, or \
             commit and rehearse again\n",
        );
    }
    s.push_str("\nRelease with the production key, pinned to this dataset:\n\n");
    s.push_str(&format!("  {}\n\n", rep.release_command));
    s
}
