"""The comparison section: run B against run A, benchmark by benchmark.

Uses the regression gate's own engine (`harness.compare.compare_suites`:
medians normalised by the machine calibration, and its one decision rule,
`harness.stats.judge`: two-sided Mann–Whitney U and a ratio threshold), so the
report and `convbench compare` agree.

The result is a frame with one row per benchmark in either run: name,
conv_type, algorithm, threads, status, ratio (B / A, > 1: B slower), p_value,
significant, base_median, new_median, factor (normalisation), gated; sorted
worst offenders first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.compare import compare_suites

from .load import geomean


@dataclass
class Comparison:
    base: Path
    new: Path
    table: pd.DataFrame
    geomean: float
    notes: list[str] = field(default_factory=list)
    engine: str = ""
    threshold: float = math.nan
    alpha: float = math.nan

    @property
    def common(self) -> pd.DataFrame:
        return self.table[self.table["ratio"].notna()]


def compare_runs(base, new) -> Comparison:
    base, new = Path(base), Path(new)
    table, verdict = compare_suites(base, new)
    return Comparison(base, new, _decorate(table), float(verdict.geomean),
                      list(verdict.notes), engine="convbench compare (regression gate)",
                      threshold=float(verdict.threshold), alpha=float(verdict.alpha))


def _decorate(table: pd.DataFrame) -> pd.DataFrame:
    t = table.copy()
    status = t["status"].astype(str)
    t["verdict"] = np.where(
        status.isin(["regression", "slower (peer)", "slower (below threshold)"]), "slower",
        np.where(status.isin(["improvement", "faster (peer)"]), "faster",
                 np.where(status.isin(["missing", "new"]), status, "same")))
    return t


def per_type_geomeans(cmp: Comparison) -> pd.DataFrame:
    c = cmp.common
    if c.empty:
        return pd.DataFrame()
    g = c.groupby("conv_type").agg(
        benchmarks=("ratio", "size"), geomean_ratio=("ratio", geomean),
        worst=("ratio", "max"), best=("ratio", "min"),
        slower=("verdict", lambda v: int((v == "slower").sum())),
        faster=("verdict", lambda v: int((v == "faster").sum())))
    return g.reset_index()
