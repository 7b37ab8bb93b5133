#!/usr/bin/env python3
# Runs a GitHub Actions syntax workflow (.gitea/workflows/aoc-backfill-release.yml by default) on
# this machine the way Gitea's act_runner would: each job in `needs` order, in a fresh
# `git clone --depth 1` of the commit, its `run:` steps in order through bash with the workflow's,
# job's and step's `env` (`${{ secrets.X }}`, `${{ vars.X }}`, `${{ env.X }}`, `${{ inputs.X }}`,
# `${{ github.X }}`, `${{ needs.J.outputs.X }}`, `${{ steps.S.outputs.X }}`, hashFiles() are
# evaluated), `if:` conditions, $GITHUB_ENV / $GITHUB_PATH / $GITHUB_OUTPUT, and
# timeout-minutes. Usually started through scripts/run-workflow-locally.sh, which installs PyYAML.
#
# What cannot run here as on a runner is stood in for, and each stand-in says so when it acts:
#   actions/checkout               the depth-1 clone of --commit (default HEAD), origin as the source's
#   actions/cache                  `target` kept between runs under WORKDIR/cache/<key> (moved in at
#                                  restore, back at the end of the job); ~/ paths are this machine's own
#   actions/cache/restore,         workspace paths copied from / to WORKDIR/cache/<key>; restore takes
#   actions/cache/save             the key's entry, else the newest whose key starts with a restore-key
#   actions/upload-artifact@v3,    copied to / from WORKDIR/artifacts/<name>
#   actions/download-artifact@v3
#   services: postgres:*           a throwaway cluster (scripts/pg-test-cluster.sh, its own AOC_PG_DIR);
#                                  `<service>:<port>` in env values becomes its 127.0.0.1 address, as
#                                  the job container's network would resolve the service's name
#   secrets.COSIGN_KEY_B64,        a generated key pair (`cargo xtask keygen`), its public half written
#   secrets.COSIGN_PASSWORD        to tools/cosign/cosign.pub in the clone (--public-key)
#   vars/secrets AOC_RELEASE_S3_*  moto's S3 server on a loopback port with an empty bucket; mirrored
#                                  to WORKDIR/bucket/<bucket>/ when the run ends
#   CARGO_TARGET_DIR               --cargo-target-dir, so the clone reuses compiled dependencies as
#                                  a warm cache would (the release build of stella too: it goes to
#                                  CARGO_TARGET_DIR/aoc-release); with CARGO_PROFILE_DEV_DEBUG
#                                  (SHARED_TARGET_ENV below) so the clone's own crates do not
#                                  overwrite the other checkout's
# Anything else the workflow `uses:` is refused by name.
#
# Usage: scripts/run-workflow-locally.py [--job J]... [--skip-job J]... [--event push] [--ref R]
#        [--input K=V]... [--var K=V]... [--secret K=V]... [--commit REV] [--workdir DIR]
#        [--public-key stand-in|none|other] [--stand-in-key DIR] [--cargo-target-dir DIR]
# Exit 0 when every job that ran succeeded, 1 otherwise, 2 for usage errors. WORKDIR/run.json
# records each job's and step's outcome, duration and log file.
import argparse
import base64
import glob
import hashlib
import json
import os
import re
import secrets as random_secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKFLOW = ".gitea/workflows/aoc-backfill-release.yml"
PUBLIC_KEY_IN_REPO = "tools/cosign/cosign.pub"
# A checkout that builds into another checkout's target directory: cargo names a workspace
# crate's files by its path relative to the workspace, so without a difference in profile the
# clone's crates would replace the other checkout's under the same names (a `cargo test` still
# running there then finds crates it did not build). The dependencies keep their own profile
# (`[profile.dev.package."*"]` in Cargo.toml) and stay shared.
SHARED_TARGET_ENV = {"CARGO_PROFILE_DEV_DEBUG": "line-tables-only"}
BUCKET = "aoc-releases"
# Host variables a stock runner also has; everything else in this process's environment (cargo's
# own variables when started from a test, AOC_*, COSIGN_*) is left out, as a fresh runner has none.
HOST_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TMPDIR",
            "RUSTUP_HOME", "CARGO_HOME", "http_proxy", "https_proxy", "no_proxy",
            "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
            # The preflight's key-check libraries, as a runner's tool cache would hold them.
            "AOC_KEYCHECK_LIBS")


class UsageError(Exception):
    pass


def say(msg):
    print(f"run-workflow: {msg}", file=sys.stderr, flush=True)


# --- Expressions -------------------------------------------------------------------------------

TOKEN = re.compile(r"""\s*(?:
    (?P<str>'(?:[^']|'')*')
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!().,\[\]*])
  | (?P<id>[A-Za-z_][A-Za-z0-9_-]*)
)""", re.X)


def tokenize(text):
    out, i = [], 0
    text = text.strip()
    while i < len(text):
        m = TOKEN.match(text, i)
        if not m or m.end() == i:
            raise UsageError(f"cannot parse expression near {text[i:]!r}")
        i = m.end()
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "str":
            value = value[1:-1].replace("''", "'")
        elif kind == "num":
            value = float(value) if "." in value else int(value)
        out.append((kind, value))
    return out


