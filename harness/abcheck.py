"""`convbench ab`: the working tree against a reference commit, timed side by side here.

The speed gate of `make bench-check`, after airspeed velocity's `asv continuous`:
no stored absolute time is trusted, and the gate judges the change being submitted,
nothing older. Its reference is the main the change started from: `make begin` records
HEAD in `results/baseline/reference.txt` when work on a change begins, and the change
commits that file with itself. So a slowdown that landed earlier (perhaps measured on
a machine of another class, where it did not show) never fails an unrelated later
change; `convbench history report` is where such old steps are seen, per machine class.
A reference that is not an ancestor of HEAD is refused, saying so (`--ref REV` names
another). The reference commit is checked out as a git
worktree under `.convbench-cache/` with its own Numba cache, and every
benchmark is timed in both trees on this machine in one sitting,
interleaved process by process: for each benchmark, one pyperf worker
process of the reference, one of the working tree, and again (ABAB...),
`--processes` rounds in all. Machine, ISA, time of day and the load of other
jobs hit both sides alike, so they cancel out of the ratio.

Each side runs its own `python -m harness.worker` (the process starts in
that tree, which comes first on PYTHONPATH); the worker's `--job` JSON is
the contract between the two trees. pyperf calibrates the loop count once,
in the first process of a benchmark, and both sides then run that count.
The working tree's cell is verified against the float64 reference before
it is timed (the reference commit was verified when it was accepted).

The decision is `harness.compare`'s, unchanged: ratio of minimums (other
jobs only ever add time), Mann-Whitney U on the faster halves, threshold
and alpha; times are not normalised (one machine, one sitting). Benchmarks
flagged in the first pass are timed again (A/B once more, only those) and
only regressions both passes show fail. The test-only slowdown switch
(`CONVBENCH_SLOWDOWN`, `harness.slowdown`) applies to the working tree's side
only, so `CONVBENCH_SLOWDOWN=conv2d/direct=1.3 make bench-check` must fail.

Files in `--out`: `ref-1.json`, `new-1.json` (and `-2` for the confirmation
pass), pyperf suites rewritten after every benchmark, and `check.md`, the
tables and the verdict.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import compare, slowdown
from .machine import machine_class
from .results import write_suite
from .stats import DEFAULT_ALPHA, DEFAULT_THRESHOLD
from .sweep import SOURCE_ROOT, format_time, run_job, verified_jobs

REFERENCE_FILE = Path("results") / "baseline" / "reference.txt"
WORKTREES = Path(".convbench-cache")


class ReferenceUnavailable(RuntimeError):
    """The reference commit cannot be checked out here (shallow clone, no git)."""


class ReferenceNotAncestor(ValueError):
    """The recorded reference is not an ancestor of HEAD: the gate cannot say what the
    change is (a reference from another branch, or a rewritten history)."""


class NotInReference(RuntimeError):
    """The reference tree cannot run a benchmark (a cell or layer added since)."""


# --------------------------------------------------------------------------- the reference


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ReferenceUnavailable(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def recorded_reference(root: Path = SOURCE_ROOT) -> str:
    """The commit named in results/baseline/reference.txt (first word of the first line
    that is not a comment)."""
    path = root / REFERENCE_FILE
    if not path.is_file():
        raise ReferenceUnavailable(f"{path} does not exist: record a reference with "
                                   f"`make baseline`, or pass --ref REV")
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line.split()[0]
    raise ReferenceUnavailable(f"{path} names no commit")


def resolve(root: Path, rev: str) -> str:
    """The full hash of `rev`, or ReferenceUnavailable saying why not."""
    try:
        return _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except ReferenceUnavailable:
        shallow = (root / ".git" / "shallow").exists()
        raise ReferenceUnavailable(
            f"commit {rev} is not in this clone" + (" (a shallow clone: `git fetch "
                                                    "--unshallow` brings it)" if shallow else "")
        ) from None


def check_ancestor(root: Path, commit: str) -> int:
    """The number of commits from `commit` to HEAD; ReferenceUnavailable if `commit` is not
    an ancestor of HEAD (then the gate would judge more, or other, than this change)."""
    proc = subprocess.run(["git", "-C", str(root), "merge-base", "--is-ancestor", commit,
                           "HEAD"], capture_output=True, text=True)
    if proc.returncode == 1:
        raise ReferenceNotAncestor(
            f"reference {commit[:12]} is not an ancestor of HEAD: the gate judges the change "
            f"since the main it started from; record that with `make begin` at the start of a "
            f"change (it writes {REFERENCE_FILE}), or pass --ref REV")
    if proc.returncode != 0:
        raise ReferenceUnavailable(f"git merge-base: {proc.stderr.strip()}")
    return int(_git(root, "rev-list", "--count", f"{commit}..HEAD"))


def record_reference(root: Path = SOURCE_ROOT) -> str:
    """Write HEAD into results/baseline/reference.txt: the change starting now is judged
    against it (`make begin`). Returns the commit."""
    head = _git(root, "rev-parse", "HEAD")
    path = root / REFERENCE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# The reference commit of make bench-check (convbench ab): the main this "
                    "change started from.\n# `make begin` records HEAD here when work on a "
                    "change begins; commit it with the change.\n" + head + "\n",
                    encoding="utf-8")
    return head


def worktree(root: Path, commit: str, prefix: str = "ref") -> Path:
    """A checkout of `commit` under root/.convbench-cache/<prefix>-<hash> (made once, reused)."""
    path = root / WORKTREES / f"{prefix}-{commit[:12]}"
    if path.is_dir():
        try:
            if _git(path, "rev-parse", "HEAD") == commit and not _git(
                    path, "status", "--porcelain", "--untracked-files=no"):
                return path
        except ReferenceUnavailable:
            pass
        shutil.rmtree(path, ignore_errors=True)
    _git(root, "worktree", "prune")
    path.parent.mkdir(parents=True, exist_ok=True)
    _git(root, "worktree", "add", "--detach", "--force", str(path), commit)
    return path


# --------------------------------------------------------------------------- the sides


@dataclass
class Side:
    """One side of the comparison: a source tree and the environment of its workers."""

    label: str  # "ref" or "new"
    root: Path
    commit: str
    extra_env: dict = field(default_factory=dict)
    drop_env: tuple = ()


def sides(root: Path, ref_root: Path, ref_commit: str) -> tuple[Side, Side]:
    try:
        head = _git(root, "rev-parse", "HEAD")
        dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    except ReferenceUnavailable:
        head, dirty = "unknown", True
    return (Side("ref", ref_root, ref_commit, drop_env=(slowdown.ENV,)),
            Side("new", root, head + ("+changes" if dirty else "")))


def short(commit: str) -> str:
    """A commit as printed: 12 hex digits, and "+changes" for a tree with edits."""
    return commit[:12] + ("+changes" if commit.endswith("+changes") else "")


def _loops(bench) -> int | None:
    for run in bench.get_runs():
        loops = run.get_metadata().get("loops")
        if loops:
            return int(loops)
    return None


def _per_process(pyperf_args) -> tuple[list[str], int]:
    """pyperf options for one process of one side, and the number of rounds (--processes)."""
    args, rounds, skip = [], 3, False
    for i, a in enumerate(pyperf_args):
        if skip:
            skip = False
            continue
        if a in ("--processes", "-p"):
            rounds = int(pyperf_args[i + 1])
            skip = True
        elif a.startswith("--processes="):
            rounds = int(a.split("=", 1)[1])
        else:
            args.append(a)
    return args, max(1, rounds)


def time_job(job, metadata: dict, pair, pyperf_args, tmp: Path) -> dict:
    """Time one job on every side, interleaved (ABAB...): {label: Benchmark}.

    Raises NotInReference when the first side cannot run the job at all, RuntimeError on
    any other worker failure.
    """
    base_args, rounds = _per_process(pyperf_args)
    loops = next((int(base_args[i + 1]) for i, a in enumerate(base_args[:-1])
                  if a in ("--loops", "-l")), None)
    benches: dict = {}
    for _ in range(rounds):
        for side in pair:
            args = [*base_args, "--processes", "1"]
            if loops and "--loops" not in args and "-l" not in args:
                args += ["--loops", str(loops)]
            md = dict(metadata, ab_side=side.label, ab_commit=side.commit)
            bench, note = run_job(job, md, tmp, args, root=side.root,
                                         extra_env=side.extra_env, drop_env=side.drop_env)
            if bench is None:
                if side.label == "ref" and not benches:
                    raise NotInReference(note)
                raise RuntimeError(f"{side.label} side: {note}")
            loops = loops or _loops(bench)
            if side.label in benches:
                benches[side.label].add_runs(bench)
            else:
                benches[side.label] = bench
    return benches


@dataclass
class PassResult:
    files: dict  # label -> Path
    timed: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    new_only: list = field(default_factory=list)
    seconds: float = 0.0


def run_pass(the_plan, pair, out: Path, tag: str, pyperf_args, calibration: dict,
             rtol=None, names=None, err=None) -> PassResult:
    """Time the plan's jobs (only `names` if given) on every side into <label>-<tag>.json."""
    import pyperf

    err = err or sys.stderr
    files = {s.label: out / f"{s.label}-{tag}.json" for s in pair}
    for f in files.values():
        f.unlink(missing_ok=True)
    jobs = [j for j in the_plan.jobs if names is None or j.name in names]
    result = PassResult(files)
    suites: dict = {}
    t0 = time.monotonic()
    for step in verified_jobs(jobs, the_plan.set_name, calibration, rtol, err,
                              head=lambda i, n: f"[pass {tag} {i}/{n}]"):
        job = step.job
        if step.metadata is None:
            result.errors.append(f"{job.name}: verification failed: {step.check['error']}")
            print(f"  FAILED verification: {step.check['error']}", file=err)
            continue
        try:
            with tempfile.TemporaryDirectory(prefix="convbench-ab-") as tmp:
                benches = time_job(job, step.metadata, pair, pyperf_args, Path(tmp))
        except NotInReference as exc:
            result.new_only.append(job.name)
            print(f"  not in the reference (new since?), not compared: {exc}", file=err)
            continue
        except RuntimeError as exc:
            result.errors.append(f"{job.name}: {exc}")
            print(f"  ERROR: {exc}", file=err)
            continue
        for label, bench in benches.items():
            if label in suites:
                suites[label].add_benchmark(bench)
            else:
                suites[label] = pyperf.BenchmarkSuite([bench])
            write_suite(suites[label], files[label])
        mins = {s.label: min(benches[s.label].get_values()) for s in pair}
        first_min = mins[pair[0].label]
        print("  min " + "  ".join(
            f"{k} {format_time(v)}" + (f" ({v / first_min:.3f}x)" if i else "")
            for i, (k, v) in enumerate(mins.items())), file=err, flush=True)
        result.timed.append(job.name)
    result.seconds = time.monotonic() - t0
    return result


