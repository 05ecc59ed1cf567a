"""Steps in a benchmark's time over commits: binary segmentation with a rank test.

    steps(values, commits, threshold=1.05, alpha=0.01, min_size=3) -> list[Step]

The method, chosen because each piece is published, short and explainable:

* Where: the split k that minimises the summed absolute deviations of each
  side from its own median (an L1 cost, as in asv's step detection): one
  slow run weighs its distance, not its square.
* Whether: the gate's rank test, a two-sided Mann-Whitney U between the
  two sides (exact when one side is short), with its p multiplied by the
  number of splits searched (Bonferroni), so that having picked the best of
  n-1 splits does not make noise look significant. Pettitt's test (1979),
  the classic rank test for one change point, was tried first: its
  approximate p needs about ten runs after a step in a 100-commit series
  before it can fire, where this needs three.
* Binary segmentation (Scott and Knott 1974, Vostrikova 1981): a split that
  is accepted cuts the series in two, and each side is searched again.
* A split is accepted only when it is also large: the ratio of the two
  sides' medians is beyond `threshold` (either way). That is the gate's own
  two-condition rule (`harness.compare`: ratio threshold and a rank test),
  applied between adjacent segments instead of between two sweeps: pyperf
  values are not independent draws, and on a shared machine a rank test
  alone calls a 3 % drift significant.

Splits fall only between commits (several runs of one commit stay on one
side), and each side keeps at least `min_size` points, so a step needs a few
runs on each side before it is told from noise: asv has the same lag.
Points are ranked, so one run beside a heavy job (1.5x slower, as the gate
study saw twice in ten A/A sweeps) counts as one rank, not as 50 %.

`ruptures` (PELT, binary segmentation with a penalty on a cost) was not
added: its penalty must be tuned to each benchmark's noise scale, which a
rank test with a level does not need, and the method here is ~50 lines.

False alarms (`python -m harness.changepoint results/baseline/*.json`):
`false_alarm_rate` draws step-free series from A/A-like noise, resampled
from the per-process minimums stored in baseline files (each point the
minimum of 3 processes, as a `bench-check` sweep), times a sweep-to-sweep
drift (`DRIFT_SIGMA`, from the gate studies' A/A ratios), with a 1.5x outlier in
`OUTLIER_RATE` of the points (the stored gate study's two load spikes over
10 A/A sweeps of 15 benchmarks), and counts the series in which a step is
found; `detection_rate` plants a step and counts the series where it is
found within one commit of where it was planted. See docs/gate-and-history.md for the figures.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 1.05
DEFAULT_ALPHA = 0.01
DEFAULT_MIN_SIZE = 3
OUTLIER_RATE = 2 / 150
OUTLIER_FACTOR = 1.5
# Between sweeps the minimums drift more than between processes of one sweep: in both stored
# gate studies the worst A/A ratio over 15 benchmarks was about 1.03 (median of 10 sweeps);
# the largest of 15 normal deviates is about 1.74 sd, so a ratio of two sweeps has a log-sd
# of log(1.03) / 1.74 = 0.017, and one sweep 0.017 / sqrt(2) = 0.012.
DRIFT_SIGMA = 0.012


@dataclass(frozen=True)
class Step:
    """A change between points [.. index) and [index ..): between commits `before` and `after`."""

    index: int
    before: str  # last commit of the earlier segment
    after: str  # first commit of the later segment
    ratio: float  # median(later segment) / median(earlier segment): > 1 is slower
    p_value: float  # Bonferroni-corrected Mann-Whitney p of the split when accepted


def split_p(values: np.ndarray, k: int, searched: int) -> float:
    """The two-sided Mann-Whitney p of the first k points against the rest, times the
    number of splits searched (Bonferroni): the chance that noise alone gives a split
    this clear anywhere in the segment is at most this. Exact when a side is short (a
    step near the newest commit), the normal approximation otherwise."""
    from scipy.stats import mannwhitneyu

    left, right = values[:k], values[k:]
    method = "exact" if min(len(left), len(right)) <= 20 else "asymptotic"
    p = float(mannwhitneyu(left, right, alternative="two-sided", method=method).pvalue)
    return min(1.0, p * searched)


def best_split(values: np.ndarray, candidates: Sequence[int]) -> int:
    """The candidate split with the least total absolute deviation from each side's median
    (an L1 cost, as asv's step detection uses: one slow outlier weighs its distance, not
    its square)."""
    def cost(k):
        left, right = values[:k], values[k:]
        return (np.abs(left - np.median(left)).sum() + np.abs(right - np.median(right)).sum())

    return min(candidates, key=cost)


def _boundaries(commits: Sequence[str], lo: int, hi: int, min_size: int) -> list[int]:
    """Split points k in (lo, hi) where the commit changes, min_size points each side."""
    return [k for k in range(lo + min_size, hi - min_size + 1) if commits[k] != commits[k - 1]]


def _median_ratio(values: np.ndarray, lo: int, k: int, hi: int) -> float:
    return float(np.median(values[k:hi]) / np.median(values[lo:k]))


def split_points(values, commits, threshold: float = DEFAULT_THRESHOLD,
                 alpha: float = DEFAULT_ALPHA, min_size: int = DEFAULT_MIN_SIZE
                 ) -> list[tuple[int, float]]:
    """The accepted splits (index, corrected p), in order."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) != len(commits):
        raise ValueError(f"values: need one value per commit entry, got {values.shape} values "
                         f"for {len(commits)} commits")
    if threshold < 1.0:
        raise ValueError(f"threshold: {threshold} must be at least 1 (a ratio of times)")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: {alpha} must be between 0 and 1")
    if min_size < 1:
        raise ValueError(f"min_size: {min_size} must be at least 1")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError("values: times must be finite and positive")
    found: list[tuple[int, float]] = []
    todo = [(0, len(values))]
    while todo:
        lo, hi = todo.pop()
        cands = _boundaries(commits, lo, hi, min_size)
        if not cands:
            continue
        k = lo + best_split(values[lo:hi], [c - lo for c in cands])
        p = split_p(values[lo:hi], k - lo, len(cands))
        ratio = _median_ratio(values, lo, k, hi)
        if p < alpha and max(ratio, 1.0 / ratio) > threshold:
            found.append((k, p))
            todo += [(lo, k), (k, hi)]
    return sorted(found)


