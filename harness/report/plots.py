"""The report's matplotlib figures, each returned as a Figure (None when there is
nothing to draw) and embedded as a base64 PNG by `to_data_uri`.

Figures are built with `matplotlib.figure.Figure` directly, so no pyplot
state or GUI backend is involved.
"""

from __future__ import annotations

import base64
import io
import math
import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from harness.peers import is_peer

from . import fmt
from .load import algorithm_order, geomean, main_threads, type_order

_FIXED_COLORS = {
    "direct": "#555555", "im2col": "#1f77b4", "winograd_f2": "#ff7f0e",
    "winograd_f4": "#d62728", "winograd_f6": "#9467bd", "separable": "#2ca02c",
    "torch": "#000000", "scipy": "#8c564b",
}
_SPARE = ["#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a"]
_TYPE_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*"]


def algorithm_color(algorithm: str) -> str:
    if algorithm in _FIXED_COLORS:
        return _FIXED_COLORS[algorithm]
    return _SPARE[sum(map(ord, algorithm)) % len(_SPARE)]


def algorithm_marker(algorithm: str) -> dict:
    color = algorithm_color(algorithm)
    if is_peer(algorithm):
        return dict(marker="D", markerfacecolor="white", markeredgecolor=color, color=color)
    return dict(marker="o", markerfacecolor=color, markeredgecolor=color, color=color)


def to_data_uri(fig: Figure, dpi: int = 100) -> str:
    buf = io.BytesIO()
    # the figures use constrained layout, so no bbox_inches="tight" (a second draw)
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _grid(n: int, ncols: int = 3, w: float = 4.6, h: float = 3.6):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(w * ncols, h * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _seconds_axis(ax, which: str = "y") -> None:
    f = FuncFormatter(lambda v, _: fmt.seconds(v, 2))
    (ax.yaxis if which == "y" else ax.xaxis).set_major_formatter(f)


def _pad_log_limits(ax) -> None:
    """Keep a log axis at least a decade wide so a single point shows in context."""
    for get, set_ in ((ax.get_xlim, ax.set_xlim), (ax.get_ylim, ax.set_ylim)):
        lo, hi = get()
        if lo > 0 and hi / lo < 10:
            mid = math.sqrt(lo * hi)
            set_(mid / 3.3, mid * 3.3)


def _algorithm_legend(fig_or_ax, algorithms, **kw):
    handles = [Line2D([], [], linestyle="none", markersize=7, label=a, **algorithm_marker(a))
               for a in algorithms]
    return fig_or_ax.legend(handles=handles, **kw)


def _ratio_axis(axis, lo: float, hi: float) -> None:
    """Ticks like 0.5×, 1×, 2× on a log axis, denser when the range is narrow."""
    subs = (1.0, 2.0, 5.0) if hi / lo < 150 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    axis.set_minor_formatter(NullFormatter())


# ------------------------------------------------------------------ time vs multiplications
def time_vs_multiplications(df: pd.DataFrame) -> Figure | None:
    """Per conv type: median time against the algorithm's multiplication count, log-log,
    with the line of equal time per multiplication through the direct kernels' median."""
    df = main_threads(df).dropna(subset=["median", "multiplications"])
    df = df[(df["median"] > 0) & (df["multiplications"] > 0)]
    if df.empty:
        return None
    types = type_order(df["conv_type"])
    fig, axes = _grid(len(types))
    for ax, t in zip(axes, types):
        sub = df[df["conv_type"] == t]
        for alg in algorithm_order(sub["algorithm"]):
            a = sub[sub["algorithm"] == alg]
            ax.errorbar(a["multiplications"], a["median"],
                        yerr=[a["median"] - a["q1"], a["q3"] - a["median"]],
                        linestyle="none", markersize=6, capsize=2, **algorithm_marker(alg))
        ours = sub[~sub["peer"]]
        base = ours[ours["algorithm"] == "direct"] if (ours["algorithm"] == "direct").any() \
            else ours
        if base.empty:
            base = sub
        spm = geomean(base["s_per_mult"])
        ax.set_xscale("log")
        ax.set_yscale("log")
        _pad_log_limits(ax)
        x0, x1 = ax.get_xlim()
        xs = np.geomspace(x0, x1, 50)
        ax.plot(xs, xs * spm, "--", color="#888888", linewidth=1,
                label=f"equal time per ×: {fmt.seconds(spm, 2)}")
        ax.set_xlim(x0, x1)
        ax.set_title(t)
        ax.set_xlabel("multiplications (the algorithm's count)")
        subs = (1.0, 2.0, 5.0) if x1 / x0 < 300 else (1.0,)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt.count(v, 2)))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("median time per call")
        y0, y1 = ax.get_ylim()
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if y1 / y0 < 300
                                              else (1.0,)))
        _seconds_axis(ax)
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(loc="upper left", fontsize=7, handlelength=2)
    algs = algorithm_order(df["algorithm"])
    _algorithm_legend(fig, algs, loc="outside lower center", ncols=min(len(algs), 8),
                      title="algorithm (hollow: peer library)")
    return fig


