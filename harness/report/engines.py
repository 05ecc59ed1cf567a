"""Faster than what a user would deploy? Ours against the inference engines, per type and
layout contract.

On every layer (at the largest thread count it ran with) the best of ours is the fastest
of our algorithms in either timing mode, and the fastest peer the fastest engine in its
best mode. Per type and layout: the ratio is the geometric mean over layers of peer time
/ our time (above 1: ours is faster), "ours" and "peer" name the algorithm and the engine
(with their mode) fastest on most of those layers, and "ours faster" counts the layers
where ours wins. An "all types" row per layout pools every layer. Per layer, every peer's
best time stands beside ours.

A benchmark's layout is its `layout` metadata (absent: "nchw"), else the `@nhwc` marker
in its name.
"""

from __future__ import annotations

import html
import math
import re

import pandas as pd

from harness.report.load import geomean, main_threads, type_order

DEFAULT_LAYOUT = "nchw"
LAYOUT_ORDER = ("nchw", "nhwc")
ALL_TYPES = "all types"
_NAME_LAYOUT = re.compile(r"@(nchw|nhwc)(?:@|$)")


def layouts(df: pd.DataFrame) -> pd.Series:
    """Each benchmark's layout contract."""
    if "name" in df:
        layout = df["name"].astype(str).str.extract(_NAME_LAYOUT, expand=False)
    else:
        layout = pd.Series(None, index=df.index, dtype=object)
    if "layout" in df:
        given = df["layout"].astype(object)
        given = given.where(given.notna() & (given.astype(str) != ""))
        layout = given.where(given.notna(), layout)
    return layout.fillna(DEFAULT_LAYOUT).astype(str)


def _layout_order(names) -> list[str]:
    names = list(dict.fromkeys(names))
    return [x for x in LAYOUT_ORDER if x in names] + sorted(x for x in names
                                                           if x not in LAYOUT_ORDER)


def _who(row) -> str:
    return f"{row['algorithm']} ({row['mode']})"


def per_layer(df: pd.DataFrame) -> pd.DataFrame:
    """One row per layer and layout that ours and at least one peer ran: the best of ours
    (`ours`, `ours_s`), the fastest peer (`peer`, `peer_s`), `ratio` = peer_s / ours_s,
    and each peer's best time in a column `s:<peer>`."""
    cols = ["conv_type", "layout", "label", "ours", "ours_s", "peer", "peer_s", "ratio"]
    if df.empty or "peer" not in df:
        return pd.DataFrame(columns=cols)
    df = main_threads(df[df["median"] > 0])
    df = df.assign(layout=layouts(df))
    rows = []
    for (conv_type, layout, label), layer in df.groupby(["conv_type", "layout", "label"],
                                                        sort=False):
        ours, peers = layer[~layer["peer"]], layer[layer["peer"]]
        if ours.empty or peers.empty:
            continue
        best = ours.loc[ours["median"].idxmin()]
        fastest = peers.loc[peers["median"].idxmin()]
        row = dict(conv_type=conv_type, layout=layout, label=label, ours=_who(best),
                   ours_s=float(best["median"]), peer=_who(fastest),
                   peer_s=float(fastest["median"]),
                   ratio=float(fastest["median"] / best["median"]))
        for name, runs in peers.groupby("algorithm"):
            row[f"s:{name}"] = float(runs["median"].min())
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame(rows)
    order = {t: i for i, t in enumerate(type_order(out["conv_type"]))}
    lorder = {x: i for i, x in enumerate(_layout_order(out["layout"]))}
    out = out.sort_values(["layout", "conv_type"], key=lambda s: s.map(
        lorder if s.name == "layout" else order), kind="stable")
    peer_cols = sorted(c for c in out if c.startswith("s:"))
    return out[cols + peer_cols].reset_index(drop=True)


def _most(names: pd.Series) -> str:
    """The name on most layers (ties: the first in order), with its count."""
    counts = names.value_counts(sort=False)
    top = counts.idxmax()
    return f"{top}, {counts[top]} of {len(names)}" if len(names) > 1 else str(top)


def _summary_row(conv_type: str, layout: str, layers: pd.DataFrame) -> dict:
    return dict(conv_type=conv_type, layout=layout, layers=len(layers),
                ours=_most(layers["ours"]), peer=_most(layers["peer"]),
                ratio=geomean(layers["ratio"]),
                ours_faster=f"{int((layers['ratio'] >= 1).sum())} of {len(layers)}")


