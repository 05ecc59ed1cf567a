"""The seed article's ideas, computed by the suite's own kernels (nothing typed in).

- Checkerboard artifacts (seed section 6.1): a transposed convolution of an
  all-ones input with an all-ones kernel counts, per output pixel, how many
  kernel taps land there. Uneven when the kernel size is not divisible by
  the stride; in 2-D the pattern is the product of the two 1-D ones.
- Receptive field of stacked dilated 3x3 convolutions (section 7): an
  impulse propagated through `kernels.run` spreads to 3, 7, 15 (, 31)
  pixels with dilation 1, 2, 4 (, 8), nine weights per layer each time.
- Multiplication ratios (section 8): depthwise separable / standard conv on
  the article's 7x7x3 -> 5x5x128 example (about 12%), spatially separable /
  standard tending to 2/m, from `kernels.multiplications`, set beside the
  measured time ratios when the results contain those types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter

import kernels

from . import fmt
from .load import main_threads


def _first_algorithm(conv_type: str, spec) -> str:
    for alg in kernels.ALGORITHMS:
        if kernels.supports(conv_type, alg, spec) is None:
            return alg
    raise ValueError(f"no algorithm runs {conv_type} on {spec}")


def _run_ones(conv_type: str, spec, x=None) -> tuple[np.ndarray, str, bool]:
    """Run conv_type on an all-ones input (or `x`) with all-ones weights; also check it
    against the float64 oracle. Returns (output, algorithm, matches_reference)."""
    x0, weights = kernels.make_inputs(conv_type, spec, seed=0)
    x = np.ones_like(x0) if x is None else np.ascontiguousarray(x, np.float32)
    weights = tuple(np.ones_like(w) for w in weights)
    alg = _first_algorithm(conv_type, spec)
    y = kernels.run(conv_type, alg, spec, x, weights)
    ref = kernels.reference(conv_type, spec, x, weights)
    ok = bool(np.allclose(y, ref, rtol=1e-5, atol=1e-5))
    return np.asarray(y, np.float64), alg, ok


# ------------------------------------------------------------------------- checkerboard
@dataclass
class Overlap:
    kernel: int
    stride: int
    image: np.ndarray      # 2-D overlap counts
    profile: np.ndarray    # 1-D overlap counts
    interior: tuple        # distinct 2-D counts away from the borders
    interior_1d: tuple
    algorithm: str
    verified: bool         # kernels.run == kernels.reference
    product: bool          # 2-D == outer(1-D, 1-D)

    @property
    def divisible(self) -> bool:
        return self.kernel % self.stride == 0

    @property
    def even(self) -> bool:
        return len(self.interior) == 1


def checkerboard(kernel_sizes=(2, 3, 4, 5), strides=(1, 2, 3), size: int = 6) -> list[Overlap]:
    """Overlap counts of transposed convolutions of all-ones input and kernel."""
    out = []
    for s in strides:
        for k in kernel_sizes:
            spec2 = kernels.ConvSpec(n=1, c=1, k=1, size=(size, size), kernel=k, stride=s,
                                     transposed=True)
            img, alg, ok2 = _run_ones("transposed2d", spec2)
            spec1 = kernels.ConvSpec(n=1, c=1, k=1, size=(size, 1), kernel=(k, 1),
                                     stride=(s, 1), transposed=True)
            prof, _, ok1 = _run_ones("transposed2d", spec1)
            img, prof = img[0, 0], prof[0, 0, :, 0]
            b = k - 1  # borders where fewer input pixels reach
            inner = img[b:img.shape[0] - b, b:img.shape[1] - b] if b else img
            inner1 = prof[b:prof.shape[0] - b] if b else prof
            out.append(Overlap(
                kernel=k, stride=s, image=img, profile=prof,
                interior=tuple(sorted({int(round(v)) for v in inner.ravel()})),
                interior_1d=tuple(sorted({int(round(v)) for v in inner1})),
                algorithm=alg, verified=ok1 and ok2,
                product=bool(np.allclose(img, np.outer(prof, prof)))))
    return out


def checkerboard_table(overlaps: list[Overlap]) -> pd.DataFrame:
    rows = []
    for o in overlaps:
        rows.append({
            "kernel": o.kernel, "stride": o.stride,
            "k divisible by s": "yes" if o.divisible else "no",
            "1-D interior counts": ", ".join(map(str, o.interior_1d)),
            "2-D interior counts": ", ".join(map(str, o.interior)),
            "overlap": "even" if o.even else "uneven (checkerboard)",
            "2-D = 1-D ⊗ 1-D": "yes" if o.product else "NO",
            "run = reference": "yes" if o.verified else "NO",
        })
    return pd.DataFrame(rows)


def checkerboard_figure(overlaps: list[Overlap]) -> Figure:
    """One heatmap per (kernel, stride), each on its own colour scale, counts written in."""
    ks = sorted({o.kernel for o in overlaps})
    ss = sorted({o.stride for o in overlaps})
    fig = Figure(figsize=(2.9 * len(ks), 3.0 * len(ss)), layout="constrained")
    axes = fig.subplots(len(ss), len(ks), squeeze=False)
    for o in overlaps:
        ax = axes[ss.index(o.stride)][ks.index(o.kernel)]
        lo, hi = float(o.image.min()), float(o.image.max())
        ax.imshow(o.image, cmap="magma", vmin=lo - 0.15 * (hi - lo + 1), vmax=hi,
                  interpolation="nearest")
        if o.image.shape[0] <= 20:
            size = 6 if o.image.shape[0] <= 14 else 4.5
            for (i, j), v in np.ndenumerate(o.image):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=size,
                        color="white" if v < lo + 0.6 * (hi - lo) else "black")
        ax.set_title(f"k={o.kernel}, s={o.stride}: "
                     f"{'even' if o.even else 'uneven'} {'/'.join(map(str, o.interior))}",
                     fontsize=9, color="#222222" if o.even else "#b00000")
        ax.set_xticks([])
        ax.set_yticks([])
    for j, k in enumerate(ks):
        axes[-1][j].set_xlabel(f"output x (pixels), kernel {k}")
    for i, s in enumerate(ss):
        axes[i][0].set_ylabel(f"stride {s}: output y (pixels)")
    return fig


# -------------------------------------------------------------------- receptive field
@dataclass
class ReceptiveField:
    dilations: tuple
    extents: tuple          # stacked receptive field after each layer (pixels per side)
    single: tuple           # one layer alone: k + (k-1)(d-1), measured the same way
    params: tuple           # weights per layer
    maps: list              # support image after each layer
    algorithms: tuple


def _extent(img: np.ndarray) -> int:
    rows = np.nonzero(np.abs(img).sum(axis=1) > 0)[0]
    return int(rows.max() - rows.min() + 1) if rows.size else 0


def receptive_field(dilations=(1, 2, 4, 8), kernel: int = 3, size: int = 41) -> ReceptiveField:
    """Propagate an impulse through stacked 3x3 convolutions with the given dilations."""
    impulse = np.zeros((1, 1, size, size), np.float32)
    impulse[0, 0, size // 2, size // 2] = 1.0
    x = impulse
    extents, single, params, maps, algs = [], [], [], [], []
    for d in dilations:
        conv_type = "conv2d" if d == 1 else "dilated2d"
        spec = kernels.ConvSpec(n=1, c=1, k=1, size=(size, size), kernel=kernel, padding=d,
                                dilation=d)
        y, alg, _ = _run_ones(conv_type, spec, x)
        one, _, _ = _run_ones(conv_type, spec, impulse)
        x = (y > 0).astype(np.float32)  # keep the support; counts would overflow nothing
        maps.append(x[0, 0].copy())
        extents.append(_extent(x[0, 0]))
        single.append(_extent(one[0, 0]))
        params.append(math.prod(kernels.make_inputs(conv_type, spec)[1][0].shape))
        algs.append(f"{conv_type}/{alg}")
    return ReceptiveField(tuple(dilations), tuple(extents), tuple(single), tuple(params), maps,
                          tuple(algs))


def receptive_field_table(rf: ReceptiveField) -> pd.DataFrame:
    return pd.DataFrame({
        "layer": range(1, len(rf.dilations) + 1),
        "dilation": rf.dilations,
        "kernel run": rf.algorithms,
        "weights in the layer": rf.params,
        "one layer alone (k + (k-1)(d-1))": [f"{v}×{v}" for v in rf.single],
        "stacked receptive field": [f"{v}×{v}" for v in rf.extents],
    })


def receptive_field_figure(rf: ReceptiveField) -> Figure:
    n = len(rf.maps)
    fig = Figure(figsize=(3.1 * n, 3.4), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    size = rf.maps[0].shape[0]
    c = size // 2
    for ax, m, d, e in zip(axes, rf.maps, rf.dilations, rf.extents):
        ax.imshow(m, cmap="Blues", vmin=0, vmax=1.3, interpolation="nearest")
        h = e / 2
        ax.add_patch(Rectangle((c - h, c - h), e, e, fill=False, edgecolor="#d62728",
                               linewidth=1.2))
        ax.set_title(f"after dilation {d}: {e}×{e}", fontsize=10)
        ax.set_xlabel("input x (pixels)")
    axes[0].set_ylabel("input y (pixels)")
    return fig


# ------------------------------------------------------------------ multiplication ratios
def _mults(conv_type: str, algorithm: str, spec) -> int | None:
    try:
        return kernels.multiplications(conv_type, algorithm, spec)
    except ValueError:
        return None


def depthwise_separable_example() -> pd.DataFrame:
    """The article's 7x7x3 -> 5x5x128 with 3x3 filters: 86,400 vs 675 + 9,600."""
    spec = kernels.ConvSpec(n=1, c=3, k=128, size=7, kernel=3)
    conv = kernels.multiplications("conv2d", "direct", spec)
    dws = kernels.multiplications("depthwise_separable", "direct", spec)
    dw_spec = kernels.ConvSpec(n=1, c=3, k=3, size=7, kernel=3, groups=3)
    pw_spec = kernels.ConvSpec(n=1, c=3, k=128, size=spec.out_size, kernel=1)
    dw = kernels.multiplications("depthwise", "direct", dw_spec)
    pw = kernels.multiplications("pointwise", "direct", pw_spec)
    return pd.DataFrame([
        {"computation": "standard conv2d, 128 filters 3×3×3", "spec": str(spec),
         "multiplications": conv, "share of conv2d": "100%"},
        {"computation": "depthwise stage, 3 filters 3×3×1", "spec": str(dw_spec),
         "multiplications": dw, "share of conv2d": fmt.pct(100 * dw / conv)},
        {"computation": "pointwise stage, 128 filters 1×1×3", "spec": str(pw_spec),
         "multiplications": pw, "share of conv2d": fmt.pct(100 * pw / conv)},
        {"computation": "depthwise separable (kernels.multiplications)", "spec": str(spec),
         "multiplications": dws, "share of conv2d": fmt.pct(100 * dws / conv)},
    ])