# ------------------------------------------------------------------------------ roofline
def roofline(df: pd.DataFrame) -> Figure | None:
    """Achieved GFLOP/s against arithmetic intensity under the calibrated roofs."""
    df = main_threads(df).dropna(subset=["gflops", "intensity"])
    df = df[(df["gflops"] > 0) & (df["intensity"] > 0)]
    if df.empty:
        return None
    peak = float(df["peak_gflops"].max())
    bw = float(df["calib_bandwidth_gbs"].max())
    if not (peak > 0 and bw > 0):
        return None
    fig = Figure(figsize=(10, 6), layout="constrained")
    ax = fig.subplots()
    types = type_order(df["conv_type"])
    markers = {t: _TYPE_MARKERS[i % len(_TYPE_MARKERS)] for i, t in enumerate(types)}
    for (t, alg), g in df.groupby(["conv_type", "algorithm"], sort=False):
        color = algorithm_color(alg)
        peer = is_peer(alg)
        ax.scatter(g["intensity"], g["gflops"], marker=markers[t], s=46,
                   facecolors="white" if peer else color, edgecolors=color, linewidths=1.3,
                   zorder=3)
    lo = min(df["intensity"].min(), peak / bw) / 3
    hi = max(df["intensity"].max(), peak / bw) * 3
    xs = np.geomspace(lo, hi, 200)
    ax.plot(xs, np.minimum(peak, bw * xs), color="#444444", linewidth=2)
    ax.axvline(peak / bw, color="#bbbbbb", linestyle=":", linewidth=1)
    ax.annotate(f"sgemm peak {peak:.3g} GFLOP/s", (hi, peak), xytext=(-5, 5),
                textcoords="offset points", ha="right", fontsize=9)
    ax.annotate(f"bandwidth {bw:.3g} GB/s", (lo * 1.3, bw * lo * 1.3), xytext=(6, -14),
                textcoords="offset points", fontsize=9)
    ax.annotate(f"ridge {peak / bw:.3g} flop/B", (peak / bw, peak), xytext=(4, -14),
                textcoords="offset points", fontsize=8, color="#777777")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (flop per byte of input + weights + output, float32)")
    ax.set_ylabel("achieved GFLOP/s (2 × direct multiplications / time)")
    ax.grid(True, which="major", alpha=0.3)
    algs = algorithm_order(df["algorithm"])
    leg = _algorithm_legend(ax, algs, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                            title="algorithm (colour)", fontsize=8)
    ax.add_artist(leg)
    ax.legend(handles=[Line2D([], [], marker=markers[t], linestyle="none", color="#666666",
                              markerfacecolor="#cccccc", label=t) for t in types],
              loc="lower left", bbox_to_anchor=(1.01, 0.0), title="conv type (marker)",
              fontsize=8)
    return fig


