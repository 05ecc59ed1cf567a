"""Kernel speed over commits: a SQLite history of results and the steps in it.

    convbench history add RESULT.json [--commit SHA] [--mode MODE] [--db DB]
    convbench history report [--db DB] [--machine-class C] [--html OUT.html]

    add(db, result_path, commit=None, mode=None) -> AddResult
    load(db) -> pandas.DataFrame                    # every row, as stored
    series(frame) -> DataFrame                      # + `norm_s`, ordered over commits
    find_steps(frame, threshold, alpha, min_size) -> DataFrame  # one row per step

The database (default `results/history.sqlite`) is plain SQLite; pandas reads it
directly: `pd.read_sql("SELECT * FROM results", sqlite3.connect(path))`.

Schema version 1 (`meta` table, key `schema_version`); table `results`, one
row per benchmark x sweep (a results file is one sweep):

    benchmark      name, e.g. conv2d/direct/ci:res3_3x3 (@tN with several thread counts)
    conv_type, algorithm, network, layer, spec, threads      from the benchmark's metadata
    commit_sha     the commit measured (`--commit`, the metadata's `commit`, or git HEAD)
    commit_date    its committer date (ISO 8601) when git knows it, else run_date
    run_date       date of the benchmark's first value (pyperf's run metadata)
    machine_class  as `harness.machine` names it (CPU model slug, ISA, cores)
    isa            vector ISA the kernels were compiled for
    mode           how the values were measured: `--mode`, else the sweep's pyperf options
                   ("run: --processes 3 ...") or "run" without them; `make bench-check`
                   adds "bench-check". Values of two modes are never in one series.
    set_name       the shape set
    n_values, min_s, median_s, values_json   the timed values (seconds; JSON list)
    calib_sgemm_gflops_1t, calib_sgemm_gflops, calib_bandwidth_gbs   the calibration
    source         the file the row came from
    run_key        SHA-256 of the benchmark's runs (values, dates, metadata): the run's identity
    added_at       when it was added

`UNIQUE(benchmark, run_key)`: adding a file twice (or a merged copy of a
shard) adds nothing the second time.

A series is (machine_class, mode, benchmark): rows of two machine classes are
never in one series, and never compared. Its point per row is the minimum
value (the gate's estimator: other jobs only add time), normalised by the
calibration: divided by `harness.compare.calibration_factor` against the
median calibration of the series (within its 5 % tolerance: no change).
Steps are found by `harness.changepoint` (binary segmentation; a split must
pass a Bonferroni-corrected Mann-Whitney test and the gate's ratio threshold).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness import changepoint, compare
from harness.messages import clip
from harness.results import benchmark_records, load_suite, suite_class, unsharded_metadata

SCHEMA_VERSION = 1
DEFAULT_DB = Path("results") / "history.sqlite"
CALIB_COLUMNS = compare.CALIB_KEYS
SERIES_KEY = ["machine_class", "mode", "benchmark"]

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    benchmark TEXT NOT NULL,
    conv_type TEXT, algorithm TEXT, network TEXT, layer TEXT, spec TEXT, threads INTEGER,
    commit_sha TEXT NOT NULL,
    commit_date TEXT NOT NULL,
    run_date TEXT NOT NULL,
    machine_class TEXT NOT NULL,
    isa TEXT,
    mode TEXT NOT NULL,
    set_name TEXT,
    n_values INTEGER NOT NULL,
    min_s REAL NOT NULL,
    median_s REAL NOT NULL,
    values_json TEXT NOT NULL,
    {", ".join(f"{c} REAL" for c in CALIB_COLUMNS)},
    source TEXT,
    run_key TEXT NOT NULL,
    added_at TEXT NOT NULL,
    UNIQUE (benchmark, run_key)
);
CREATE INDEX IF NOT EXISTS results_series
    ON results (machine_class, mode, benchmark, commit_date, run_date);
"""


def database_error(db, exc: Exception) -> ValueError:
    """A one-line ValueError naming `db` for an SQLite error met while using it: a file
    that cannot be written (read-only, disk full) is not called a wrong file, and a damaged
    one says so."""
    cause = exc.__cause__ if isinstance(exc, pd.errors.DatabaseError) and exc.__cause__ \
        else exc
    text = str(cause)
    low = text.lower()
    where = clip(db, 150)
    if "readonly" in low or "read-only" in low:
        return ValueError(f"cannot write {where}: the database or its folder is read-only "
                          f"({clip(text, 80)})")
    if "full" in low:
        return ValueError(f"cannot write {where}: the disk is full ({clip(text, 80)})")
    if "unable to open" in low or "disk i/o" in low:
        return ValueError(f"cannot use {where}: {clip(text, 80)} (a read-only or full disk, "
                          "or a folder it cannot write its journal to)")
    if "locked" in low or "busy" in low:
        return ValueError(f"{where}: locked by another process ({clip(text, 80)}); try again")
    if "not a database" in low or "encrypted" in low:
        return ValueError(f"{where}: not a history database ({clip(text, 80)})")
    return ValueError(f"{where}: damaged history database ({clip(text, 80)}); restore it "
                      "from a copy, or move it away and add the results again")