def depthwise_separable_curve(filters=(3, 5), channels=(8, 16, 32, 64, 128, 256, 512, 1024),
                              size: int = 56) -> pd.DataFrame:
    rows = []
    for h in filters:
        for nc in channels:
            spec = kernels.ConvSpec(n=1, c=32, k=nc, size=size, kernel=h)
            rows.append({"h": h, "Nc": nc, "ratio":
                         kernels.multiplications("depthwise_separable", "direct", spec)
                         / kernels.multiplications("conv2d", "direct", spec)})
    return pd.DataFrame(rows)


def spatially_separable_example() -> tuple[pd.DataFrame, str]:
    """3x3 on 5x5: 81 vs 45 + 27 = 72; the source of the separable count."""
    spec = kernels.ConvSpec(n=1, c=1, k=1, size=5, kernel=3)
    direct = kernels.multiplications("spatially_separable", "direct", spec)
    sep, source = _separable_count(spec)
    return pd.DataFrame([
        {"computation": "3×3 kernel on a 5×5 image, direct", "multiplications": direct},
        {"computation": "3×1 then 1×3 passes (separable)", "multiplications": sep},
        {"computation": "ratio", "multiplications": f"{sep / direct:.3f}"},
    ]), source


def _separable_count(spec) -> tuple[int, str]:
    m = _mults("spatially_separable", "separable", spec)
    if m is not None:
        return m, "kernels.multiplications('spatially_separable', 'separable', …)"
    # the seed's own arithmetic, until the separable cell is registered
    (_, w), (kh, kw) = spec.size, spec.kernel
    oh, ow = spec.out_size
    count = spec.n * spec.k * spec.c * (oh * w * kh + oh * ow * kw)
    return count, "the seed's formula (the separable cell is not registered yet)"


