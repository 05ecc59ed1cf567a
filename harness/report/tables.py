"""The report's tables as pandas frames (and Styler HTML): the run summary per conv
type and the layers x algorithms grid of each type."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from . import fmt
from .load import algorithm_order, geomean, main_threads, mode_order, type_order

WIN, LOSE = 1.05, 1 / 1.05  # torch time / our time beyond which a type wins or loses


def styled(df: pd.DataFrame, caption: str | None = None, css: pd.DataFrame | None = None,
           index: bool = False, classes: str = "data", html_cells: bool = False) -> str:
    """A pandas Styler table as HTML; `css` is a same-shaped frame of cell styles.

    Cells, row labels and column labels are HTML-escaped (they carry network, layer and
    algorithm names and skip reasons from the results files); with `html_cells` the cells
    are HTML already, built with their own strings escaped (the per-type grid)."""
    sty = df.style
    if not html_cells:
        sty = sty.format(escape="html")
    sty = sty.format_index(escape="html", axis=0).format_index(escape="html", axis=1)
    if css is not None:
        sty = sty.apply(lambda _: css, axis=None)
    if not index:
        sty = sty.hide(axis="index")
    else:
        sty = sty.hide(axis="index", names=True)
    if caption:
        sty = sty.set_caption(html.escape(caption))
    sty = sty.set_table_attributes(f'class="{classes}"')
    return sty.to_html()


# --------------------------------------------------------------------------- summary
def summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per conv type and timing mode at its largest thread count: the best of
    our algorithms (most layer wins, ties by geomean speedup over direct) and how it
    does."""
    df = main_threads(df)
    rows = []
    pairs = [(t, m) for t in type_order(df["conv_type"])
             for m in mode_order(df.loc[df["conv_type"] == t, "mode"])]
    for t, mode in pairs:
        sub = df[(df["conv_type"] == t) & (df["mode"] == mode)]
        ours = sub[~sub["peer"]]
        if ours.empty:
            peers = sub.groupby("algorithm")["median"].median()
            rows.append(dict(conv_type=t, mode=mode, layers=sub["label"].nunique(), best="",
                             wins="", median=math.nan, gflops=math.nan, pct_peak=math.nan,
                             speedup=math.nan, vs_torch=math.nan, best_of_suite=math.nan,
                             algorithms=", ".join(algorithm_order(peers.index)),
                             threads=int(sub["threads"].max())))
            continue
        key = ["source", "label", "problem", "threads"]
        winners = ours.loc[ours.groupby(key)["median"].idxmin(), "algorithm"]
        wins = winners.value_counts()
        spd = ours.groupby("algorithm")["speedup_over_direct"].agg(geomean)
        cands = sorted(wins.index, key=lambda a: (-wins[a], -np.nan_to_num(spd.get(a, 0))))
        best = cands[0]
        b = ours[ours["algorithm"] == best]
        layers = ours.groupby(key).ngroups
        fastest = ours.loc[ours.groupby(key)["median"].idxmin()]
        rows.append(dict(
            conv_type=t, mode=mode, layers=sub["label"].nunique(), best=best,
            wins=f"{int(wins[best])}/{layers}",
            median=float(b["median"].median()),
            gflops=float(b["flops"].sum() / b["median"].sum() / 1e9),
            pct_peak=float(100 * (b["flops"].sum() / b["median"].sum() / 1e9)
                           / b["peak_gflops"].mean()),
            speedup=geomean(b["speedup_over_direct"]),
            vs_torch=geomean(b["ratio_to_torch"]),
            best_of_suite=geomean(fastest["ratio_to_torch"]),
            algorithms=", ".join(algorithm_order(sub["algorithm"])),
            threads=int(sub["threads"].max())))
    return pd.DataFrame(rows)


def summary_html(s: pd.DataFrame) -> str:
    if s.empty:
        return ""
    has_torch = s["vs_torch"].notna().any()
    show = pd.DataFrame({
        "conv type": s["conv_type"],
        "mode": s["mode"],
        "layers": s["layers"],
        "threads": s["threads"],
        "best algorithm (layer wins)": [f"★ {b} ({w})" if b else "–"
                                        for b, w in zip(s["best"], s["wins"])],
        "median time": s["median"].map(fmt.seconds),
        "GFLOP/s": s["gflops"].map(fmt.num),
        "% of peak": s["pct_peak"].map(fmt.pct),
        "speedup over direct": s["speedup"].map(fmt.ratio),
    })
    if has_torch:
        show["vs torch (best algorithm)"] = [_torch_mark(v) for v in s["vs_torch"]]
        show["vs torch (fastest per layer)"] = [_torch_mark(v) for v in s["best_of_suite"]]
    show["algorithms run"] = s["algorithms"]
    css = pd.DataFrame("", index=show.index, columns=show.columns)
    if has_torch:
        for col, src in (("vs torch (best algorithm)", "vs_torch"),
                         ("vs torch (fastest per layer)", "best_of_suite")):
            css[col] = [_torch_css(v) for v in s[src]]
    css["best algorithm (layer wins)"] = "font-weight:600"
    return styled(show, css=css)