@contextlib.contextmanager
def guarded(db):
    """SQLite errors while using `db` become `database_error`s naming it."""
    try:
        yield
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
        raise database_error(db, exc) from None


def connect(db) -> sqlite3.Connection:
    """Open (creating) a history database; ValueError for a file of another schema, a
    damaged one, or one that cannot be written."""
    db = Path(db)
    db.parent.mkdir(parents=True, exist_ok=True)
    if db.exists() and not db.is_file():
        raise ValueError(f"{clip(db, 150)}: not a regular file (a history database is one)")
    con = None
    try:
        with guarded(db):
            con = sqlite3.connect(str(db))
            con.executescript(SCHEMA)
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                              ).fetchone()
            if row is None:
                with con:
                    con.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                                (str(SCHEMA_VERSION),))
    except ValueError:
        if con is not None:
            con.close()
        raise
    if row is not None and row[0] != str(SCHEMA_VERSION):
        con.close()
        raise ValueError(f"{clip(db, 150)}: schema_version {row[0]}, this convbench reads "
                         f"{SCHEMA_VERSION}")
    return con


# --------------------------------------------------------------------------- adding


@dataclass
class AddResult:
    added: int
    already: int
    commit: str
    machine_classes: tuple[str, ...]


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def _commit_of(meta: dict, commit: str | None) -> tuple[str, str | None]:
    """(full sha or the name given, committer date or None)."""
    name = commit or meta.get("commit") or _git("rev-parse", "HEAD")
    if not name:
        raise ValueError("--commit: the result names no commit and this is not a git "
                         "checkout; pass --commit SHA")
    name = str(name).strip()
    full = _git("rev-parse", "--verify", "--quiet", name + "^{commit}")
    date = _git("show", "-s", "--format=%cI", full) if full else None
    return full or name, date


def _mode(meta: dict, mode: str | None) -> str:
    if mode:
        return mode
    try:
        pyperf_args = json.loads(meta.get("sweep_options") or "{}").get("pyperf") or []
    except (ValueError, AttributeError):
        pyperf_args = []
    return "run: " + " ".join(map(str, pyperf_args)) if pyperf_args else "run"


def _run_key(bench) -> str:
    runs = [(list(r.values), [list(w) for w in r.warmups], unsharded_metadata(r))
            for r in bench.get_runs()]
    return hashlib.sha256(json.dumps(runs, sort_keys=True, default=str).encode()).hexdigest()


def _iso(date) -> str:
    text = str(date)
    try:
        return datetime.datetime.fromisoformat(text).isoformat()
    except ValueError:
        return text


def rows_of(result_path, commit: str | None = None, mode: str | None = None) -> list[dict]:
    """The history rows of one results file (benchmarks without values are left out)."""
    suite = load_suite(result_path, require_benchmarks=True)
    machine_class = suite_class(suite, result_path)  # a series never mixes classes
    records = benchmark_records(suite)
    first = next(iter(records.values()))["meta"]
    sha, commit_date = _commit_of(first, commit)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    rows = []
    for bench in suite.get_benchmarks():
        name = bench.get_name()
        rec = records[name]
        values = rec["values"]
        if values.size == 0:
            continue
        meta = rec["meta"]
        info = compare._info(name, meta)
        dates = [r.get_metadata().get("date") for r in bench.get_runs()]
        dates = sorted(_iso(d) for d in dates if d)
        run_date = dates[0] if dates else now
        calib = compare._calib(meta)
        rows.append(dict(
            benchmark=name, conv_type=info["conv_type"], algorithm=info["algorithm"],
            network=info["network"], layer=info["layer"], spec=meta.get("spec"),
            threads=info["threads"], commit_sha=sha, commit_date=commit_date or run_date,
            run_date=run_date, machine_class=machine_class,
            isa=meta.get("isa"), mode=_mode(meta, mode), set_name=meta.get("set"),
            n_values=int(values.size), min_s=float(values.min()),
            median_s=float(np.median(values)), values_json=json.dumps(values.tolist()),
            **{c: calib.get(c) for c in CALIB_COLUMNS},
            source=str(result_path), run_key=_run_key(bench), added_at=now))
    return rows