# ------------------------------------------------------------------------------ speedups
def speedups(df: pd.DataFrame) -> Figure | None:
    """Per layer: speedup over direct (every algorithm and peer) and torch time / our time."""
    df = main_threads(df)
    left = df[(df["algorithm"] != "direct") & df["speedup_over_direct"].notna()]
    right = df[(~df["peer"]) & df["ratio_to_torch"].notna()]
    panels = [(p, title, col) for p, title, col in (
        (left, "speedup over direct (direct time / time)", "speedup_over_direct"),
        (right, "ratio to torch (torch time / time; > 1 beats torch)", "ratio_to_torch"),
    ) if not p.empty]
    if not panels:
        return None
    rows = pd.concat([p for p, _, _ in panels])
    keys = (rows[["conv_type", "label", "threads"]].drop_duplicates()
            .assign(_t=lambda d: d["conv_type"].map({t: i for i, t in enumerate(
                type_order(rows["conv_type"]))}))
            .sort_values(["_t", "label"]))
    multi_threads = rows["threads"].nunique() > 1
    labels = [f"{t} · {lab}" + (f" @{int(th)}t" if multi_threads else "")
              for t, lab, th in zip(keys["conv_type"], keys["label"], keys["threads"])]
    ypos = {(t, lab, th): i for i, (t, lab, th) in enumerate(
        zip(keys["conv_type"], keys["label"], keys["threads"]))}
    n = len(labels)
    fig = Figure(figsize=(6.2 * len(panels) + 2.5, max(2.6, 0.32 * n + 1.6)),
                 layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    algs_seen = []
    for ax, (p, title, col) in zip(axes, panels):
        algs = algorithm_order(p["algorithm"])
        offsets = np.linspace(-0.25, 0.25, len(algs)) if len(algs) > 1 else [0.0]
        for off, alg in zip(offsets, algs):
            a = p[p["algorithm"] == alg]
            ys = [ypos[(t, lab, th)] + off for t, lab, th in
                  zip(a["conv_type"], a["label"], a["threads"])]
            ax.plot(a[col], ys, linestyle="none", markersize=7, **algorithm_marker(alg))
            if alg not in algs_seen:
                algs_seen.append(alg)
        ax.axvline(1.0, color="#888888", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        lo, hi = min(lo, 0.5), max(hi, 2.0)
        ax.set_xlim(lo, hi)
        _ratio_axis(ax.xaxis, lo, hi)
        ax.set_xlabel(title)
        ax.grid(True, axis="x", which="major", alpha=0.3)
        for i in range(n):
            if i % 2:
                ax.axhspan(i - 0.5, i + 0.5, color="#f3f3f3", zorder=0)
    axes[0].set_yticks(range(n), labels)
    axes[0].set_ylim(n - 0.5, -0.5)
    axes[0].set_ylabel("layer")
    _algorithm_legend(fig, algorithm_order(algs_seen), loc="outside lower center",
                      ncols=min(len(algs_seen), 8), title="algorithm (hollow: peer library)")
    return fig


# ------------------------------------------------------------------------ compile times
def compile_times(df: pd.DataFrame) -> Figure | None:
    """Compile seconds per (type, algorithm) kernel: median over layers, range as error."""
    d = df[(~df["peer"]) & (df["compile_seconds"] > 0)]
    if d.empty:
        return None
    g = d.groupby(["conv_type", "algorithm"])["compile_seconds"].agg(["median", "min", "max"])
    order = [(t, a) for t in type_order(d["conv_type"]) for a in algorithm_order(d["algorithm"])
             if (t, a) in g.index]
    g = g.loc[order]
    fig = Figure(figsize=(8.5, max(2.2, 0.3 * len(g) + 1.2)), layout="constrained")
    ax = fig.subplots()
    ys = np.arange(len(g))
    ax.barh(ys, g["median"], color=[algorithm_color(a) for _, a in g.index],
            xerr=[g["median"] - g["min"], g["max"] - g["median"]], capsize=2)
    ax.set_yticks(ys, [f"{t} / {a}" for t, a in g.index])
    ax.invert_yaxis()
    ax.set_xlabel("compile time (s; bar: median over layers, whisker: min–max)")
    ax.set_ylabel("conv type / algorithm")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


# ------------------------------------------------------------------------ thread scaling
def thread_scaling(df: pd.DataFrame) -> Figure | None:
    """Speedup over each benchmark's fewest-thread run, geometric mean over layers."""
    if df["threads"].nunique() < 2:
        return None
    key = ["source", "conv_type", "algorithm", "label"]
    d = df.copy()
    d["n_threads"] = d.groupby(key)["threads"].transform("nunique")
    d = d[d["n_threads"] > 1]
    if d.empty:
        return None
    base_t = d.groupby(key)["threads"].transform("min")
    base = d[d["threads"] == base_t].set_index(key)["median"]
    d["scaling"] = [base.get(tuple(k), math.nan) / m for k, m in zip(
        d[key].itertuples(index=False), d["median"])]
    types = type_order(d["conv_type"])
    fig, axes = _grid(len(types), ncols=3, w=4.2, h=3.4)
    tmax = float(d["threads"].max())
    for ax, t in zip(axes, types):
        sub = d[d["conv_type"] == t]
        tmin = float(sub["threads"].min())
        for alg in algorithm_order(sub["algorithm"]):
            a = sub[sub["algorithm"] == alg].groupby("threads")["scaling"].agg(geomean)
            ax.plot(a.index, a.values, markersize=6, **algorithm_marker(alg), label=alg)
        xs = np.array([tmin, tmax])
        ax.plot(xs, xs / tmin, ":", color="#999999", label="ideal (linear)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ticks = sorted(d["threads"].unique())
        ax.set_xticks(ticks, [f"{int(v)}" for v in ticks])
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
        ax.yaxis.set_major_locator(LogLocator(base=2))
        ax.yaxis.set_minor_formatter(NullFormatter())
        lo, hi = ax.get_ylim()
        ax.set_ylim(min(lo, 0.5), max(hi, 2.0))
        ax.set_title(t)
        ax.set_xlabel("threads")
        ax.set_ylabel("speedup over fewest threads (geomean)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return fig


# ---------------------------------------------------------------------- winograd accuracy
_TILE_RE = re.compile(r"winograd_f(\d+)")


def accuracy(acc: pd.DataFrame) -> Figure | None:
    """max relative error against the output tile size m of F(m×m, 3×3), one line per
    channel count; algorithms without tiles are drawn as dashed reference levels."""
    if acc is None or acc.empty or not {"algorithm", "channels", "max_rel_error"} <= set(acc):
        return None
    acc = acc.copy()
    acc["max_rel_error"] = pd.to_numeric(acc["max_rel_error"], errors="coerce")
    acc = acc[acc["max_rel_error"] > 0]
    if acc.empty:
        return None
    acc["tile"] = [int(m.group(1)) if (m := _TILE_RE.fullmatch(str(a))) else math.nan
                   for a in acc["algorithm"]]
    fig = Figure(figsize=(8, 4.8), layout="constrained")
    ax = fig.subplots()
    tiled = acc.dropna(subset=["tile"])
    chans = sorted(acc["channels"].unique())
    palette = _SPARE + list(_FIXED_COLORS.values())
    for i, ch in enumerate(chans):
        g = tiled[tiled["channels"] == ch].groupby("tile")["max_rel_error"].max()
        if not g.empty:
            ax.plot(g.index, g.values, "o-", color=palette[i % len(palette)],
                    label=f"{ch} channels")
    others = acc[acc["tile"].isna()].groupby("algorithm")["max_rel_error"].max()
    for alg, v in others.items():
        ax.axhline(v, linestyle="--", linewidth=1, color=algorithm_color(alg),
                   label=f"{alg} (max over channels)")
    ax.set_yscale("log")
    if not tiled.empty:
        ticks = sorted(tiled["tile"].unique())
        ax.set_xticks(ticks, [f"F({int(m)}×{int(m)}, 3×3)" for m in ticks])
    ax.set_xlabel("Winograd output tile")
    ax.set_ylabel("max relative error vs float64 reference")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


# ---------------------------------------------------------------------------- comparison
def comparison(cmp: pd.DataFrame, label_a: str, label_b: str) -> Figure | None:
    if cmp is None or cmp.empty:
        return None
    c = cmp.sort_values("ratio", ascending=True)
    n = len(c)
    fig = Figure(figsize=(9, max(2.4, 0.26 * n + 1.4)), layout="constrained")
    ax = fig.subplots()
    colors = ["#d62728" if v == "slower" else "#2ca02c" if v == "faster" else "#bbbbbb"
              for v in c["verdict"]]
    ax.barh(range(n), np.log2(c["ratio"]), color=colors)
    ax.set_yticks(range(n), c["name"], fontsize=7)
    ax.axvline(0, color="#444444", linewidth=1)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{2 ** v:.3g}×"))
    ax.set_xlabel(f"time ratio {label_b} / {label_a} (log scale; > 1: {label_b} slower)")
    ax.set_ylabel("benchmark")
    ax.legend(handles=[Line2D([], [], color=c_, linewidth=6, label=lab) for c_, lab in (
        ("#d62728", "significantly slower"), ("#2ca02c", "significantly faster"),
        ("#bbbbbb", "not significant"))], fontsize=8, loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    return fig
