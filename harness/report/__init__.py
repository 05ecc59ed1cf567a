"""`convbench report`: result files -> one self-contained HTML page.

    build_report(results_paths, out_html, accuracy=None) -> Path
    main(argv) -> int            # convbench report RESULTS.json [B.json] [-o OUT.html]

Reads pyperf suite JSON written by the sweep runner (and the `<stem>.skips.json`
sidecars beside them) and writes a page with every plot embedded as a base64
PNG, so it opens offline. With several files and no `--merge`, the page
describes the last one and compares each later file against the first.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import pandas as pd

from harness.history import DEFAULT_DB
from harness.messages import clip
from harness.results import require_regular, require_replaceable

from .load import Results, load_results, result_stem

DEFAULT_HISTORY = DEFAULT_DB  # the history database the report reads when it exists

__all__ = ["Results", "build_report", "load_accuracy", "load_results", "main"]


def load_accuracy(accuracy) -> pd.DataFrame | None:
    """The Winograd accuracy table: a DataFrame, a CSV/JSON path, or None.

    Columns: algorithm, channels, max_rel_error (extra columns are kept); the wide form
    (channels, then one column per algorithm) is accepted too.
    """
    if accuracy is None:
        return None
    if isinstance(accuracy, pd.DataFrame):
        df = accuracy
    else:
        path = require_regular(accuracy, "accuracy table")
        df = pd.read_json(path) if path.suffix == ".json" else pd.read_csv(path)
    if "max_rel_error" not in df.columns and "channels" in df.columns:
        # wide form (channels, then one column per algorithm): channels, direct, winograd_f2, ...
        df = df[pd.to_numeric(df["channels"], errors="coerce").notna()]
        df = df.melt(id_vars=["channels"], var_name="algorithm", value_name="max_rel_error")
    missing = {"algorithm", "channels", "max_rel_error"} - set(df.columns)
    if missing:
        raise ValueError(f"accuracy: the table lacks column(s) {', '.join(sorted(missing))}")
    return df


def _accuracy_beside(path: Path) -> Path | None:
    cand = path.with_name(result_stem(path) + ".accuracy.csv")
    return require_regular(cand, "accuracy table") if cand.exists() else None


def load_numerics(path: Path | None) -> pd.DataFrame | None:
    """The numeric-range table (`python -m harness.checks.numeric_range --json`), or None."""
    if path is None or not Path(path).exists():
        return None
    require_regular(path, "numeric-range table")
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a numeric-range table ({exc})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path}: not a numeric-range table (expected a list of rows)")
    return pd.DataFrame(rows)


def build_report(results_paths, out_html, accuracy=None, *, merge: bool = False,
                 command: str | None = None, title: str | None = None,
                 history=DEFAULT_HISTORY) -> Path:
    """Write the HTML report for one or more result files; returns its path.

    One file: the report of that run. Several files: with `merge`, one run split
    across files; otherwise the report of the last file plus a comparison of
    each later file against the first (ratio, Mann–Whitney significance,
    geomean, worst offenders first). `accuracy` is the Winograd accuracy table
    (DataFrame or CSV path); without it, a `<stem>.accuracy.csv` beside the
    results is used when present, else that section is left out.
    """
    from . import html as page
    from .compare import compare_runs

    if isinstance(results_paths, (str, Path)):
        results_paths = [results_paths]
    paths = [Path(p) for p in results_paths]
    if not paths:
        raise ValueError("results: give at least one result file")
    for p in paths:
        if not p.exists():
            raise ValueError(f"results: {p} does not exist")
    require_replaceable(out_html, "report")  # before the work: a FIFO would block the write
    body_paths = paths if (merge or len(paths) == 1) else [paths[-1]]
    res = load_results(body_paths)
    if accuracy is None:
        found = _accuracy_beside(body_paths[-1])
        accuracy = found
    acc = load_accuracy(accuracy)
    numerics = load_numerics(body_paths[-1].with_name(result_stem(body_paths[-1])
                                                      + ".numerics.json"))
    comparisons = []
    if not merge and len(paths) > 1:
        base = paths[0]
        for other in paths[1:]:
            comparisons.append((compare_runs(base, other), result_stem(base),
                                result_stem(other)))
    if title is None:
        title = "convbench report: " + (" vs ".join(result_stem(p) for p in paths)
                                        if comparisons else
                                        ", ".join(result_stem(p) for p in body_paths))
    text = page.render(res, accuracy=acc, numerics=numerics, comparisons=comparisons,
                       command=command,
                       title=title, files=[p.name for p in paths], history=history)
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out




def default_output(paths, merge: bool = False) -> Path:
    stems = [result_stem(Path(p)) for p in paths]
    name = stems[0] if len(stems) == 1 or merge else "-vs-".join([stems[0], stems[-1]])
    return Path("reports") / f"{name}.html"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convbench report",
        description="Turn result files (pyperf JSON from `convbench bench`) into one "
                    "self-contained HTML report. Two files: the report of the second, with a "
                    "comparison against the first.")
    p.add_argument("results", nargs="+", help="result JSON file(s)")
    p.add_argument("-o", "--output", help="HTML file to write (default reports/<stem>.html)")
    p.add_argument("--accuracy", help="Winograd accuracy table (CSV with algorithm, channels, "
                                      "max_rel_error) from python -m kernels.accuracy_table --csv")
    p.add_argument("--merge", action="store_true",
                   help="treat several files as one run (shards) instead of comparing them")
    p.add_argument("--title", help="page title")
    p.add_argument("--history", default=str(DEFAULT_HISTORY),
                   help="history database for the section over commits, when it exists "
                        "(default %(default)s; convbench history add fills it)")
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "report" and not Path("report").exists():
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    out = Path(args.output) if args.output else default_output(args.results, args.merge)
    command = "convbench report " + shlex.join(argv)
    try:
        path = build_report(args.results, out, accuracy=args.accuracy, merge=args.merge,
                            command=command, title=args.title, history=args.history)
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"convbench report: {clip(where + (exc.strerror or str(exc)))}",
              file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"convbench report: {clip(exc)}", file=sys.stderr)
        return 2
    print(path)
    return 0
