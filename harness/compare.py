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
DataFrame and a `Verdict`, for reports; `machine_class()` names the baseline
file a machine compares against (``results/baseline/<machine-class>.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_THRESHOLD = 1.15
DEFAULT_ALPHA = 0.001
DEFAULT_CALIB_TOLERANCE = 0.05
PEER_ALGORITHMS = ("torch", "scipy")
NORMALISE = ("calib", "suite", "peers", "none")
ESTIMATORS = {"median": np.median, "min": np.min}
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

def load_suite(path):
    """A pyperf BenchmarkSuite from `path`, or CompareError with a clear message."""
    import pyperf

    path = Path(path)
    if not path.is_file():
        raise CompareError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as fh:
            json.load(fh)
    except UnicodeDecodeError as exc:
        raise CompareError(f"{path}: not a text file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise CompareError(f"{path}: malformed JSON at line {exc.lineno} column "
                           f"{exc.colno}: {exc.msg}") from None
    try:
        suite = pyperf.BenchmarkSuite.load(str(path))
    except Exception as exc:  # pyperf raises KeyError/TypeError/ValueError on bad layouts
        raise CompareError(f"{path}: valid JSON but not a pyperf suite "
                           f"({type(exc).__name__}: {exc})") from None
    if not suite.get_benchmarks():
        raise CompareError(f"{path}: the suite holds no benchmark")
    return suite


def _suite_metadata(suite) -> dict:
    try:
        return dict(suite.get_metadata())
    except Exception:
        return {}


def _records(suite) -> dict[str, dict]:
    """name -> {values, metadata} with the suite's common metadata as fallback."""
    common = _suite_metadata(suite)
    out = {}
    for bench in suite.get_benchmarks():
        meta = dict(common)
        meta.update(bench.get_metadata())
        values = np.asarray(bench.get_values(), dtype=float)
        out[bench.get_name()] = {"values": values, "meta": meta}
    return out


def _parse_name(name: str) -> dict:
    """`type/algorithm/network:layer[@tN]` -> its parts (best effort)."""
    parts = name.split("/", 2)
    conv_type, algorithm, rest = (parts + ["", "", ""])[:3] if len(parts) == 3 else (
        "", "", name)
    threads = None
    m = re.search(r"@t(\d+)$", rest)
    if m:
        threads = int(m.group(1))
        rest = rest[:m.start()]
    network, _, layer = rest.partition(":")
    return {"conv_type": conv_type, "algorithm": algorithm, "network": network,
            "layer": layer, "threads": threads}


def _info(name: str, meta: dict) -> dict:
    parsed = _parse_name(name)
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
    return info["algorithm"] in PEER_ALGORITHMS


# ---------------------------------------------------------------- statistics

def min_p_value(n1: int, n2: int) -> float:
    """Smallest two-sided p the exact Mann-Whitney U test can give for n1, n2 values."""
    if n1 == 0 or n2 == 0:
        return 1.0
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def lower_half(values: np.ndarray) -> np.ndarray:
    """The faster half of a sample (at least 1 value): what is left when load is removed."""
    v = np.sort(np.asarray(values, dtype=float))
    return v[:max(1, (len(v) + 1) // 2)]


def mann_whitney_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value (nan when it cannot be computed)."""
    from scipy.stats import mannwhitneyu

    if len(a) == 0 or len(b) == 0:
        return float("nan")
    if np.all(a == a[0]) and np.all(b == b[0]) and a[0] == b[0]:
        return 1.0
    try:
        return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
    except ValueError:
        return float("nan")


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
    if threshold < 1.0:
        raise CompareError(f"threshold must be >= 1.0, got {threshold}")
    if not 0.0 < alpha < 1.0:
        raise CompareError(f"alpha must be in (0, 1), got {alpha}")
    if estimator not in ESTIMATORS:
        raise CompareError(f"estimator must be one of {', '.join(ESTIMATORS)}, "
                           f"got {estimator!r}")
    if normalise not in NORMALISE:
        raise CompareError(f"normalise must be one of {', '.join(NORMALISE)}, "
                           f"got {normalise!r}")
    base = _records(load_suite(base_path))
    new = _records(load_suite(new_path))
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
    base_class, new_class = _class_of_meta(base_suite_meta), _class_of_meta(new_suite_meta)
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
        ratio = float(est(nv) / est(bv))
        p = (mann_whitney_p(lower_half(bv), lower_half(nv)) if estimator == "min"
             else mann_whitney_p(bv, nv))
        nb, nn = ((len(lower_half(bv)), len(lower_half(nv))) if estimator == "min"
                  else (len(bv), len(nv)))
        decidable = min_p_value(nb, nn) < alpha
        if not decidable:
            few_values = True
        significant = bool(p < alpha) if decidable else True
        gated = not _is_peer(info)
        if ratio > threshold and significant:
            status = "regression" if gated else "slower (peer)"
        elif ratio < 1.0 / threshold and significant:
            status = "improvement" if gated else "faster (peer)"
        elif ratio > 1.0 and p < alpha:
            status = "slower (below threshold)"
        elif ratio > threshold:
            status = "slower (not significant)"
        else:
            status = "same"
        if status == "regression":
            verdict.regressions.append(name)
        elif status == "improvement":
            verdict.improvements.append(name)
        rows.append(dict(name=name, **info, status=status, ratio=ratio, p_value=p,
                         significant=significant, base_median=float(np.median(bv)),
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


# ------------------------------------------------------------ machine class

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_class(cpu_model: str | None = None, cores: int | None = None,
                  isa: str | None = None) -> str:
    """A file-name-safe name for a kind of machine: CPU model slug, vector ISA, core count.

    `machine_class("AMD EPYC 9R14 96-Core Processor", 2, "avx512")` ->
    "amd-epyc-9r14-avx512-2c". Defaults to this machine and the ISA the kernels compile
    for (`kernels.target`, which honours CONVBENCH_ISA). The ISA is part of the class
    because two CPUs with one model name ("AMD EPYC" on Zen 3 and Zen 4) can differ in it,
    and the register-blocked kernels lose more without AVX-512 than any one calibration
    factor says. `isa=""` leaves it out (files recorded before the ISA was recorded).
    Results compare fairly only within a class.
    """
    model = cpu_model if cpu_model is not None else _cpu_model()
    n = cores if cores is not None else _cores()
    if isa is None:
        from kernels.target import TARGET

        isa = TARGET.isa
    text = re.sub(r"\((r|tm|c)\)", " ", model.lower())
    text = re.sub(r"@.*$", " ", text)
    text = re.sub(r"\b\d+-core\b|\bprocessor\b|\bcpu\b|\bwith\b.*$", " ", text)
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "unknown-cpu"
    return f"{slug}-{isa}-{n}c" if isa else f"{slug}-{n}c"


def machine_class_from_cpuinfo(text: str, cores: int | None = None) -> str:
    """The machine class of the CPU that a /proc/cpuinfo text describes."""
    from kernels.target import isa_from_cpuinfo

    model = "unknown-cpu"
    count = 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and model == "unknown-cpu":
            model = value.strip()
        if key == "processor":
            count += 1
    return machine_class(model, cores if cores is not None else max(1, count),
                         isa_from_cpuinfo(text))


def machine_class_of(path) -> str:
    """The machine class a suite file was measured on (from its metadata).

    Files that predate the ISA in the metadata get a class without it, which matches no
    current machine: they stay readable as history but gate nothing.
    """
    records = _records(load_suite(path))
    return _class_of_meta(next(iter(records.values()))["meta"])


def _class_of_meta(meta: dict) -> str:
    if meta.get("machine_class"):
        return str(meta["machine_class"])
    model = meta.get("cpu_model") or meta.get("cpu_model_name") or "unknown-cpu"
    cores = meta.get("cpu_count")
    return machine_class(str(model), int(cores) if cores else None, str(meta.get("isa", "")))


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


# pyperf metadata that names the machine or its paths: a committed baseline keeps only
# what describes the hardware class and the software versions.
HOST_METADATA = ("hostname", "python_executable", "python_config_args", "boot_time",
                 "platform", "command", "cpu_affinity")


def strip_host_metadata(path) -> None:
    """Remove HOST_METADATA from every metadata dict of a pyperf suite file, in place."""
    import json
    from pathlib import Path

    path = Path(path)
    data = json.loads(path.read_text())

    def scrub(node):
        if isinstance(node, dict):
            meta = node.get("metadata")
            if isinstance(meta, dict):
                for key in HOST_METADATA:
                    meta.pop(key, None)
            for value in node.values():
                scrub(value)
        elif isinstance(node, list):
            for value in node:
                scrub(value)

    scrub(data)
    path.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")