def truthy(v):
    return not (v is None or v is False or v == 0 or v == "")


def to_str(v):
    if v is None:
        return ""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def loose_eq(a, b):
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if type(a) is type(b):
        return a == b

    def num(v):
        if v is None:
            return 0
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, (int, float)):
            return v
        try:
            return float(v) if str(v).strip() else 0
        except ValueError:
            return float("nan")
    return num(a) == num(b)


def lookup(obj, name):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if str(k).lower() == str(name).lower():
                return v
    if isinstance(obj, list) and isinstance(name, int) and 0 <= name < len(obj):
        return obj[name]
    return None


class Expr:
    """A recursive-descent evaluator of the Actions expression language (the parts workflows use)."""

    def __init__(self, text, ctx, functions):
        self.toks = tokenize(text)
        self.i = 0
        self.ctx = ctx
        self.functions = functions

    def peek(self, value=None):
        if self.i >= len(self.toks):
            return None
        kind, v = self.toks[self.i]
        if value is not None and not (kind == "op" and v == value):
            return None
        return self.toks[self.i]

    def take(self, value):
        if not self.peek(value):
            raise UsageError(f"expected {value!r} in expression")
        self.i += 1

    def evaluate(self):
        v = self.or_()
        if self.i != len(self.toks):
            raise UsageError(f"unexpected {self.toks[self.i][1]!r} in expression")
        return v

    def or_(self):
        v = self.and_()
        while self.peek("||"):
            self.i += 1
            rhs = self.and_()
            v = v if truthy(v) else rhs
        return v

    def and_(self):
        v = self.eq()
        while self.peek("&&"):
            self.i += 1
            rhs = self.eq()
            v = rhs if truthy(v) else v
        return v

    def eq(self):
        v = self.cmp()
        while self.peek("==") or self.peek("!="):
            op = self.toks[self.i][1]
            self.i += 1
            rhs = self.cmp()
            v = loose_eq(v, rhs) if op == "==" else not loose_eq(v, rhs)
        return v

    def cmp(self):
        v = self.unary()
        while any(self.peek(o) for o in ("<", ">", "<=", ">=")):
            op = self.toks[self.i][1]
            self.i += 1
            rhs = self.unary()
            v = {"<": v < rhs, ">": v > rhs, "<=": v <= rhs, ">=": v >= rhs}[op]
        return v

    def unary(self):
        if self.peek("!"):
            self.i += 1
            return not truthy(self.unary())
        return self.postfix()

    def postfix(self):
        v = self.primary()
        while True:
            if self.peek("."):
                self.i += 1
                kind, name = self.toks[self.i]
                self.i += 1
                v = lookup(v, name)
            elif self.peek("["):
                self.i += 1
                key = self.or_()
                self.take("]")
                v = lookup(v, key)
            else:
                return v

    def primary(self):
        if self.i >= len(self.toks):
            raise UsageError("expression ends early")
        kind, v = self.toks[self.i]
        self.i += 1
        if kind in ("str", "num"):
            return v
        if kind == "op" and v == "(":
            inner = self.or_()
            self.take(")")
            return inner
        if kind == "id":
            if v in ("true", "false"):
                return v == "true"
            if v == "null":
                return None
            if self.peek("("):
                self.i += 1
                args = []
                while not self.peek(")"):
                    args.append(self.or_())
                    if self.peek(","):
                        self.i += 1
                self.take(")")
                fn = self.functions.get(v.lower())
                if fn is None:
                    raise UsageError(f"unsupported function {v}()")
                return fn(*args)
            return lookup(self.ctx, v)
        raise UsageError(f"unexpected {v!r} in expression")


INTERPOLATION = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def interpolate(text, ctx, functions):
    if not isinstance(text, str):
        return text
    return INTERPOLATION.sub(lambda m: to_str(Expr(m.group(1), ctx, functions).evaluate()), text)


def condition(text, ctx, functions, default="success()"):
    if text is None:
        text = default
    if isinstance(text, bool):
        return text
    text = str(text).strip()
    m = re.fullmatch(r"\$\{\{(.*)\}\}", text, re.S)
    if m:
        text = m.group(1)
    has_status = re.search(r"\b(success|failure|always|cancelled)\s*\(", text)
    if not has_status:
        text = f"success() && ({text})"
    return truthy(Expr(text, ctx, functions).evaluate())


def hash_files(workspace, *patterns):
    files = set()
    for pattern in patterns:
        for p in glob.glob(str(workspace / pattern), recursive=True):
            if os.path.isfile(p):
                files.add(p)
    if not files:
        return ""
    outer = hashlib.sha256()
    for p in sorted(files):
        with open(p, "rb") as f:
            outer.update(hashlib.sha256(f.read()).digest())
    return outer.hexdigest()


