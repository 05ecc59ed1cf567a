"""Whole-network totals: the time of all of a network's conv layers, per algorithm.

Per network, timing mode and thread count, each algorithm's total is the sum over the
network's layers of (median time x the layer's repeat count), the repeat recorded by
the sweep (`layer_repeat`; 1 for files from before it). Lines of a shape set that are
`views:` (another type's view of a layer already counted, harness.shapes) stay out, as
they do in `convbench shapes --totals`.

Rows: `auto`, `best of ours` (per layer the fastest of our algorithms: the oracle auto
aims at), each single algorithm of ours and each peer. An algorithm that did not run
every layer of the network (not supported, skipped, not selected, or a sweep of a few
layers such as `quick`) gets the total of the layers it ran,
`complete=False` and `layers` = how many of them; the table marks it "n/N layers" and
the chart hatches its bar, since it is not comparable to a complete total.

A network of which fewer than half the layers were timed at all (`measured`, by any
algorithm: a `quick` sweep times one layer of AlexNet's five) has no total in the table
or the chart: `partial_notes` says "n of N layers: not a network total" for it instead.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.peers import is_peer

from . import fmt
from .load import algorithm_order

ORACLE = "best of ours"
AUTO = "auto"
COLUMNS = ["network", "mode", "threads", "algorithm", "kind", "total_s", "layers",
           "of_layers", "complete", "measured"]
MIN_MEASURED = 0.5  # share of a network's layers timed for its totals to be shown


def _counted_layers(network: str) -> set | None:
    """(conv_type, layer) pairs in the network's total, or None when `network` is no
    shape set here (then every layer counts)."""
    import harness.shapes as shapes

    if not hasattr(shapes, "totals"):  # a stand-in shapes module (the tests')
        return None
    try:
        t = shapes.totals(network)
    except (ValueError, OSError, KeyError):
        return None
    t = t[(t["layer"] != "total") & t["in_total"]]
    return set(zip(t["conv_type"], t["layer"]))


def _kind(algorithm: str) -> str:
    if algorithm == AUTO:
        return "auto"
    if algorithm == ORACLE:
        return "oracle"
    return "peer" if is_peer(algorithm) else "ours"


def network_totals(frame: pd.DataFrame, counted=_counted_layers) -> pd.DataFrame:
    """One row per (network, mode, threads, algorithm): see the module. `counted(network)`
    gives the (conv_type, layer) pairs to count, or None for all."""
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    df = frame[frame["median"].notna()].copy()  # a benchmark without values ran no layer
    repeat = df["layer_repeat"] if "layer_repeat" in df else pd.Series(math.nan, df.index)
    df["repeat"] = repeat.where(repeat > 0, 1.0)
    rows = []
    for (network, mode, threads), g in df.groupby(["network", "mode", "threads"], sort=True):
        keep = counted(network)
        if keep is not None:
            g = g[[(t, la) in keep for t, la in zip(g["conv_type"], g["layer"])]]
        if g.empty:
            continue
        # one time per (layer, algorithm): the fastest median when several files hold it
        per = g.groupby(["conv_type", "layer", "algorithm"]).agg(
            seconds=("median", "min"), repeat=("repeat", "max")).reset_index()
        # out of the network's layers when its shape set is known (a sweep of a few of
        # them, such as `quick`, shows each total as partial), else of those timed
        measured = len(per[["conv_type", "layer"]].drop_duplicates())
        n = len(keep) if keep is not None else measured
        ours = per[~per["algorithm"].map(is_peer) & (per["algorithm"] != AUTO)]
        oracle = ours.loc[ours.groupby(["conv_type", "layer"])["seconds"].idxmin()].assign(
            algorithm=ORACLE)
        for algorithm, a in pd.concat([per, oracle]).groupby("algorithm"):
            rows.append(dict(network=network, mode=mode, threads=int(threads),
                             algorithm=algorithm, kind=_kind(algorithm),
                             total_s=float((a["seconds"] * a["repeat"]).sum()),
                             layers=len(a), of_layers=n, complete=len(a) == n,
                             measured=measured))
    out = pd.DataFrame(rows, columns=COLUMNS)
    order = {a: i for i, a in enumerate(
        dict.fromkeys([AUTO, ORACLE, *algorithm_order(out["algorithm"])]))}
    out["_order"] = out["algorithm"].map(order)
    return out.sort_values(["network", "mode", "threads", "_order"]).drop(
        columns="_order").reset_index(drop=True)


def network_total_rows(totals: pd.DataFrame) -> pd.Series:
    """True for the rows of networks with at least MIN_MEASURED of their layers timed."""
    return totals["measured"] >= MIN_MEASURED * totals["of_layers"]


def partial_notes(totals: pd.DataFrame) -> list[str]:
    """One line per (network, mode, threads) with too few layers timed for a total."""
    if totals.empty:
        return []
    few = totals[~network_total_rows(totals)].drop_duplicates(["network", "mode", "threads"])
    return [f"{r.network} ({r.mode} mode, {r.threads} thread{'s' if r.threads != 1 else ''}): "
            f"{r.measured} of {r.of_layers} layers: not a network total"
            for r in few.itertuples(index=False)]


def _cell(r) -> str:
    ms = fmt.seconds(r["total_s"])
    return ms if r["complete"] else f"{ms} ({r['layers']}/{r['of_layers']} layers)"


def totals_table(totals: pd.DataFrame) -> pd.DataFrame:
    """Wide form for the report: one row per (network, mode, threads), one column per
    algorithm (auto, best of ours, ours, peers), incomplete totals marked; networks with
    too few layers timed are left out (`partial_notes`)."""
    totals = totals[network_total_rows(totals)] if not totals.empty else totals
    if totals.empty:
        return totals
    t = totals.assign(cell=[_cell(r) for _, r in totals.iterrows()])
    wide = t.pivot_table(index=["network", "mode", "threads", "of_layers"],
                         columns="algorithm", values="cell", aggfunc="first", sort=False)
    cols = [c for c in dict.fromkeys(totals["algorithm"]) if c in wide.columns]
    wide = wide[cols].fillna("—").reset_index()
    return wide.rename(columns={"of_layers": "layers"})


def totals_figure(totals: pd.DataFrame):
    """Horizontal bars per network (its largest thread count, first mode): total time per
    algorithm; hatched bars are incomplete totals (networks with too few layers timed are
    left out)."""
    from .plots import _grid, algorithm_color

    totals = totals[network_total_rows(totals)] if not totals.empty else totals
    if totals.empty:
        return None
    top = totals[totals["threads"] == totals.groupby("network")["threads"].transform("max")]
    top = top[top["mode"] == top.groupby("network")["mode"].transform("first")]
    networks = list(dict.fromkeys(top["network"]))
    fig, axes = _grid(len(networks), ncols=3, w=4.8, h=0.5 + 0.28 * top.groupby(
        "network").size().max())
    for ax, network in zip(axes, networks):
        d = top[top["network"] == network].iloc[::-1]
        colors = ["#e6550d" if a == AUTO else "#9ecae1" if a == ORACLE else
                  algorithm_color(a) for a in d["algorithm"]]
        bars = ax.barh(d["algorithm"], d["total_s"] * 1e3, color=colors)
        for bar, complete in zip(bars, d["complete"]):
            if not complete:
                bar.set_hatch("//")
                bar.set_alpha(0.45)
        ax.set_xlabel("total conv time (ms)")
        first = d.iloc[0]
        ax.set_title(f"{network} ({first['mode']}, {first['threads']} threads)", fontsize=10)
    return fig