# --------------------------------------------------------------------------- the check


@dataclass
class CheckResult:
    exit_code: int
    confirmed: list
    flagged: list
    markdown: str
    seconds: float
    ref_commit: str


def check(the_plan, ref: str | None = None, out: Path = Path("results/bench-check"),
          pyperf_args=(), threshold: float = DEFAULT_THRESHOLD,
          alpha: float = DEFAULT_ALPHA, estimator: str = "min", rtol=None,
          root: Path = SOURCE_ROOT, ref_root: Path | None = None, err=None,
          confirm: bool = True) -> CheckResult:
    """The A/B gate over a plan: exit code 1 on a regression confirmed by a second pass.

    `ref_root` (tests, studies) uses a given tree as the reference instead of a
    worktree of `ref`.
    """
    from harness.calibrate import calibrate

    err = err or sys.stderr
    t0 = time.monotonic()
    if ref_root is None:
        commit = resolve(root, ref or recorded_reference(root))
        behind = check_ancestor(root, commit)
        print(f"ab: reference {commit[:12]} ({'--ref' if ref else 'the start of this change'}"
              f", {behind} commit(s) before HEAD): preparing its worktree", file=err, flush=True)
        ref_root = worktree(root, commit)
    else:
        commit = ref or "given-tree"
    pair = sides(root, Path(ref_root), commit)
    out.mkdir(parents=True, exist_ok=True)
    calibration = calibrate(err=err)
    print(f"ab: {len(the_plan.jobs)} benchmarks, reference {short(pair[0].commit)} "
          f"({pair[0].root}) vs working tree {short(pair[1].commit)}, machine class "
          f"{machine_class()}", file=err, flush=True)
    first = run_pass(the_plan, pair, out, "1", pyperf_args, calibration, rtol, err=err)
    if not first.timed:
        raise RuntimeError("ab: no benchmark was timed: " + "; ".join(first.errors[:5]))
    opts = dict(threshold=threshold, alpha=alpha, normalise="none", estimator=estimator)
    df, verdict = compare.compare_suites(first.files["ref"], first.files["new"], **opts)
    labels = dict(base_label=f"ref {short(pair[0].commit)}",
                  new_label=f"new {short(pair[1].commit)}")
    texts = [compare.to_markdown(df, verdict, **labels)]
    flagged = list(verdict.regressions)
    confirmed: list = []
    if flagged and confirm:
        print(f"ab: {len(flagged)} flagged ({', '.join(flagged)}); timing them again to "
              f"confirm", file=err, flush=True)
        second = run_pass(the_plan, pair, out, "2", pyperf_args, calibration, rtol,
                          names=set(flagged), err=err)
        if second.timed:
            df2, v2 = compare.compare_suites(second.files["ref"], second.files["new"], **opts)
            texts.append(compare.to_markdown(df2, v2, **labels))
            confirmed = compare.confirmed_regressions([verdict, v2])
        else:  # the re-run failed: keep the first pass's verdict rather than pass
            confirmed = flagged
    elif flagged:
        confirmed = flagged
    seconds = time.monotonic() - t0
    errors = first.errors
    line = (f"{'FAIL' if confirmed or errors else 'PASS'}: {len(confirmed)} regression(s) "
            f"confirmed" + (": " + ", ".join(confirmed) if confirmed else "")
            + (f"; {len(errors)} benchmark(s) could not be timed" if errors else "")
            + f" (working tree vs {commit[:12]}, {len(first.timed)} benchmarks, "
              f"{seconds:.0f} s)")
    for e in errors:
        texts.append(f"- error: {e}")
    if first.new_only:
        texts.append(f"- not in the reference, not compared: {', '.join(first.new_only)}")
    texts.append(f"**{line}**\n")
    text = "\n".join(texts)
    (out / "check.md").write_text(text, encoding="utf-8")
    return CheckResult(1 if confirmed or errors else 0, confirmed, flagged, text, seconds,
                       commit)