# --- Stand-ins ---------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """moto's S3 server on a loopback port with one empty bucket."""

    def __init__(self, workdir):
        exe = ROOT / "target/third-party/venv/bin/moto_server"
        if not exe.is_file():
            raise UsageError(f"{exe} is missing: run scripts/run-workflow-locally.sh (it installs moto)")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / "moto.log", "wb")
        self.proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=2).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise UsageError(f"moto_server did not start (see {workdir / 'moto.log'})")
                time.sleep(0.2)
        self.client().create_bucket(Bucket=BUCKET)
        say(f"S3 stand-in: moto on {self.endpoint}, bucket {BUCKET} (empty)")

    def client(self):
        # boto3 comes with moto; moto refuses unsigned object reads, as S3 does.
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="local-stand-in",
                            aws_secret_access_key="local-stand-in")

    def mirror(self, out):
        """Copies every object of the bucket into out/<bucket>/<key>: a copy of the bucket."""
        dest = out / BUCKET
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        s3 = self.client()
        count = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.startswith("/") or ".." in key.split("/"):
                    raise UsageError(f"bucket key {key!r} escapes the mirror")
                path = dest / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
                count += 1
        say(f"S3 stand-in: mirrored {count} object(s) of s3://{BUCKET} to {dest}")
        return dest

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


