"""The regression decision: is NEW slower (or faster) than BASE, and is that real?

One rule, after asv: a benchmark is *slower* when the ratio of the estimator
(``median`` or ``min``) of NEW to that of BASE is above ``threshold`` **and** the
two-sided Mann-Whitney U test gives ``p < alpha``; *faster* when the ratio is below
``1 / threshold`` and ``p < alpha``. With the ``min`` estimator the U test runs on
the faster half of each sample (other jobs on the machine only ever add time).
With few values the smallest p the U test can reach is at or above ``alpha`` (two
runs of n values each: p >= 2 / C(2n, n)); then significance cannot be decided
and the ratio alone decides.

`convbench compare`, `convbench ab`, the report's comparison and the gate study
all decide through `judge` (or `decide`, given a ratio and a p already computed).
DEFAULT_ALPHA is the level the gate study chose for the A/B gate
(results/baseline/*.gate-study*.txt) and the one `make bench-check` runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 1.15
DEFAULT_ALPHA = 0.01
ESTIMATORS = {"median": np.median, "min": np.min}

# Judgement.verdict values
SLOWER, FASTER = "slower", "faster"
SLOWER_BELOW_THRESHOLD = "slower (below threshold)"
SLOWER_NOT_SIGNIFICANT = "slower (not significant)"
SAME = "same"


@dataclass(frozen=True)
class Judgement:
    """The decision on one benchmark: ratio NEW/BASE, its p-value, and the verdict."""

    ratio: float
    p: float
    verdict: str
    significant: bool  # p < alpha, or True when the U test cannot reach alpha
    decidable: bool    # whether the U test can reach p < alpha with these sample sizes


def min_p_value(n1: int, n2: int) -> float:
    """Smallest two-sided p the exact Mann-Whitney U test can give for n1, n2 values."""
    if n1 == 0 or n2 == 0:
        return 1.0
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def lower_half(values: np.ndarray) -> np.ndarray:
    """The faster half of a sample (at least 1 value): what is left when load is removed."""
    v = np.sort(np.asarray(values, dtype=float))
    return v[:max(1, (len(v) + 1) // 2)]


def tested_size(n: int, estimator: str) -> int:
    """How many of n values the U test sees under `estimator` (the faster half for min)."""
    return max(1, (n + 1) // 2) if estimator == "min" and n else n


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


def check_settings(threshold: float, alpha: float, estimator: str) -> None:
    """ValueError naming the setting that is out of range."""
    if not threshold >= 1.0:
        raise ValueError(f"threshold must be >= 1.0, got {threshold}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, "
                         f"got {estimator!r}")


def decide(ratio: float, p: float, n_base: int, n_new: int, *,
           threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA) -> Judgement:
    """The rule itself, given the ratio, the U test's p and the sizes of the samples the
    test saw (`tested_size`)."""
    decidable = min_p_value(n_base, n_new) < alpha
    significant = bool(p < alpha) if decidable else True
    if ratio > threshold and significant:
        verdict = SLOWER
    elif ratio < 1.0 / threshold and significant:
        verdict = FASTER
    elif ratio > 1.0 and p < alpha:
        verdict = SLOWER_BELOW_THRESHOLD
    elif ratio > threshold:
        verdict = SLOWER_NOT_SIGNIFICANT
    else:
        verdict = SAME
    return Judgement(float(ratio), float(p), verdict, significant, decidable)


def judge(base_values, new_values, *, threshold: float = DEFAULT_THRESHOLD,
          alpha: float = DEFAULT_ALPHA, estimator: str = "median") -> Judgement:
    """Judge NEW's values against BASE's (times, already normalised): see the module."""
    check_settings(threshold, alpha, estimator)
    bv = np.asarray(base_values, dtype=float)
    nv = np.asarray(new_values, dtype=float)
    est = ESTIMATORS[estimator]
    ratio = float(est(nv) / est(bv))
    if estimator == "min":
        bv, nv = lower_half(bv), lower_half(nv)
    return decide(ratio, mann_whitney_p(bv, nv), len(bv), len(nv), threshold=threshold,
                  alpha=alpha)