def engines_table(df: pd.DataFrame, per: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per type and layout (then all types per layout): the best of ours against the
    fastest peer, naming both, with the geomean ratio peer time / our time."""
    per = per_layer(df) if per is None else per
    cols = ["conv_type", "layout", "layers", "ours", "peer", "ratio", "ours_faster"]
    if per.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for layout in _layout_order(per["layout"]):
        in_layout = per[per["layout"] == layout]
        for conv_type in type_order(in_layout["conv_type"]):
            rows.append(_summary_row(conv_type, layout,
                                     in_layout[in_layout["conv_type"] == conv_type]))
        if in_layout["conv_type"].nunique() > 1:
            rows.append(_summary_row(ALL_TYPES, layout, in_layout))
    return pd.DataFrame(rows, columns=cols)


# ------------------------------------------------------------------------ rendering
SUMMARY_HEADERS = {"conv_type": "type", "layout": "layout", "layers": "layers",
                   "ours": "best of ours (most layers)",
                   "peer": "fastest peer (most layers)",
                   "ratio": "peer time / our time (geomean)",
                   "ours_faster": "layers ours is faster"}


def _ratio(value: float) -> str:
    if value != value:
        return "–"
    return f"{value:.2f}x " + ("▲" if value >= 1 else "▼")


def _ms(seconds: float) -> str:
    return "–" if seconds != seconds else f"{seconds * 1e3:.3g} ms"


def _cell(value) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def _layer_headers(per: pd.DataFrame) -> dict:
    heads = {"conv_type": "type", "layout": "layout", "label": "layer",
             "ours": "best of ours", "ours_s": "ours", "peer": "fastest peer",
             "peer_s": "peer", "ratio": "peer / ours"}
    heads.update({c: c[2:] for c in per if c.startswith("s:")})
    return heads


def _formatted(df: pd.DataFrame) -> list[list[str]]:
    rows = []
    for _, r in df.iterrows():
        row = []
        for col, value in r.items():
            if col == "ratio":
                row.append(_ratio(value))
            elif col.endswith("_s") or col.startswith("s:"):
                row.append(_ms(value))
            else:
                row.append(_cell(value))
        rows.append(row)
    return rows


def _html(df: pd.DataFrame, headers: dict, caption: str) -> str:
    """A data table with every string escaped."""
    e = html.escape
    head = "".join(f"<th>{e(headers.get(c, c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>"
                   for row in _formatted(df))
    return (f'<table class="data"><caption>{e(caption)}</caption><thead><tr>{head}</tr>'
            f"</thead><tbody>{body}</tbody></table>")


INTRO = ("Faster than what you would deploy? On each layer, the best of ours (any "
         "algorithm, call or prepared mode) against the fastest inference engine (any peer "
         "in its best mode), in each layout contract (NCHW in and out; NHWC, channels-last, "
         "in and out); a peer whose own layout differs reorders inside its timed call. "
         "The ratio is the geometric mean over layers of peer time / our time: ▲ ours is "
         "faster, ▼ slower; each name is the one fastest on most layers.")


def engines_html(df: pd.DataFrame) -> str:
    """The report's first table (and the per-layer one, folded), or "" when no layer has
    ours and a peer."""
    per = per_layer(df)
    if per.empty:
        return ""
    table = engines_table(df, per)
    return (f'<p class="sub">{html.escape(INTRO)}</p>'
            + _html(table, SUMMARY_HEADERS, "best of ours vs the fastest peer, per type "
                    "and layout")
            + f"<details><summary>{len(per)} layers: every peer beside ours</summary>"
            + _html(per, _layer_headers(per), "per layer: each peer's best mode")
            + "</details>")


def engines_text(df: pd.DataFrame) -> str:
    """The same tables as plain text, for the terminal."""
    per = per_layer(df)
    if per.empty:
        return "no layer has both ours and a peer in these results"
    table = engines_table(df, per)

    def text(frame, headers):
        cells = pd.DataFrame(_formatted(frame),
                             columns=[headers.get(c, c) for c in frame.columns])
        return cells.to_string(index=False)

    return (text(table, SUMMARY_HEADERS) + "\n\nper layer (each peer in its best mode)\n"
            + text(per, _layer_headers(per)))
