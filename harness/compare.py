"""`convbench compare BASE.json NEW.json`: the regression gate on kernel speed.

For every benchmark present in both pyperf suites, compare the medians of
the two runs and test whether the difference is real, the way asv does:

* ratio  = median(new) / median(base), after normalisation (below);
* significance: two-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``)
  on the values of the two runs, normalised the same way;
* a benchmark *regresses* when ``ratio > threshold`` **and** ``p < alpha``;
  it *improves* when ``ratio < 1/threshold`` and ``p < alpha``.

The command exits 1 when a gated benchmark regresses, 0 otherwise, and 2
when an input cannot be read (missing file, malformed JSON, not a pyperf
suite) or the two suites share no benchmark (a baseline of another set).
Peers (``torch``, ``scipy``) are reported but never fail the gate: their
speed is not ours to keep. Benchmarks only in BASE ("missing") or only in
NEW ("new") are listed, never compared. The geometric mean of the ratios
over the common kernel benchmarks summarises the whole suite.

Why the two conditions. pyperf's values are not independent draws (values
of one worker process share its memory layout, its compiled code and the
machine's state at that minute), so on a busy 2-core machine the U test
calls a 3 % drift "significant" in A/A runs; the ratio threshold absorbs
that drift. The threshold alone, in turn, would fire on a single noisy
sweep of one benchmark; the test asks that the whole distribution moved.
With few values the smallest p the U test can reach is above ``alpha``
(two runs of n values each: p >= 2 / C(2n, n)); then significance cannot
be decided and, as asv does, the ratio alone decides, with a warning.

Estimator (``--estimator``). ``median`` (default) is the asv/pyperf
convention. ``min`` compares the fastest values and runs the U test on the
faster half of each sample: other jobs on the machine only ever *add* time,
so on a shared 2-core runner the medians (and the U test on all values)
measure the neighbours' load as much as the kernel, while the fastest
values stay put. The gate study (`harness.gate_study`) measured exactly
that: A/A medians moved by up to 1.9x between sweeps, A/A minimums by 3 %.
``make bench-check`` uses ``min``.

Re-runs: given several NEW files (sweeps of the same commit), a benchmark
fails only if it regresses in every one. A single sweep can still catch a
benchmark whose three worker processes all ran beside a heavy job; CI
re-runs the set once after a failure and passes the two files together.

Normalisation (``--normalise``), so that a slower or busier machine is not
read as a regression:

* ``calib`` (default): each run stores its machine calibration
  (``calib_sgemm_gflops_1t``, ``calib_sgemm_gflops``, ``calib_bandwidth_gbs``).
  A benchmark's time is scaled by how much slower the NEW machine measured:
  ``factor = sqrt(peak_base / peak_new * bw_base / bw_new)``, where ``peak``
  is the 1-thread sgemm rate for 1-thread benchmarks and the all-threads
  rate otherwise. The geometric mean of the compute and the bandwidth
  ratios is used because convolutions sit on both sides of the roofline
  (depthwise and pointwise layers are bandwidth-bound, 3x3 layers
  compute-bound) and neither ratio alone describes them all; a machine
  uniformly 1.5x slower gives factor 1.5 either way. A factor within
  ``--calib-tolerance`` (default 5 %) of 1 is treated as 1: two calibrations
  of the same machine differ by a few percent of noise, and applying that
  noise to every benchmark would only add it to every ratio. When either
  run lacks the keys, the factor is 1 and a note says so.
* ``peers``: the geometric mean of the ratios of the peer benchmarks
  (torch, scipy) common to both runs. A peer is measured in the same sweep,
  minutes from the kernels, so it sees the machine's load as it was, which a
  calibration cached per machine does not; it is the better reference when
  the sweep includes peers and their library did not change between runs.
* ``suite``: the median over the common kernel benchmarks of their raw
  ratios. It absorbs a machine that was busier during the whole NEW sweep
  (other jobs on a shared CI runner), which neither a cached calibration
  nor a peer sees unless the peer ran at the same minutes; being a median,
  a few regressed kernels do not move it. Its blind spot: a change that
  slows *most* kernels alike (a shared block) reads as machine speed, so
  the gate still prints the calibration-normalised geomean for that case.
* ``none``: raw times (same machine, same load assumed).

`compare_suites(base, new, threshold, alpha)` returns the table as a pandas
DataFrame and a `Verdict`, for reports. The decision rule itself is
`harness.stats.judge`; `harness.machine.machine_class()` names the baseline file
a machine compares against (``results/baseline/<machine-class>.json``).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness import stats
from harness.machine import class_of_metadata
from harness.peers import PEERS
from harness.results import benchmark_records, load_suite, parse_name, suite_class
from harness.stats import DEFAULT_ALPHA, DEFAULT_THRESHOLD, ESTIMATORS

DEFAULT_CALIB_TOLERANCE = 0.05
NORMALISE = ("calib", "suite", "peers", "none")
CALIB_KEYS = ("calib_sgemm_gflops_1t", "calib_sgemm_gflops", "calib_bandwidth_gbs")

COLUMNS = ["name", "conv_type", "algorithm", "network", "layer", "threads", "status",
           "ratio", "p_value", "significant", "base_median", "new_median", "factor",
           "n_base", "n_new", "gated"]


class CompareError(ValueError):
    """An input that cannot be compared (unreadable, malformed, disjoint)."""


@dataclass
class Verdict:
    """What the gate decided, and why."""

    failed: bool
    threshold: float
    alpha: float
    regressions: list[str] = field(default_factory=list)
    improvements: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    geomean: float = float("nan")
    normalise: str = "calib"
    estimator: str = "median"
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def summary(self) -> str:
        if self.failed:
            head = (f"FAIL: {len(self.regressions)} significant regression(s) above "
                    f"{self.threshold:.2f}x")
        else:
            head = f"PASS: no significant regression above {self.threshold:.2f}x"
        return (f"{head} (ratio of {self.estimator}s, alpha {self.alpha:g}, normalised by "
                f"{self.normalise}); "
                f"geomean ratio {self.geomean:.3f}")


# --------------------------------------------------------------------- reading

def _load(path) -> dict[str, dict]:
    """name -> {values, meta} of a suite file, or CompareError with a clear message."""
    try:
        suite = load_suite(path, require_benchmarks=True)
        suite_class(suite, path)  # a file of several classes has no class to gate within
        return benchmark_records(suite)
    except ValueError as exc:
        raise CompareError(str(exc)) from None


def _info(name: str, meta: dict) -> dict:
    parsed = parse_name(name)
    info = {}
    for key, mkey in (("conv_type", "conv_type"), ("algorithm", "algorithm"),
                      ("network", "network"), ("layer", "layer"), ("threads", "threads")):
        value = meta.get(mkey, parsed[key])
        info[key] = value
    try:
        info["threads"] = int(info["threads"]) if info["threads"] is not None else None
    except (TypeError, ValueError):
        info["threads"] = None
    return info


# --------------------------------------------------------------- normalisation

def _calib(meta: dict) -> dict:
    out = {}
    for key in CALIB_KEYS:
        try:
            value = float(meta[key])
        except (KeyError, TypeError, ValueError):
            continue
        if value > 0 and math.isfinite(value):
            out[key] = value
    return out


def calibration_factor(base_meta: dict, new_meta: dict, threads: int | None = None,
                       tolerance: float = DEFAULT_CALIB_TOLERANCE) -> float | None:
    """How many times slower the NEW machine calibrated than BASE (None: unknown).

    Times of NEW are divided by this factor before comparing.
    """
    b, n = _calib(base_meta), _calib(new_meta)
    peak = "calib_sgemm_gflops_1t" if threads == 1 else "calib_sgemm_gflops"
    if peak not in b or peak not in n:
        peak = next((k for k in ("calib_sgemm_gflops", "calib_sgemm_gflops_1t")
                     if k in b and k in n), None)
    logs = []
    if peak:
        logs.append(math.log(b[peak] / n[peak]))
    if "calib_bandwidth_gbs" in b and "calib_bandwidth_gbs" in n:
        logs.append(math.log(b["calib_bandwidth_gbs"] / n["calib_bandwidth_gbs"]))
    if not logs:
        return None
    factor = math.exp(sum(logs) / len(logs))
    if abs(factor - 1.0) <= tolerance:
        return 1.0
    return factor


def _is_peer(info: dict) -> bool:
    return info["algorithm"] in PEERS


# ------------------------------------------------------------------ comparing

def compare_suites(base_path, new_path, threshold: float = DEFAULT_THRESHOLD,
                   alpha: float = DEFAULT_ALPHA, normalise: str = "calib",
                   calib_tolerance: float = DEFAULT_CALIB_TOLERANCE,
                   estimator: str = "median",
                   cross_class: bool = False) -> tuple[pd.DataFrame, Verdict]:
    """Compare two pyperf suite files; returns (table, verdict).

    Files of two machine classes (`machine_class`) raise CompareError unless
    `cross_class`, which compares them for information and never fails.

    The table has one row per benchmark in either suite (columns `COLUMNS`),
    sorted worst first: regressions, then by decreasing ratio, with missing
    and new benchmarks last. Raises CompareError on unreadable input.
    """
    try:
        stats.check_settings(threshold, alpha, estimator)
    except ValueError as exc:
        raise CompareError(str(exc)) from None
    if normalise not in NORMALISE:
        raise CompareError(f"normalise must be one of {', '.join(NORMALISE)}, "
                           f"got {normalise!r}")
    base = _load(base_path)
    new = _load(new_path)
    common = [n for n in base if n in new]
    if not common:
        raise CompareError(
            f"{base_path} and {new_path} share no benchmark: is the baseline from another "
            f"shape set? (refresh it with `make baseline`)")
    verdict = Verdict(failed=False, threshold=threshold, alpha=alpha, normalise=normalise,
                      estimator=estimator)
    est = ESTIMATORS[estimator]
    base_suite_meta = {k: v for k, v in next(iter(base.values()))["meta"].items()}
    new_suite_meta = {k: v for k, v in next(iter(new.values()))["meta"].items()}
    base_class, new_class = class_of_metadata(base_suite_meta), class_of_metadata(new_suite_meta)
    if base_class != new_class:
        if not cross_class:
            raise CompareError(
                f"{base_path} was measured on machine class {base_class} and {new_path} on "
                f"{new_class}: refusing to gate across classes. Kernels differ by CPU and "
                f"vector ISA in ways no calibration factor captures (without AVX-512 the "
                f"register-blocked kernels lose more than sgemm does), so the verdict would "
                f"judge the machines, not the change. Gate a change with `make bench-check` "
                f"(the reference commit timed beside it on this machine), or pass "
                f"--cross-class to see the table without a verdict.")
        verdict.notes.append(f"machine classes differ ({base_class} vs {new_class}): shown "
                             f"for information, never gated")
    bm, nm = base_suite_meta.get("cpu_model"), new_suite_meta.get("cpu_model")
    if bm and nm and bm != nm:
        verdict.notes.append(f"different CPU models ({bm} vs {nm}): normalised ratios are "
                             f"approximate")
    for meta, which in ((base_suite_meta, "BASE"), (new_suite_meta, "NEW")):
        if meta.get("slowdown") or meta.get("convbench_slowdown"):
            verdict.notes.append(f"{which} was measured with the test-only slowdown switch")

    # reference factor for --normalise peers / suite
    peer_factor = None
    if normalise == "suite":
        raw = [float(est(new[name]["values"]) / est(base[name]["values"]))
               for name in common if not _is_peer(_info(name, new[name]["meta"]))]
        if raw:
            peer_factor = float(np.median(raw))
            verdict.notes.append(f"normalised by the suite: median raw ratio of {len(raw)} "
                                 f"kernel benchmarks {peer_factor:.3f}")
    if normalise == "peers":
        logs = []
        for name in common:
            if _is_peer(_info(name, new[name]["meta"])):
                logs.append(math.log(est(new[name]["values"]) / est(base[name]["values"])))
        if logs:
            peer_factor = math.exp(sum(logs) / len(logs))
            verdict.notes.append(f"normalised by {len(logs)} peer benchmark(s): NEW/BASE "
                                 f"machine speed factor {peer_factor:.3f}")
        else:
            verdict.notes.append("no peer benchmark in both runs: times not normalised")

    rows = []
    few_values = False
    calib_missing = False
    factors = set()
    calib_logs: list[float] = []
    for name in common:
        b, n = base[name], new[name]
        info = _info(name, n["meta"])
        if normalise == "calib":
            factor = calibration_factor(b["meta"], n["meta"], info["threads"], calib_tolerance)
            if factor is None:
                calib_missing = True
                factor = 1.0
        elif normalise in ("peers", "suite"):
            factor = peer_factor or 1.0
        else:
            factor = 1.0
        factors.add(round(factor, 4))
        if normalise == "suite" and not _is_peer(info):
            cf = calibration_factor(b["meta"], n["meta"], info["threads"], calib_tolerance)
            calib_logs.append(math.log(float(est(n["values"]) / est(b["values"]))
                                       / (cf or 1.0)))
        bv, nv = b["values"], n["values"] / factor
        j = stats.judge(bv, nv, threshold=threshold, alpha=alpha, estimator=estimator)
        few_values = few_values or not j.decidable
        gated = not _is_peer(info)
        status = {stats.SLOWER: "regression" if gated else "slower (peer)",
                  stats.FASTER: "improvement" if gated else "faster (peer)"}.get(j.verdict,
                                                                                 j.verdict)
        if status == "regression":
            verdict.regressions.append(name)
        elif status == "improvement":
            verdict.improvements.append(name)
        rows.append(dict(name=name, **info, status=status, ratio=j.ratio, p_value=j.p,
                         significant=j.significant, base_median=float(np.median(bv)),
                         new_median=float(np.median(n["values"])), factor=factor,
                         n_base=len(bv), n_new=len(nv), gated=gated))
    for name in base:
        if name not in new:
            verdict.missing.append(name)
            v = base[name]["values"]
            rows.append(dict(name=name, **_info(name, base[name]["meta"]), status="missing",
                             ratio=float("nan"), p_value=float("nan"), significant=False,
                             base_median=float(np.median(v)), new_median=float("nan"),
                             factor=float("nan"), n_base=len(v), n_new=0, gated=False))
    for name in new:
        if name not in base:
            verdict.new.append(name)
            v = new[name]["values"]
            rows.append(dict(name=name, **_info(name, new[name]["meta"]), status="new",
                             ratio=float("nan"), p_value=float("nan"), significant=False,
                             base_median=float("nan"), new_median=float(np.median(v)),
                             factor=float("nan"), n_base=0, n_new=len(v), gated=False))
    if few_values:
        verdict.notes.append(
            f"too few values for the U test to reach p < {alpha:g} on some benchmarks: "
            f"their ratio alone decides (run pyperf with more values or processes)")
    if calib_logs:
        verdict.notes.append(f"geomean ratio normalised by calibration instead: "
                             f"{math.exp(sum(calib_logs) / len(calib_logs)):.3f} (a change "
                             f"that slows most kernels alike shows here, not in the table)")
    if calib_missing:
        verdict.notes.append("calibration missing from a run: those times are not normalised")
    if normalise == "calib" and factors != {1.0}:
        verdict.notes.append(
            "NEW machine calibrated " + ", ".join(f"{f:.3f}x" for f in sorted(factors))
            + " slower than BASE: times divided by that")

    df = pd.DataFrame(rows, columns=COLUMNS)
    gated_ratios = df.loc[df["gated"] & df["ratio"].notna(), "ratio"]
    if len(gated_ratios):
        verdict.geomean = float(np.exp(np.log(gated_ratios).mean()))
    order = {"regression": 0, "missing": 8, "new": 9}
    df["_rank"] = df["status"].map(lambda s: order.get(s, 1))
    df = df.sort_values(["_rank", "ratio", "name"], ascending=[True, False, True],
                        na_position="last").drop(columns="_rank").reset_index(drop=True)
    verdict.failed = bool(verdict.regressions) and base_class == new_class
    return df, verdict


# ------------------------------------------------------------------- output

def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def to_markdown(df: pd.DataFrame, verdict: Verdict, base_label: str = "BASE",
                new_label: str = "NEW") -> str:
    """The comparison as a markdown table for CI logs, worst first."""
    lines = [f"### Kernel speed: {new_label} vs {base_label}", "",
             f"**{verdict.summary()}**", ""]
    for note in verdict.notes:
        lines.append(f"- note: {note}")
    if verdict.missing:
        lines.append(f"- missing from NEW ({len(verdict.missing)}): "
                     + ", ".join(f"`{n}`" for n in verdict.missing))
    if verdict.new:
        lines.append(f"- new in NEW ({len(verdict.new)}): "
                     + ", ".join(f"`{n}`" for n in verdict.new))
    if lines[-1] != "":
        lines.append("")
    lines.append(f"| benchmark | base median | new median | ratio of {verdict.estimator}s | p "
                 f"| status |")
    lines.append("|---|---:|---:|---:|---:|---|")
    for r in df.itertuples(index=False):
        ratio = "-" if not math.isfinite(r.ratio) else f"{r.ratio:.3f}"
        p = "-" if not math.isfinite(r.p_value) else f"{r.p_value:.2g}"
        status = f"**{r.status}**" if r.status == "regression" else r.status
        lines.append(f"| `{r.name}` | {_fmt_time(r.base_median)} | {_fmt_time(r.new_median)} "
                     f"| {ratio} | {p} | {status} |")
    lines.append("")
    lines.append(f"ratio = normalised {verdict.estimator}(new) / {verdict.estimator}(base); "
                 f"regression = ratio > "
                 f"{verdict.threshold:.2f} and Mann-Whitney U p < {verdict.alpha:g}.")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convbench compare",
        description="Compare two pyperf result suites of convbench and gate on regressions: "
                    "exit 1 when a kernel is significantly slower than THRESHOLD times the "
                    "baseline, 2 on unreadable input, 0 otherwise.")
    p.add_argument("base", metavar="BASE.json", help="baseline suite (pyperf JSON)")
    p.add_argument("new", metavar="NEW.json", nargs="+",
                   help="suite to check (pyperf JSON); given several re-runs of the same "
                        "commit, a benchmark fails only if it regresses in every one")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, metavar="R",
                   help=f"ratio of medians above which a significant slowdown fails "
                        f"(default {DEFAULT_THRESHOLD})")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, metavar="A",
                   help=f"Mann-Whitney U significance level (default {DEFAULT_ALPHA})")
    p.add_argument("--normalise", choices=NORMALISE, default="calib",
                   help="how to correct for a slower or busier machine (default calib)")
    p.add_argument("--calib-tolerance", type=float, default=DEFAULT_CALIB_TOLERANCE,
                   metavar="F", help="calibration differences below this fraction are noise "
                                     f"(default {DEFAULT_CALIB_TOLERANCE})")
    p.add_argument("--estimator", choices=tuple(ESTIMATORS), default="median",
                   help="ratio of medians (default) or of minimums (robust to other load "
                        "on the machine, which only ever adds time)")
    p.add_argument("--cross-class", action="store_true",
                   help="compare files of different machine classes for information (never "
                        "fails); without it such a comparison is refused")
    p.add_argument("--markdown", metavar="FILE", help="also write the markdown table here")
    p.add_argument("--csv", metavar="FILE", help="also write the full table as CSV")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only the verdict line, not the table")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    results = []
    try:
        for path in args.new:
            results.append(compare_suites(args.base, path, args.threshold, args.alpha,
                                          normalise=args.normalise,
                                          calib_tolerance=args.calib_tolerance,
                                          estimator=args.estimator,
                                          cross_class=args.cross_class))
    except CompareError as exc:
        print(f"convbench compare: error: {exc}", file=sys.stderr)
        return 2
    texts = [to_markdown(df, v, base_label=Path(args.base).name, new_label=Path(path).name)
             for (df, v), path in zip(results, args.new)]
    verdicts = [v for _, v in results]
    confirmed = confirmed_regressions(verdicts) if all(v.failed for v in verdicts) else []
    if len(results) > 1:
        verdict_line = (f"{'FAIL' if confirmed else 'PASS'}: {len(confirmed)} regression(s) "
                        f"confirmed in all {len(results)} runs"
                        + (": " + ", ".join(confirmed) if confirmed else ""))
        texts.append(f"**{verdict_line}**\n")
    else:
        verdict_line = results[0][1].summary()
    text = "\n".join(texts)
    print(verdict_line if args.quiet else text, end="\n" if args.quiet else "")
    try:
        if args.markdown:
            Path(args.markdown).write_text(text, encoding="utf-8")
        if args.csv:
            pd.concat([df.assign(new_file=str(path)) for (df, _), path in
                       zip(results, args.new)]).to_csv(args.csv, index=False)
    except OSError as exc:
        print(f"convbench compare: error: cannot write output: {exc}", file=sys.stderr)
        return 2
    return 1 if confirmed else 0


def confirmed_regressions(verdicts) -> list[str]:
    """Benchmarks that regress in every one of several runs against the same baseline."""
    verdicts = list(verdicts)
    if not verdicts:
        return []
    common = set(verdicts[0].regressions)
    for v in verdicts[1:]:
        common &= set(v.regressions)
    return [n for n in verdicts[0].regressions if n in common]


if __name__ == "__main__":
    raise SystemExit(main())