def add(db, result_path, commit: str | None = None, mode: str | None = None) -> AddResult:
    """Add every benchmark of a results file as one row each; rows already there are skipped."""
    rows = rows_of(result_path, commit, mode)
    if not rows:
        raise ValueError(f"{clip(result_path, 150)}: no benchmark with timed values")
    columns = list(rows[0])
    con = connect(db)
    try:
        with guarded(db), con:
            before = con.total_changes
            con.executemany(
                f"INSERT OR IGNORE INTO results ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                [tuple(r[c] for c in columns) for r in rows])
            added = con.total_changes - before
    finally:
        con.close()
    return AddResult(added, len(rows) - added, rows[0]["commit_sha"],
                     tuple(sorted({r["machine_class"] for r in rows})))


# --------------------------------------------------------------------------- reading


def load(db) -> pd.DataFrame:
    """Every row of the history (an empty frame for a database without rows)."""
    if not Path(db).is_file():
        raise ValueError(f"--db: {clip(db, 150)} does not exist (add results with "
                         "`convbench history add`)")
    con = connect(db)
    try:
        with guarded(db):
            return pd.read_sql("SELECT * FROM results", con)
    finally:
        con.close()


def _normalised(group: pd.DataFrame) -> pd.Series:
    """min_s divided by the calibration factor against the series' median calibration."""
    ref = {c: float(group[c].median()) for c in CALIB_COLUMNS if group[c].notna().any()}
    out = []
    for row in group.itertuples(index=False):
        meta = {c: getattr(row, c) for c in CALIB_COLUMNS
                if getattr(row, c) is not None and not pd.isna(getattr(row, c))}
        threads = None if pd.isna(row.threads) else int(row.threads)
        factor = compare.calibration_factor(ref, meta, threads) or 1.0
        out.append(row.min_s / factor)
    return pd.Series(out, index=group.index)


def series(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows ordered per series over commits, with `norm_s` (normalised minimum)."""
    if frame.empty:
        return frame.assign(norm_s=pd.Series(dtype=float))
    frame = frame.sort_values(SERIES_KEY + ["commit_date", "run_date", "id"]).copy()
    frame["norm_s"] = np.nan
    for _, group in frame.groupby(SERIES_KEY, sort=False):
        frame.loc[group.index, "norm_s"] = _normalised(group)
    return frame


STEP_COLUMNS = SERIES_KEY + ["ratio", "before", "after", "before_date", "after_date",
                             "p_value", "index", "points"]


def find_steps(frame: pd.DataFrame, threshold: float = changepoint.DEFAULT_THRESHOLD,
               alpha: float = changepoint.DEFAULT_ALPHA,
               min_size: int = changepoint.DEFAULT_MIN_SIZE) -> pd.DataFrame:
    """One row per step of every series of `series(frame)`: its ratio (later / earlier:
    > 1 slower) and commit range (`before`: last commit of the earlier segment, `after`:
    first of the later)."""
    rows = []
    for key, group in frame.groupby(SERIES_KEY, sort=False):
        commits = group["commit_sha"].tolist()
        dates = group["commit_date"].tolist()
        for s in changepoint.steps(group["norm_s"].to_numpy(), commits, threshold, alpha,
                                   min_size):
            rows.append(dict(zip(SERIES_KEY, key), ratio=s.ratio, before=s.before,
                             after=s.after, before_date=dates[s.index - 1],
                             after_date=dates[s.index], p_value=s.p_value, index=s.index,
                             points=len(group)))
    return pd.DataFrame(rows, columns=STEP_COLUMNS)


def select(frame: pd.DataFrame, machine_class: str | None = None,
           benchmark: str | None = None, mode: str | None = None) -> pd.DataFrame:
    """Rows of one machine class / mode / benchmarks matching a glob (None: all)."""
    import fnmatch

    keep = pd.Series(True, index=frame.index)
    if machine_class:
        keep &= frame["machine_class"] == machine_class
    if mode:
        keep &= frame["mode"] == mode
    if benchmark:
        keep &= frame["benchmark"].map(lambda n: fnmatch.fnmatchcase(n, benchmark))
    return frame[keep]


# --------------------------------------------------------------------------- report


def short(commit: str) -> str:
    return commit[:10] if len(commit) == 40 else commit


def largest(steps: pd.DataFrame, n: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(largest slowdowns, largest speed-ups), n each, largest first."""
    up = steps[steps["ratio"] > 1].sort_values("ratio", ascending=False).head(n)
    down = steps[steps["ratio"] < 1].sort_values("ratio").head(n)
    return up, down


def report_text(frame: pd.DataFrame, steps: pd.DataFrame, n: int = 10) -> str:
    """Per machine class and mode: the series, their steps, the largest steps up and down."""
    if frame.empty:
        return "history: no results (add some with `convbench history add RESULT.json`)\n"
    lines = []
    for (mclass, mode), part in frame.groupby(["machine_class", "mode"], sort=True):
        st = steps[(steps["machine_class"] == mclass) & (steps["mode"] == mode)]
        lines.append(f"== machine class {mclass}, mode {mode}: {part['benchmark'].nunique()} "
                     f"benchmarks over {part['commit_sha'].nunique()} commits, "
                     f"{len(part)} runs; {len(st)} steps")
        for bench, group in part.groupby("benchmark", sort=True):
            bs = st[st["benchmark"] == bench]
            marks = ", ".join(f"x{r.ratio:.2f} at {short(r.before)}..{short(r.after)}"
                              for r in bs.itertuples())
            lines.append(f"  {bench}: {len(group)} runs, normalised min "
                         f"{compare._fmt_time(group['norm_s'].iloc[0])} -> "
                         f"{compare._fmt_time(group['norm_s'].iloc[-1])}"
                         + (f"; steps {marks}" if marks else ""))
        up, down = largest(st, n)
        for title, table in (("largest slowdowns", up), ("largest speed-ups", down)):
            if table.empty:
                continue
            lines.append(f"  -- {title}")
            for r in table.itertuples():
                lines.append(f"  x{r.ratio:6.3f}  {short(r.before)}..{short(r.after)}  "
                             f"({str(r.before_date)[:10]}..{str(r.after_date)[:10]})  "
                             f"{r.benchmark}  p={r.p_value:.2g}")
    return "\n".join(lines) + "\n"


def method_note(threshold: float, alpha: float, min_size: int) -> str:
    return (f"Steps: binary segmentation; a split needs a Mann-Whitney p < {alpha:g} "
            f"(Bonferroni over the splits searched) and a ratio of segment medians beyond "
            f"{threshold:g}, with at least {min_size} runs a side "
            "(harness.changepoint; its false-alarm rate is measured by "
            "`python -m harness.changepoint results/baseline/*.json`).")


def report(db, machine_class: str | None = None, benchmark: str | None = None,
           mode: str | None = None, threshold: float = changepoint.DEFAULT_THRESHOLD,
           alpha: float = changepoint.DEFAULT_ALPHA,
           min_size: int = changepoint.DEFAULT_MIN_SIZE) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(series frame, steps) of a history database, filtered."""
    frame = series(select(load(db), machine_class, benchmark, mode))
    return frame, find_steps(frame, threshold, alpha, min_size)



# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convbench history",
                                description="Kernel speed over commits (SQLite history)")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("add", help="add a results file (one row per benchmark)")
    a.add_argument("results", nargs="+", help="pyperf results file(s) of one commit")
    a.add_argument("--commit", help="the commit measured (default: the file's metadata, "
                                    "else git HEAD)")
    a.add_argument("--mode", help="how the values were measured (default: from the sweep's "
                                  "pyperf options)")
    a.add_argument("--db", default=str(DEFAULT_DB), help="history database (default %(default)s)")
    r = sub.add_parser("report", help="normalised time over commits, steps per benchmark")
    r.add_argument("--db", default=str(DEFAULT_DB), help="history database (default %(default)s)")
    r.add_argument("--machine-class", help="only this machine class")
    r.add_argument("--mode", help="only this mode")
    r.add_argument("--benchmark", help="only benchmarks matching this glob")
    r.add_argument("--threshold", type=float, default=changepoint.DEFAULT_THRESHOLD,
                   help="smallest step reported, as a ratio (default %(default)s)")
    r.add_argument("--alpha", type=float, default=changepoint.DEFAULT_ALPHA,
                   help="level of the split test (default %(default)s)")
    r.add_argument("--min-size", type=int, default=changepoint.DEFAULT_MIN_SIZE,
                   help="runs on each side of a step, at least (default %(default)s)")
    r.add_argument("--top", type=int, default=10, help="rows of the largest-steps tables")
    r.add_argument("--html", help="also write the history as a self-contained HTML page")
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "history":
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    try:
        if args.command == "add":
            for path in args.results:
                res = add(args.db, path, args.commit, args.mode)
                print(f"{path}: {res.added} rows added, {res.already} already there "
                      f"(commit {short(res.commit)}, machine class "
                      f"{', '.join(res.machine_classes)}) -> {args.db}")
            return 0
        frame, steps = report(args.db, args.machine_class, args.benchmark, args.mode,
                              args.threshold, args.alpha, args.min_size)
        sys.stdout.write(report_text(frame, steps, args.top))
        print(method_note(args.threshold, args.alpha, args.min_size))
        if args.html:
            from harness.report.history import write_page

            print(write_page(frame, steps, args.html, args.threshold, args.alpha,
                             args.min_size))
        return 0
    except (ValueError, OSError) as exc:
        print(f"convbench history: {clip(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