def peer_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per conv type and timing mode, at the largest thread count: the fastest of our
    algorithms against the fastest peer, on the layers both ran.

    Per layer, the fastest of ours and the fastest peer; `ours` and `peer` name the one
    fastest on most of those layers, and `ratio` is the geometric mean over the layers
    of fastest peer time / fastest time of ours (> 1: ours is faster)."""
    df = main_threads(df)
    rows = []
    key = ["source", "label", "problem", "threads"]
    for t in type_order(df["conv_type"]):
        for mode in mode_order(df.loc[df["conv_type"] == t, "mode"]):
            sub = df[(df["conv_type"] == t) & (df["mode"] == mode)]
            ours, peers = sub[~sub["peer"]], sub[sub["peer"]]
            if ours.empty or peers.empty:
                continue
            best_ours = ours.loc[ours.groupby(key)["median"].idxmin()].set_index(key)
            best_peer = peers.loc[peers.groupby(key)["median"].idxmin()].set_index(key)
            both = best_ours.index.intersection(best_peer.index)
            if both.empty:
                continue
            o, p = best_ours.loc[both], best_peer.loc[both]
            rows.append(dict(
                conv_type=t, mode=mode, layers=len(both),
                ours=o["algorithm"].value_counts().index[0],
                ours_median=float(o["median"].median()),
                peer=p["algorithm"].value_counts().index[0],
                peer_median=float(p["median"].median()),
                ratio=geomean(p["median"].to_numpy() / o["median"].to_numpy())))
    return pd.DataFrame(rows)


def peer_summary_html(s: pd.DataFrame) -> str:
    if s.empty:
        return ""
    show = pd.DataFrame({
        "conv type": s["conv_type"], "mode": s["mode"], "layers": s["layers"],
        "fastest of ours": s["ours"], "its median": s["ours_median"].map(fmt.seconds),
        "fastest peer": s["peer"], "peer median": s["peer_median"].map(fmt.seconds),
        "peer time / our time": [_torch_mark(v) for v in s["ratio"]],
    })
    css = pd.DataFrame("", index=show.index, columns=show.columns)
    css["peer time / our time"] = [_torch_css(v) for v in s["ratio"]]
    return styled(show, css=css, caption="fastest of ours vs fastest peer, per timing mode")


def _torch_mark(v: float) -> str:
    if v != v:
        return "–"
    if v >= WIN:
        return f"▲ {v:.3g}× (faster)"
    if v <= LOSE:
        return f"▼ {v:.3g}× (slower)"
    return f"≈ {v:.3g}× (par)"


def _torch_css(v: float) -> str:
    if v != v:
        return ""
    if v >= WIN:
        return "background-color:#d9f2d9;color:#145214"
    if v <= LOSE:
        return "background-color:#f9dcdc;color:#7a1010"
    return "background-color:#f3f3e0"


# --------------------------------------------------------------------- per-type grid
NOISY = 0.10  # half the IQR beyond 10% of the median: flag the cell as noisy


def _cell(r) -> str:
    half = r["rel_iqr"] / 2
    spread = f"±{fmt.g(100 * half, 2)}%" if half == half else ""
    noisy = " noisy" if half > NOISY else ""
    peak = f" · {fmt.g(r['pct_peak'], 2)}% peak" if r["pct_peak"] == r["pct_peak"] else ""
    return (f'<div class="t">{fmt.seconds(r["median"])} <span class="sp{noisy}" title="half '
            f'the interquartile range, relative; MAD {fmt.seconds(r["mad"], 2)}">{spread}</span>'
            f'</div><div class="m">{fmt.num(r["gflops"])} GFLOP/s{peak}</div>'
            f'<div class="m">{fmt.count(r["multiplications"])}× · '
            f'{fmt.seconds(r["s_per_mult"], 3)}/×</div>')


def _skip_lookup(skips: pd.DataFrame, conv_type: str) -> dict:
    out = {}
    if skips is None or skips.empty:
        return out
    s = skips[skips["conv_type"] == conv_type]
    for _, r in s.iterrows():
        out.setdefault((f"{r['network']}:{r['layer']}", r["algorithm"], r["mode"]),
                       str(r["reason"]))
    return out


def type_grid(df: pd.DataFrame, skips: pd.DataFrame, conv_type: str) -> tuple[str, str]:
    """(table HTML, note HTML) for one type: layers x algorithms."""
    sub = df[df["conv_type"] == conv_type]
    if sub.empty:
        return "", ""
    algs = algorithm_order(sub["algorithm"])
    multi = sub["threads"].nunique() > 1
    modes = mode_order(sub["mode"])
    rank = {m: i for i, m in enumerate(modes)}
    keys = sub[["label", "threads", "mode", "problem"]].drop_duplicates()
    keys = keys.assign(_m=keys["mode"].map(rank)).sort_values(["label", "threads", "_m"])
    reasons = _skip_lookup(skips, conv_type)
    body, css, names = [], [], []
    for label, threads, mode, problem, _ in keys.itertuples(index=False):
        rows = sub[(sub["label"] == label) & (sub["threads"] == threads)
                   & (sub["mode"] == mode)]
        by_alg = {r["algorithm"]: r for _, r in rows.iterrows()}
        med = {a: r["median"] for a, r in by_alg.items()}
        fastest = min(med, key=med.get) if med else None
        slowest = max(med, key=med.get) if len(med) > 1 else None
        line = {"spec": f'<span class="spec">{html.escape(problem)}</span>'}
        style = {"spec": ""}
        for a in algs:
            if a in by_alg:
                mark = " ★" if a == fastest and len(med) > 1 else ""
                line[a] = _cell(by_alg[a]).replace("</div>", mark + "</div>", 1)
                style[a] = ("background-color:#d9f2d9" if a == fastest and len(med) > 1 else
                            "background-color:#f9e3e3" if a == slowest else "")
            else:
                why = reasons.get((label, a, mode))
                line[a] = (f'<span class="na">n/a: {html.escape(why)}</span>' if why
                           else '<span class="na">not run</span>')
                style[a] = "background-color:#f6f6f6"
        body.append(line)
        css.append(style)
        names.append((f"{label} @{int(threads)}t" if multi else label)
                     + (f" [{mode}]" if len(modes) > 1 else ""))
    index = pd.Index(names, name="layer")
    table = pd.DataFrame(body, index=index)
    styles = pd.DataFrame(css, index=index)
    grid = styled(table, css=styles, index=True, classes="data grid", html_cells=True)
    # algorithms that did not run on any layer of this type, with their reasons
    notes = []
    if skips is not None and not skips.empty:
        s = skips[(skips["conv_type"] == conv_type) & ~skips["algorithm"].isin(algs)]
        for alg, g in s.groupby("algorithm", sort=False):
            why = "; ".join(sorted({f"{r} ({m} mode)" if len(modes) > 1 else str(r)
                                    for r, m in zip(g["reason"], g["mode"])}))
            notes.append(f"<li><b>{html.escape(alg)}</b>: {html.escape(why)}</li>")
    note = ("<p class='note'>Not run on any layer of this type:</p><ul class='note'>"
            + "".join(notes) + "</ul>") if notes else ""
    return grid, note


def skip_summary(skips: pd.DataFrame) -> pd.DataFrame:
    if skips is None or skips.empty:
        return pd.DataFrame()
    s = skips.copy()
    if "status" not in s:
        s["status"] = ["failed" if "fail" in str(r).lower() else "skipped" for r in s["reason"]]
    g = (s.groupby(["status", "conv_type", "algorithm", "reason"], sort=False)
         .size().rename("layers").reset_index())
    order = {"failed": 0, "error": 0, "errored": 0}
    g["_o"] = g["status"].map(lambda v: order.get(str(v), 1))
    g = g.sort_values(["_o", "conv_type", "algorithm"]).drop(columns="_o")
    return g.rename(columns={"conv_type": "conv type"})


def thread_table(df: pd.DataFrame) -> pd.DataFrame:
    """Geomean speedup over the fewest-thread run per (type, algorithm, threads)."""
    if df["threads"].nunique() < 2:
        return pd.DataFrame()
    key = ["source", "conv_type", "algorithm", "mode", "label"]
    d = df.copy()
    d = d[d.groupby(key)["threads"].transform("nunique") > 1]
    if d.empty:
        return pd.DataFrame()
    base = d[d["threads"] == d.groupby(key)["threads"].transform("min")].set_index(key)[
        "median"]
    d["scaling"] = [base.get(tuple(k), math.nan) / m for k, m in zip(
        d[key].itertuples(index=False), d["median"])]
    t = d.groupby(["conv_type", "algorithm", "mode", "threads"])["scaling"].agg(
        geomean).unstack("threads")
    t.columns = [f"{int(c)} threads" for c in t.columns]
    t = t.reset_index()
    t["_t"] = t["conv_type"].map({v: i for i, v in enumerate(type_order(t["conv_type"]))})
    t["_a"] = t["algorithm"].map({v: i for i, v in enumerate(algorithm_order(t["algorithm"]))})
    t["_m"] = t["mode"].map({v: i for i, v in enumerate(mode_order(t["mode"]))})
    t = t.sort_values(["_t", "_a", "_m"]).drop(columns=["_t", "_a", "_m"])
    for c in t.columns[3:]:
        t[c] = t[c].map(fmt.ratio)
    return t.rename(columns={"conv_type": "conv type"})
