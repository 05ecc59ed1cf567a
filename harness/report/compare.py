"""The comparison section: run B against run A, benchmark by benchmark.

Uses the regression gate's own engine (`harness.compare.compare_suites`:
medians normalised by the machine calibration, two-sided Mann–Whitney U,
a ratio threshold), so the report and `convbench compare` agree. Where that
module is unavailable a plain Mann–Whitney comparison stands in.

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

from .load import geomean, is_peer, load_suite

ALPHA = 0.05
THRESHOLD = 1.05


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
    try:
        from harness import compare as gate
    except ImportError:  # the gate module is optional for the report
        gate = None
    if gate is not None and hasattr(gate, "compare_suites"):
        table, verdict = gate.compare_suites(base, new)
        return Comparison(base, new, _decorate(table), float(verdict.geomean),
                          list(verdict.notes), engine="convbench compare (regression gate)",
                          threshold=float(verdict.threshold), alpha=float(verdict.alpha))
    return _fallback(base, new)


def _decorate(table: pd.DataFrame) -> pd.DataFrame:
    t = table.copy()
    status = t["status"].astype(str)
    t["verdict"] = np.where(
        status.isin(["regression", "slower (peer)", "slower (below threshold)"]), "slower",
        np.where(status.isin(["improvement", "faster (peer)"]), "faster",
                 np.where(status.isin(["missing", "new"]), status, "same")))
    return t


def _fallback(base: Path, new: Path) -> Comparison:
    from scipy.stats import mannwhitneyu

    a, _, _ = load_suite(base)
    b, _, _ = load_suite(new)
    a = a.set_index("name")
    b = b.set_index("name")
    rows = []
    for name in a.index.union(b.index):
        in_a, in_b = name in a.index, name in b.index
        ra = a.loc[name] if in_a else b.loc[name]
        row = dict(name=name, conv_type=ra["conv_type"], algorithm=ra["algorithm"],
                   network=ra["network"], layer=ra["layer"], threads=ra["threads"],
                   base_median=a.loc[name, "median"] if in_a else math.nan,
                   new_median=b.loc[name, "median"] if in_b else math.nan,
                   n_base=a.loc[name, "n_values"] if in_a else 0,
                   n_new=b.loc[name, "n_values"] if in_b else 0,
                   factor=1.0, gated=not is_peer(ra["algorithm"]))
        if in_a and in_b:
            va, vb = np.asarray(a.loc[name, "values"]), np.asarray(b.loc[name, "values"])
            ratio = float(np.median(vb) / np.median(va))
            try:
                p = float(mannwhitneyu(va, vb, alternative="two-sided").pvalue)
            except ValueError:
                p = math.nan
            sig = bool(p < ALPHA)
            if sig and ratio > THRESHOLD:
                status = "regression" if row["gated"] else "slower (peer)"
            elif sig and ratio < 1 / THRESHOLD:
                status = "improvement" if row["gated"] else "faster (peer)"
            else:
                status = "same"
            row.update(ratio=ratio, p_value=p, significant=sig, status=status)
        else:
            row.update(ratio=math.nan, p_value=math.nan, significant=False,
                       status="missing" if in_a else "new")
        rows.append(row)
    t = pd.DataFrame(rows)
    rank = t["status"].map(lambda s: 0 if s == "regression" else 8 if s == "missing"
                           else 9 if s == "new" else 1)
    t = t.assign(_rank=rank).sort_values(["_rank", "ratio", "name"],
                                         ascending=[True, False, True], na_position="last")
    t = t.drop(columns="_rank").reset_index(drop=True)
    gm = geomean(t.loc[t["gated"] & t["ratio"].notna(), "ratio"])
    return Comparison(base, new, _decorate(t), gm,
                      ["raw times, not normalised (the regression gate module is missing)"],
                      engine=f"Mann–Whitney U, alpha {ALPHA}, threshold {THRESHOLD}",
                      threshold=THRESHOLD, alpha=ALPHA)


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