class Postgres:
    """A throwaway cluster from scripts/pg-test-cluster.sh in its own directory."""

    def __init__(self, service_id):
        self.dir = Path(tempfile.gettempdir()) / f"aoc-wf-pg-{os.getpid()}-{service_id}"
        env = {**os.environ, "AOC_PG_DIR": str(self.dir)}
        out = subprocess.run(["bash", str(ROOT / "scripts/pg-test-cluster.sh"), "start"], env=env,
                             stdout=subprocess.PIPE, text=True)
        m = re.search(r"@127\.0\.0\.1:(\d+)/", out.stdout)
        if out.returncode != 0 or not m:
            raise UsageError("scripts/pg-test-cluster.sh could not start PostgreSQL for the service")
        self.port = int(m.group(1))

    def stop(self):
        env = {**os.environ, "AOC_PG_DIR": str(self.dir)}
        subprocess.run(["bash", str(ROOT / "scripts/pg-test-cluster.sh"), "stop"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


SERVICE_PORTS = {"postgres": 5432}


def start_service(service_id, spec):
    image = str(spec.get("image", ""))
    name = image.split("/")[-1].split(":")[0]
    if name != "postgres":
        raise UsageError(f"service {service_id}: no local stand-in for image {image!r}")
    pg = Postgres(service_id)
    say(f"service {service_id} ({image}): stand-in PostgreSQL on 127.0.0.1:{pg.port} "
        f"(scripts/pg-test-cluster.sh, AOC_PG_DIR={pg.dir}); {service_id}:{SERVICE_PORTS[name]} in env "
        f"values is rewritten to it")
    return pg, f"{service_id}:{SERVICE_PORTS[name]}", f"127.0.0.1:{pg.port}"


def keygen(out, password, xtask):
    env = {**os.environ, "COSIGN_PASSWORD": password}
    cmd = [xtask, "keygen", "--out", str(out)] if xtask else \
        ["cargo", "xtask", "keygen", "--out", str(out)]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


# --- The run -----------------------------------------------------------------------------------


class StepFailed(Exception):
    pass


class Run:
    def __init__(self, args):
        self.args = args
        self.commit = subprocess.run(["git", "rev-parse", "--verify", args.commit + "^{commit}"],
                                     cwd=ROOT, check=True, stdout=subprocess.PIPE,
                                     text=True).stdout.strip()
        # The workflow as the commit has it, as a runner reads it.
        self.workflow_path = ROOT / args.workflow
        shown = subprocess.run(["git", "show", f"{self.commit}:{args.workflow}"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if shown.returncode != 0:
            raise UsageError(f"{args.workflow} is not in commit {self.commit[:12]}")
        self.wf = yaml.safe_load(shown.stdout)
        # YAML 1.1 reads the `on` key as the boolean true.
        if True in self.wf:
            self.wf["on"] = self.wf.pop(True)
        self.workdir = Path(args.workdir).resolve()
        self.workspace = self.workdir / "checkout"
        self.artifacts = self.workdir / "artifacts"
        self.cache = self.workdir / "cache"
        self.logs = self.workdir / "logs"
        self.secrets = {}
        self.vars = {}
        self.masks = []
        self.moto = None
        self.stand_in_public = None
        self.results = {}
        # Unique per run, as a runner's: cache keys made of it are never reused.
        self.run_id = f"{int(time.time())}{os.getpid()}"
        self.report = {"workflow": args.workflow, "commit": self.commit,
                       "jobs": {}}

    # Setup --------------------------------------------------------------------------------------

    def prepare(self):
        for d in (self.artifacts, self.logs, self.workdir / "tmp", self.workdir / "keys"):
            if d.exists():
                shutil.rmtree(d)
            d.mkdir(parents=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        keys = self.workdir / "keys"
        if self.args.stand_in_key:
            src = Path(self.args.stand_in_key)
            key, public = (src / "cosign.key").read_text(), (src / "cosign.pub").read_text()
            password = (src / "password").read_text().strip()
        else:
            password = random_secrets.token_urlsafe(18)
            keygen(keys / "stand-in", password, self.args.xtask)
            key = (keys / "stand-in/cosign.key").read_text()
            public = (keys / "stand-in/cosign.pub").read_text()
        say("production key stand-in: a generated cosign key pair (secrets.COSIGN_KEY_B64, "
            "secrets.COSIGN_PASSWORD)")
        self.secrets.update({
            "COSIGN_KEY_B64": base64.b64encode(key.encode()).decode(),
            "COSIGN_PASSWORD": password,
        })
        if self.args.public_key == "stand-in":
            self.stand_in_public = public
        elif self.args.public_key == "other":
            keygen(keys / "other", random_secrets.token_urlsafe(18), self.args.xtask)
            self.stand_in_public = (keys / "other/cosign.pub").read_text()
        if not self.args.no_s3:
            self.moto = Moto(self.workdir)
            self.vars.update({
                "AOC_RELEASE_BUCKET": BUCKET,
                "AOC_RELEASE_S3_ENDPOINT": self.moto.endpoint,
                "AOC_RELEASE_S3_REGION": "us-east-1",
            })
            self.secrets.update({
                "AOC_RELEASE_S3_ACCESS_KEY_ID": "local-stand-in",
                "AOC_RELEASE_S3_SECRET_ACCESS_KEY": "local-stand-in",
            })
        for kv, target in [(v, self.vars) for v in self.args.var] + \
                          [(s, self.secrets) for s in self.args.secret]:
            if "=" not in kv:
                raise UsageError(f"{kv!r}: expected KEY=VALUE")
            k, v = kv.split("=", 1)
            target[k] = v
        self.masks = sorted((v for v in self.secrets.values() if len(v) >= 4), key=len,
                            reverse=True)

    def github(self, job_id):
        ref = self.args.ref
        return {
            "event_name": self.args.event,
            "ref": ref,
            "ref_name": ref.split("/", 2)[-1] if ref.startswith("refs/") else ref,
            "ref_type": "tag" if ref.startswith("refs/tags/") else "branch",
            "sha": self.commit,
            "workspace": str(self.workspace),
            "repository": "local/" + ROOT.name,
            "run_id": self.run_id,
            "run_number": "1",
            "run_attempt": "1",
            "job": job_id,
            "event": {"inputs": self.inputs()},
            "actor": "run-workflow-locally",
        }

    def inputs(self):
        declared = (self.wf.get("on") or {}).get("workflow_dispatch") or {}
        values = {}
        for name, spec in (declared.get("inputs") or {}).items():
            default = (spec or {}).get("default")
            values[name] = default
        for kv in self.args.input:
            k, v = kv.split("=", 1)
            spec = (declared.get("inputs") or {}).get(k) or {}
            values[k] = (v == "true") if spec.get("type") == "boolean" else v
        return values if self.args.event == "workflow_dispatch" else {}

    # Jobs ---------------------------------------------------------------------------------------

    def order(self):
        jobs = self.wf["jobs"]
        wanted = list(self.args.job) or list(jobs)
        for j in wanted + list(self.args.skip_job):
            if j not in jobs:
                raise UsageError(f"no job {j!r} in {self.workflow_path.name} (jobs: {', '.join(jobs)})")
        selected, seen, ordered = set(), set(), []

        def needs(j):
            n = jobs[j].get("needs") or []
            return [n] if isinstance(n, str) else list(n)

        def visit(j):
            if j in seen:
                return
            seen.add(j)
            for n in needs(j):
                visit(n)
            ordered.append(j)

        for j in wanted:
            visit(j)
        selected.update(ordered)
        return [j for j in ordered if j in selected], needs

    def run(self):
        start = time.time()
        order, needs = self.order()
        ok = True
        for job_id in order:
            job = self.wf["jobs"][job_id]
            job_report = {"steps": []}
            self.report["jobs"][job_id] = job_report
            if job_id in self.args.skip_job:
                say(f"job {job_id}: SKIPPED by --skip-job, counted as succeeded")
                self.results[job_id] = {"result": "success", "outputs": {}}
                job_report["result"] = "skipped-as-success"
                continue
            need_results = {n: self.results.get(n, {"result": "skipped", "outputs": {}})
                            for n in needs(job_id)}
            ctx = self.context(job_id, need_results, {}, {})
            funcs = self.functions(job_id, ctx, job_failed=False, needs=need_results)
            if not condition(job.get("if"), ctx, funcs):
                say(f"job {job_id}: skipped (`if` is false or a needed job did not succeed)")
                self.results[job_id] = {"result": "skipped", "outputs": {}}
                job_report["result"] = "skipped"
                continue
            t = time.time()
            result, outputs = self.run_job(job_id, job, need_results, job_report)
            job_report.update(result=result, seconds=round(time.time() - t, 1), outputs=outputs)
            self.results[job_id] = {"result": result, "outputs": outputs}
            say(f"job {job_id}: {result.upper()} in {time.time() - t:.1f} s")
            ok = ok and result == "success"
        self.report["ok"] = ok
        self.report["seconds"] = round(time.time() - start, 1)
        return ok

    def context(self, job_id, need_results, env, steps):
        return {
            "github": self.github(job_id),
            "env": env,
            "vars": self.vars,
            "secrets": self.secrets,
            "inputs": self.inputs(),
            "needs": need_results,
            "steps": steps,
            "runner": {"os": "Linux", "arch": "X64", "temp": str(self.workdir / "tmp"),
                       "name": "run-workflow-locally"},
            "job": {"status": "success"},
            "matrix": {},
            "strategy": {},
        }

    def functions(self, job_id, ctx, job_failed, needs=None):
        def success():
            if needs is not None:
                return all(n["result"] == "success" for n in needs.values())
            return not job_failed

        def failure():
            if needs is not None:
                return any(n["result"] == "failure" for n in needs.values())
            return job_failed

        return {
            "success": success,
            "failure": failure,
            "always": lambda: True,
            "cancelled": lambda: False,
            "contains": lambda a, b: (to_str(b).lower() in to_str(a).lower()) if not isinstance(a, list)
            else any(loose_eq(x, b) for x in a),
            "startswith": lambda a, b: to_str(a).lower().startswith(to_str(b).lower()),
            "endswith": lambda a, b: to_str(a).lower().endswith(to_str(b).lower()),
            "format": lambda f, *a: re.sub(r"\{(\d+)\}", lambda m: to_str(a[int(m.group(1))]), f),
            "join": lambda a, sep=",": to_str(sep).join(to_str(x) for x in (a or [])),
            "tojson": lambda v: json.dumps(v, indent=2),
            "fromjson": lambda s: json.loads(s),
            "hashfiles": lambda *p: hash_files(self.workspace, *p),
        }

    def evaluate_env(self, mapping, ctx, funcs):
        out = {}
        for k, v in (mapping or {}).items():
            out[str(k)] = to_str(interpolate(v if isinstance(v, str) else to_str(v), ctx, funcs))
        return out

    def run_job(self, job_id, job, need_results, job_report):
        if "container" in job:
            raise UsageError(f"job {job_id}: `container:` jobs are not supported here")
        if self.workspace.exists():
            shutil.rmtree(self.workspace)
        self.workspace.mkdir(parents=True)
        job_tmp = self.workdir / "tmp" / job_id
        job_tmp.mkdir(parents=True, exist_ok=True)
        say(f"job {job_id}: runs-on {job.get('runs-on')} -> this machine, workspace {self.workspace}")
        services, rewrites = [], []
        post = []
        steps_ctx, env_added, path_added = {}, {}, []
        failed = False
        deadline = time.time() + 60 * float(job.get("timeout-minutes", 360))
        try:
            for service_id, spec in (job.get("services") or {}).items():
                svc, old, new = start_service(service_id, spec or {})
                services.append(svc)
                rewrites.append((old, new))
            ctx = self.context(job_id, need_results, {}, steps_ctx)
            funcs = self.functions(job_id, ctx, False)
            wf_env = self.evaluate_env(self.wf.get("env"), ctx, funcs)
            ctx["env"] = wf_env
            job_env = {**wf_env, **self.evaluate_env(job.get("env"), ctx, funcs)}
            defaults = ((self.wf.get("defaults") or {}).get("run") or {}).copy()
            defaults.update(((job.get("defaults") or {}).get("run") or {}))
            for n, step in enumerate(job.get("steps") or [], 1):
                name = step.get("name") or step.get("uses") or (step.get("run") or "").split("\n")[0]
                ctx = self.context(job_id, need_results, {**job_env, **env_added}, steps_ctx)
                funcs = self.functions(job_id, ctx, failed)
                entry = {"name": name, "outcome": "skipped", "seconds": 0.0}
                job_report["steps"].append(entry)
                if not condition(step.get("if"), ctx, funcs):
                    say(f"  [{job_id} #{n}] {name}: skipped ("
                        + ("an earlier step failed" if failed else "`if` is false") + ")")
                    if step.get("id"):
                        steps_ctx[step["id"]] = {"outcome": "skipped", "conclusion": "skipped",
                                                 "outputs": {}}
                    continue
                step_env = {**job_env, **env_added,
                            **self.evaluate_env(step.get("env"), ctx, funcs)}
                for old, new in rewrites:
                    step_env = {k: v.replace(old, new) for k, v in step_env.items()}
                say(f"  [{job_id} #{n}] {name}")
                t = time.time()
                log = self.logs / f"{job_id}-{n:02d}.log"
                entry["log"] = str(log)
                outputs = {}
                try:
                    if "uses" in step:
                        outputs = self.uses(job_id, step, ctx, funcs, step_env, post, log)
                    else:
                        timeout = min(deadline - time.time(),
                                      60 * float(step.get("timeout-minutes", 1e6)))
                        outputs = self.run_step(job_id, step, ctx, funcs, step_env, env_added,
                                                path_added, defaults, log, timeout)
                    entry["outcome"] = "success"
                except StepFailed as e:
                    entry["outcome"] = "failure"
                    entry["error"] = str(e)
                    say(f"  [{job_id} #{n}] {name}: FAILED: {e}")
                    if not step.get("continue-on-error"):
                        failed = True
                entry["seconds"] = round(time.time() - t, 2)
                if step.get("id"):
                    steps_ctx[step["id"]] = {"outcome": entry["outcome"],
                                             "conclusion": entry["outcome"], "outputs": outputs}
        finally:
            for action in reversed(post):
                action()
            for svc in services:
                svc.stop()
        ctx = self.context(job_id, need_results, {}, steps_ctx)
        outputs = {k: to_str(interpolate(v, ctx, self.functions(job_id, ctx, failed)))
                   for k, v in (job.get("outputs") or {}).items()}
        return ("failure" if failed else "success"), outputs

    # Steps --------------------------------------------------------------------------------------

    def base_env(self, job_id):
        env = {k: os.environ[k] for k in HOST_ENV if k in os.environ}
        gh = self.github(job_id)
        env.update({
            "CI": "true", "GITHUB_ACTIONS": "true", "GITEA_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self.workspace), "GITHUB_REF": gh["ref"],
            "GITHUB_REF_NAME": gh["ref_name"], "GITHUB_REF_TYPE": gh["ref_type"],
            "GITHUB_SHA": self.commit, "GITHUB_EVENT_NAME": self.args.event,
            "GITHUB_REPOSITORY": gh["repository"], "GITHUB_RUN_ID": gh["run_id"],
            "GITHUB_JOB": job_id, "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64",
            "RUNNER_TEMP": str(self.workdir / "tmp" / job_id),
        })
        if self.args.cargo_target_dir:
            env["CARGO_TARGET_DIR"] = str(Path(self.args.cargo_target_dir).resolve())
            env.update(SHARED_TARGET_ENV)
        return env

    def run_step(self, job_id, step, ctx, funcs, step_env, env_added, path_added, defaults, log,
                 timeout):
        script = interpolate(step["run"], ctx, funcs)
        tmp = self.workdir / "tmp" / job_id
        files = {k: tmp / f"{k.lower()}-{time.time_ns()}" for k in
                 ("GITHUB_ENV", "GITHUB_PATH", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")}
        for f in files.values():
            f.write_text("")
        env = {**self.base_env(job_id), **step_env, **{k: str(v) for k, v in files.items()}}
        if path_added:
            env["PATH"] = os.pathsep.join(reversed(path_added)) + os.pathsep + env.get("PATH", "")
        shell = step.get("shell") or defaults.get("shell")
        script_file = tmp / f"step-{time.time_ns()}.sh"
        script_file.write_text(script)
        if shell in (None, ""):
            argv = ["bash", "-e", str(script_file)]
        elif shell == "bash":
            argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)]
        elif shell == "sh":
            argv = ["sh", "-e", str(script_file)]
        else:
            raise UsageError(f"shell {shell!r} is not supported here")
        cwd = self.workspace / interpolate(step.get("working-directory")
                                           or defaults.get("working-directory") or ".", ctx, funcs)
        self.execute(argv, cwd, env, log, timeout)
        for line in read_env_file(files["GITHUB_ENV"]).items():
            env_added[line[0]] = line[1]
        for p in files["GITHUB_PATH"].read_text().splitlines():
            if p.strip():
                path_added.append(p.strip())
        return read_env_file(files["GITHUB_OUTPUT"])

    def execute(self, argv, cwd, env, log, timeout):
        with open(log, "w") as out:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, text=True, errors="replace")
            timed_out = threading.Event()

            def kill():
                timed_out.set()
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

            # The whole process group goes when the step's time is up, output or not.
            watchdog = threading.Timer(max(timeout, 1), kill)
            watchdog.start()
            try:
                for line in proc.stdout:
                    for m in self.masks:
                        line = line.replace(m, "***")
                    out.write(line)
                    out.flush()
                    sys.stdout.write("  | " + line)
                    sys.stdout.flush()
                proc.wait()
            finally:
                watchdog.cancel()
                if proc.poll() is None:
                    kill()
                    proc.wait()
        if timed_out.is_set():
            raise StepFailed(f"timed out after {timeout:.0f} s (timeout-minutes)")
        if proc.returncode != 0:
            raise StepFailed(f"exit code {proc.returncode}")

    def uses(self, job_id, step, ctx, funcs, step_env, post, log):
        action = step["uses"]
        name, _, version = action.partition("@")
        with_ = {k: to_str(interpolate(v if isinstance(v, str) else to_str(v), ctx, funcs))
                 for k, v in (step.get("with") or {}).items()}
        lines = []

        def note(msg):
            lines.append(msg + "\n")
            say(f"    {msg}")

        try:
            if name == "actions/checkout":
                self.checkout(with_, note)
            elif name == "actions/cache":
                return self.cache_step(with_, post, note)
            elif name == "actions/cache/restore":
                return self.cache_restore(with_, note)
            elif name == "actions/cache/save":
                self.cache_save(with_, note)
            elif name == "actions/upload-artifact":
                self.upload(with_, note)
            elif name == "actions/download-artifact":
                self.download(with_, note)
            else:
                raise StepFailed(f"{action}: no local stand-in for this action")
        finally:
            log.write_text("".join(lines))
        return {}

    def checkout(self, with_, note):
        depth = int(with_.get("fetch-depth") or 1)
        ws = str(self.workspace)
        git = lambda *a: subprocess.run(["git", *a], cwd=ws, check=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        git("init", "-q")
        fetch = ["fetch", "-q"] + (["--depth", str(depth)] if depth > 0 else []) + \
            [f"file://{ROOT}", self.commit]
        git(*fetch)
        git("checkout", "-q", "--detach", "FETCH_HEAD")
        origin = subprocess.run(["git", "remote", "get-url", "origin"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if origin.returncode == 0 and origin.stdout.strip():
            git("remote", "add", "origin", origin.stdout.strip())
        note(f"actions/checkout stand-in: clone of {self.commit[:12]} (depth "
             f"{depth if depth > 0 else 'full'}) in {ws}")
        target = self.workspace / PUBLIC_KEY_IN_REPO
        if self.stand_in_public is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(self.stand_in_public)
            note(f"production public key stand-in: {PUBLIC_KEY_IN_REPO} written in the clone "
                 f"({self.args.public_key} key)")
        elif target.exists():
            target.unlink()
            note(f"--public-key none: {PUBLIC_KEY_IN_REPO} removed from the clone")

    def cache_step(self, with_, post, note):
        key = with_.get("key", "")
        if not key:
            raise StepFailed("actions/cache: no key")
        slot = self.cache / re.sub(r"[^A-Za-z0-9._-]", "_", key)
        hit = slot.is_dir()
        moved = []
        for i, p in enumerate(l.strip() for l in with_.get("path", "").splitlines()):
            if not p:
                continue
            if p.startswith("~") or p.startswith("/"):
                note(f"actions/cache stand-in: {p} is this machine's own (already present)")
                continue
            saved = slot / f"{i}-{re.sub(r'[^A-Za-z0-9._-]', '_', p)}"
            place = self.workspace / p
            if saved.exists():
                if place.exists():
                    shutil.rmtree(place)
                place.parent.mkdir(parents=True, exist_ok=True)
                os.rename(saved, place)
                note(f"actions/cache stand-in: restored {p} from {saved.parent}")
            moved.append((place, saved, p))

        def save():
            for place, saved, p in moved:
                if place.exists():
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    if saved.exists():
                        shutil.rmtree(saved)
                    os.rename(place, saved)
                    say(f"actions/cache stand-in: saved {p} to {saved.parent}")

        post.append(save)
        if not hit:
            note(f"actions/cache stand-in: no entry for key {key}: saved at the end of the job")
        return {"cache-hit": "true" if hit else "false"}

    def cache_paths(self, with_):
        """The workspace paths of a cache step, each with its place in a cache slot."""
        out = []
        for i, p in enumerate(l.strip() for l in with_.get("path", "").splitlines()):
            if not p:
                continue
            if p.startswith("~") or p.startswith("/"):
                raise StepFailed(f"{p}: the cache stand-in keeps workspace paths only")
            out.append((self.workspace / p, f"{i}-{re.sub(r'[^A-Za-z0-9._-]', '_', p)}", p))
        return out

    def cache_restore(self, with_, note):
        """actions/cache/restore: the entry of `key`, else the newest whose key starts with one of
        `restore-keys` (in their order), copied into the workspace."""
        key = with_.get("key", "")
        if not key:
            raise StepFailed("actions/cache/restore: no key")
        clean = lambda k: re.sub(r"[^A-Za-z0-9._-]", "_", k)
        slots = [d for d in self.cache.iterdir() if d.is_dir()] if self.cache.is_dir() else []
        found = self.cache / clean(key) if (self.cache / clean(key)).is_dir() else None
        for prefix in (l.strip() for l in with_.get("restore-keys", "").splitlines()):
            if found is not None or not prefix:
                break
            matches = [d for d in slots if d.name.startswith(clean(prefix))]
            if matches:
                found = max(matches, key=lambda d: d.stat().st_mtime)
        if found is None:
            note(f"actions/cache/restore stand-in: no entry for key {key} nor its restore-keys")
            return {"cache-hit": "false", "cache-primary-key": key}
        for place, name, p in self.cache_paths(with_):
            saved = found / name
            if not saved.exists():
                continue
            if place.exists():
                shutil.rmtree(place) if place.is_dir() else place.unlink()
            place.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(saved, place) if saved.is_dir() else shutil.copy2(saved, place)
            note(f"actions/cache/restore stand-in: restored {p} from {found}")
        return {"cache-hit": "true" if found.name == clean(key) else "false",
                "cache-primary-key": key, "cache-matched-key": found.name}

    def cache_save(self, with_, note):
        """actions/cache/save: the workspace paths copied to a new entry of `key` (an entry, once
        saved, is never replaced, as on a runner)."""
        key = with_.get("key", "")
        if not key:
            raise StepFailed("actions/cache/save: no key")
        slot = self.cache / re.sub(r"[^A-Za-z0-9._-]", "_", key)
        if slot.exists():
            note(f"actions/cache/save stand-in: an entry for key {key} exists: not saved again")
            return
        paths = [(place, name, p) for place, name, p in self.cache_paths(with_) if place.exists()]
        if not paths:
            note("actions/cache/save stand-in: none of the paths exists: nothing saved")
            return
        staging = Path(tempfile.mkdtemp(dir=self.cache, prefix=".saving-"))
        for place, name, p in paths:
            (shutil.copytree if place.is_dir() else shutil.copy2)(place, staging / name)
        os.rename(staging, slot)
        note(f"actions/cache/save stand-in: saved {', '.join(p for _, _, p in paths)} to {slot}")

    def upload(self, with_, note):
        name = with_.get("name") or "artifact"
        patterns = [p.strip() for p in with_.get("path", "").splitlines() if p.strip()]
        files, roots = [], []
        for pattern in patterns:
            # The search root: the part of the pattern before its first wildcard component.
            parts = Path(pattern).parts
            fixed = [c for c in parts[:next((i for i, c in enumerate(parts) if any(
                w in c for w in "*?[")), len(parts))]]
            root = self.workspace.joinpath(*fixed) if fixed else self.workspace
            if len(fixed) == len(parts) and not root.is_dir():
                root = root.parent
            roots.append(root)
            for p in glob.glob(str(self.workspace / pattern), recursive=True):
                p = Path(p)
                if p.is_dir():
                    files += [f for f in p.rglob("*") if f.is_file()]
                elif p.is_file():
                    files.append(p)
        if not files:
            if with_.get("if-no-files-found", "warn") == "error":
                raise StepFailed(f"upload-artifact {name}: no files match {patterns}")
            note(f"upload-artifact {name}: no files match {patterns}")
            return
        common = Path(os.path.commonpath([str(r) for r in roots]))
        dest = self.artifacts / name
        if dest.exists():
            shutil.rmtree(dest)
        for f in files:
            rel = f.relative_to(common)
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest / rel)
        note(f"upload-artifact stand-in: {len(files)} file(s) as {name} in {dest}")

    def download(self, with_, note):
        name = with_.get("name")
        path = self.workspace / (with_.get("path") or ".")
        names = [name] if name else sorted(p.name for p in self.artifacts.iterdir())
        for n in names:
            src = self.artifacts / n
            if not src.is_dir():
                raise StepFailed(f"download-artifact: no artifact named {n} in this run")
            dest = path if name else path / n
            shutil.copytree(src, dest, dirs_exist_ok=True)
            note(f"download-artifact stand-in: {n} to {dest}")

    def finish(self):
        if self.moto is not None:
            try:
                self.report["bucket"] = str(self.moto.mirror(self.workdir / "bucket"))
            except Exception as e:  # recorded: run.json is written whatever happened
                self.report["ok"] = False
                self.report["bucket_error"] = f"{type(e).__name__}: {e}"
                say(f"S3 stand-in: mirroring the bucket failed: {e}")
            finally:
                self.moto.stop()
        self.report["artifacts"] = str(self.artifacts)
        (self.workdir / "run.json").write_text(json.dumps(self.report, indent=2) + "\n")


def read_env_file(path):
    """KEY=VALUE lines and KEY<<DELIM heredocs, as $GITHUB_ENV and $GITHUB_OUTPUT hold them."""
    out, lines = {}, path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            body = []
            i += 1
            while i < len(lines) and lines[i] != delim:
                body.append(lines[i])
                i += 1
            out[key] = "\n".join(body)
        elif "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
        i += 1
    return out


def main(argv):
    ap = argparse.ArgumentParser(description="Run the release workflow locally, as act_runner would.")
    ap.add_argument("--workflow", default=DEFAULT_WORKFLOW)
    ap.add_argument("--job", action="append", default=[],
                    help="run this job and the jobs it needs (default: every job)")
    ap.add_argument("--skip-job", action="append", default=[],
                    help="do not run this job; count it as succeeded (e.g. test: the suite itself)")
    ap.add_argument("--event", default="push", choices=["push", "workflow_dispatch"])
    ap.add_argument("--ref", default="refs/tags/v0.0.0-local")
    ap.add_argument("--input", action="append", default=[], help="workflow_dispatch input K=V")
    ap.add_argument("--var", action="append", default=[], help="repository variable K=V")
    ap.add_argument("--secret", action="append", default=[], help="secret K=V (overrides a stand-in)")
    ap.add_argument("--commit", default="HEAD")
    ap.add_argument("--workdir", default=str(ROOT / "target/local-workflow"))
    ap.add_argument("--public-key", default="stand-in", choices=["stand-in", "none", "other"],
                    help="tools/cosign/cosign.pub in the clone: the stand-in key's public half, "
                         "none, or another key's")
    ap.add_argument("--stand-in-key", help="DIR with cosign.key, cosign.pub and password "
                                           "(default: generate with cargo xtask keygen)")
    ap.add_argument("--xtask", help="a built xtask binary for keygen (default: cargo xtask)")
    ap.add_argument("--cargo-target-dir", help="CARGO_TARGET_DIR for every step")
    ap.add_argument("--no-s3", action="store_true", help="do not start the S3 stand-in")
    args = ap.parse_args(argv)
    run = None
    try:
        run = Run(args)
        run.workdir.mkdir(parents=True, exist_ok=True)
        run.prepare()
        ok = run.run()
    except UsageError as e:
        say(f"error: {e}")
        return 2
    finally:
        if run is not None:
            run.finish()
    ok = ok and run.report.get("ok", False)
    say(f"{'SUCCESS' if ok else 'FAILURE'} in {run.report['seconds']} s; report {run.workdir / 'run.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