def steps(values, commits, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
          min_size: int = DEFAULT_MIN_SIZE) -> list[Step]:
    """The steps of a series ordered by commit (several points per commit allowed); each
    step's ratio is between the adjacent final segments."""
    commits = [str(c) for c in commits]
    values = np.asarray(values, dtype=float)
    found = split_points(values, commits, threshold, alpha, min_size)
    edges = [0] + [k for k, _ in found] + [len(values)]
    return [Step(k, commits[k - 1], commits[k], _median_ratio(values, edges[i], k, edges[i + 2]),
                 p) for i, (k, p) in enumerate(found)]


# ----------------------------------------------------------------- false-alarm study


def aa_noise(paths) -> np.ndarray:
    """Relative per-process minimums (each over its benchmark's median) of stored suites:
    the spread of one benchmark's speed between worker processes of one sweep."""
    import pyperf

    out = []
    for path in paths:
        for bench in pyperf.BenchmarkSuite.load(str(path)).get_benchmarks():
            mins = [min(r.values) for r in bench.get_runs() if r.values]
            if len(mins) >= 2:
                out.extend(np.asarray(mins) / np.median(mins))
    if not out:
        raise ValueError("paths: no benchmark with two or more timed processes")
    return np.asarray(out)


def _series(noise, length, processes, rng) -> np.ndarray:
    """A step-free series: each point the minimum of `processes` resampled processes,
    times a drift of the sweep, some points slowed by a load spike."""
    points = rng.choice(noise, size=(length, processes)).min(axis=1)
    spikes = rng.random(length) < OUTLIER_RATE
    drift = np.exp(rng.normal(0.0, DRIFT_SIGMA, length))
    return points * drift * np.where(spikes, OUTLIER_FACTOR, 1.0)


def false_alarm_rate(noise, length: int = 100, series: int = 500, processes: int = 3,
                     seed: int = 0, **kw) -> float:
    """Share of step-free series (one run per commit) in which a step is found."""
    rng = np.random.default_rng(seed)
    commits = [str(i) for i in range(length)]
    hits = sum(bool(split_points(_series(noise, length, processes, rng), commits, **kw))
               for _ in range(series))
    return hits / series


def detection_rate(noise, factor: float, length: int = 100, series: int = 500,
                   processes: int = 3, seed: int = 1, **kw) -> float:
    """Share of series with a step of `factor` planted at the middle that is found there
    (within one commit)."""
    rng = np.random.default_rng(seed)
    commits = [str(i) for i in range(length)]
    mid = length // 2
    hits = 0
    for _ in range(series):
        v = _series(noise, length, processes, rng)
        v[mid:] *= factor
        hits += any(abs(k - mid) <= 1 for k, _ in split_points(v, commits, **kw))
    return hits / series


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m harness.changepoint",
        description="False-alarm and detection rates of the history's change-point method "
                    "on A/A-like series resampled from stored suites")
    p.add_argument("suites", nargs="+", help="pyperf suites with several processes per "
                                             "benchmark (e.g. results/baseline/*.json)")
    p.add_argument("--length", type=int, default=100, help="commits per series")
    p.add_argument("--series", type=int, default=300)
    args = p.parse_args(argv)
    noise = aa_noise([s for s in args.suites if not s.endswith(".skips.json")])
    print(f"A/A noise: {len(noise)} process minimums; drift log-sd {DRIFT_SIGMA}; spikes "
          f"x{OUTLIER_FACTOR} in {OUTLIER_RATE:.1%} of points; {args.series} series of "
          f"{args.length} commits")
    print("threshold   alpha  false alarms  found x1.05  found x1.10  found x1.30")
    for threshold in (1.02, 1.05, 1.10):
        for alpha in (0.05, 0.01, 0.001):
            kw = dict(threshold=threshold, alpha=alpha, length=args.length, series=args.series)
            fa = false_alarm_rate(noise, **kw)
            det = [detection_rate(noise, f, **kw) for f in (1.05, 1.10, 1.30)]
            mark = "  <= default" if (threshold, alpha) == (DEFAULT_THRESHOLD,
                                                            DEFAULT_ALPHA) else ""
            print(f"{threshold:9.2f} {alpha:7.3f} {fa:13.1%}"
                  + "".join(f" {d:12.1%}" for d in det) + mark)
    return 0


if __name__ == "__main__":
    sys.exit(main())