def spatially_separable_curve(filters=(3, 5, 7), sizes=(8, 12, 16, 24, 32, 48, 64, 128, 256)):
    rows = []
    for m in filters:
        for n in sizes:
            spec = kernels.ConvSpec(n=1, c=1, k=1, size=n, kernel=m)
            sep, _ = _separable_count(spec)
            rows.append({"m": m, "N": n,
                         "ratio": sep / kernels.multiplications("spatially_separable", "direct",
                                                                spec)})
    return pd.DataFrame(rows)


def ratio_curves_figure(dws: pd.DataFrame, ss: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(11, 4), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    for i, (m, g) in enumerate(ss.groupby("m")):
        a1.plot(g["N"], g["ratio"], "o-", color=colors[i % 4], label=f"{m}×{m} kernel")
        a1.axhline(2 / m, color=colors[i % 4], linestyle=":", linewidth=1)
        a1.annotate(f"2/{m}", (g["N"].max(), 2 / m), xytext=(3, 2), textcoords="offset points",
                    fontsize=8, color=colors[i % 4])
    a1.set_xscale("log", base=2)
    a1.set_xlabel("image size N (N×N, stride 1, no padding)")
    a1.set_ylabel("separable / standard multiplications")
    a1.set_title("spatially separable → 2/m")
    a1.legend(fontsize=8)
    a1.grid(True, alpha=0.3)
    for i, (h, g) in enumerate(dws.groupby("h")):
        a2.plot(g["Nc"], g["ratio"], "o-", color=colors[i % 4], label=f"{h}×{h} filters")
        a2.axhline(1 / h ** 2, color=colors[i % 4], linestyle=":", linewidth=1)
        a2.annotate(f"1/{h * h}", (g["Nc"].max(), 1 / h ** 2), xytext=(3, 2),
                    textcoords="offset points", fontsize=8, color=colors[i % 4])
    a2.set_xscale("log", base=2)
    a2.set_yscale("log")
    a2.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    a2.set_xlabel("output channels Nc")
    a2.set_ylabel("depthwise separable / conv2d multiplications")
    a2.set_title("depthwise separable → 1/Nc + 1/h²")
    a2.legend(fontsize=8)
    a2.grid(True, which="both", alpha=0.3)
    return fig


def _best(df: pd.DataFrame) -> pd.DataFrame:
    """Fastest of our algorithms per (source, problem, threads)."""
    ours = df[~df["peer"]]
    if ours.empty:
        return ours
    idx = ours.groupby(["source", "problem", "threads"])["median"].idxmin()
    return ours.loc[idx]


def measured_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Counted vs measured ratios on the problems the results hold both sides of."""
    if df is None or df.empty:
        return pd.DataFrame()
    df = main_threads(df)
    rows = []
    conv = _best(df[df["conv_type"] == "conv2d"]).set_index(["source", "problem", "threads"])
    for _, r in _best(df[df["conv_type"] == "depthwise_separable"]).iterrows():
        key = (r["source"], r["problem"], r["threads"])
        if key in conv.index:
            c = conv.loc[key]
            rows.append({
                "comparison": "depthwise separable / conv2d", "layer": r["label"],
                "spec": r["problem"], "numerator": f"depthwise_separable/{r['algorithm']}",
                "denominator": f"conv2d/{c['algorithm']}",
                "multiplication ratio": r["direct_multiplications"] / c["direct_multiplications"],
                "time ratio": r["median"] / c["median"]})
    ss = df[(df["conv_type"] == "spatially_separable") & ~df["peer"]]
    for _, g in ss.groupby(["source", "problem", "threads"]):
        sep = g[g["algorithm"] == "separable"]
        ref = g[g["algorithm"] == "direct"]
        if not sep.empty and not ref.empty:
            s, d = sep.iloc[0], ref.iloc[0]
            rows.append({
                "comparison": "spatially separable: separable / direct", "layer": s["label"],
                "spec": s["problem"], "numerator": "separable", "denominator": "direct",
                "multiplication ratio": s["multiplications"] / d["multiplications"],
                "time ratio": s["median"] / d["median"]})
    out = pd.DataFrame(rows)
    if not out.empty:
        out["time / multiplication ratio"] = out["time ratio"] / out["multiplication ratio"]
    return out


def measured_ratio_figure(measured: pd.DataFrame) -> Figure | None:
    if measured is None or measured.empty:
        return None
    fig = Figure(figsize=(6.5, 5), layout="constrained")
    ax = fig.subplots()
    colors = {"depthwise separable / conv2d": "#1f77b4",
              "spatially separable: separable / direct": "#2ca02c"}
    for comp, g in measured.groupby("comparison"):
        ax.scatter(g["multiplication ratio"], g["time ratio"], s=50,
                   color=colors.get(comp, "#9467bd"), label=comp, zorder=3)
        for _, r in g.iterrows():
            ax.annotate(r["layer"], (r["multiplication ratio"], r["time ratio"]),
                        xytext=(4, 3), textcoords="offset points", fontsize=7)
    vals = np.concatenate([measured["multiplication ratio"], measured["time ratio"]])
    lo, hi = float(vals.min()) / 2, max(float(vals.max()) * 2, 1.5)
    ax.plot([lo, hi], [lo, hi], "--", color="#888888", linewidth=1,
            label="time follows the count")
    ax.axhline(1, color="#cccccc", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("multiplication ratio (kernels.multiplications)")
    ax.set_ylabel("measured time ratio (median, fastest of our algorithms)")
    ax.legend(fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    return fig
