"""The report's history section: normalised time over commits per machine class, steps marked.

    history_section(db, machine_class=None) -> Section | None   # None: no history to show
    write_page(frame, steps, out_html, threshold, alpha, min_size) -> Path

One figure per (machine class, mode): one panel per benchmark (those with
steps first, at most `MAX_PANELS`), the calibration-normalised minimum of
each run over the commits in order, a dashed line at each step with its
ratio; then the tables of the largest steps up and down with their commit
ranges. Data and steps come from `harness.history`.
"""

from __future__ import annotations

import datetime as _dt
import html
from pathlib import Path

import pandas as pd

from harness import changepoint
from harness import history as hist
from harness.results import require_replaceable

from . import plots, tables

MAX_PANELS = 24


def figure(part: pd.DataFrame, steps: pd.DataFrame):
    """Panels of one machine class and mode (benchmarks with steps first)."""
    with_steps = list(dict.fromkeys(steps["benchmark"]))
    names = with_steps + sorted(set(part["benchmark"]) - set(with_steps))
    names = names[:MAX_PANELS]
    if not names:
        return None
    fig, axes = plots._grid(len(names), ncols=3, w=4.6, h=3.0)
    for ax, name in zip(axes, names):
        group = part[part["benchmark"] == name]
        x = range(len(group))
        ax.plot(x, group["norm_s"].to_numpy() * 1e3, "o-", ms=3, lw=0.8,
                color=plots.algorithm_color(str(group["algorithm"].iloc[0])))
        for s in steps[steps["benchmark"] == name].itertuples():
            ax.axvline(s.index - 0.5, color="#a00000", ls="--", lw=1)
            ax.annotate(f"x{s.ratio:.2f}", (s.index - 0.5, 1), xycoords=("data", "axes fraction"),
                        ha="left", va="top", color="#a00000", fontsize=8)
        commits = group["commit_sha"].map(hist.short).tolist()
        every = max(1, len(commits) // 6)
        ax.set_xticks(list(x)[::every], commits[::every], rotation=30, fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("normalised min (ms)", fontsize=8)
    return fig


def _steps_table(table: pd.DataFrame) -> str:
    if table.empty:
        return '<p class="note">none</p>'
    shown = pd.DataFrame({
        "benchmark": table["benchmark"],
        "ratio": table["ratio"].map(lambda r: f"x{r:.3f}"),
        "commits": [f"{hist.short(a)}..{hist.short(b)}"
                    for a, b in zip(table["before"], table["after"])],
        "dates": [f"{str(a)[:10]}..{str(b)[:10]}"
                  for a, b in zip(table["before_date"], table["after_date"])],
        "p": table["p_value"].map(lambda p: f"{p:.2g}"),
    })
    return tables.styled(shown)


def body(frame: pd.DataFrame, steps: pd.DataFrame, threshold: float, alpha: float,
         min_size: int, top: int = 10) -> str:
    out = [f"<p>{html.escape(hist.method_note(threshold, alpha, min_size))} Times are each "
           "run's minimum, divided by the calibration factor against the series' median "
           "calibration; machine classes and modes are never mixed.</p>"]
    for (mclass, mode), part in frame.groupby(["machine_class", "mode"], sort=True):
        st = steps[(steps["machine_class"] == mclass) & (steps["mode"] == mode)]
        out.append(f"<h3>{html.escape(mclass)} · {html.escape(mode)}</h3>")
        out.append(f'<p class="note">{part["benchmark"].nunique()} benchmarks over '
                   f'{part["commit_sha"].nunique()} commits, {len(part)} runs, {len(st)} '
                   "steps</p>")
        fig = figure(part, st)
        if fig is not None:
            out.append(f'<figure><img src="{plots.to_data_uri(fig)}" '
                       f'alt="history of {html.escape(mclass)}"><figcaption>Normalised time '
                       "over commits (oldest left); dashed: steps found, with their ratio."
                       "</figcaption></figure>")
        up, down = hist.largest(st, top)
        out.append("<h4>Largest slowdowns</h4>" + _steps_table(up))
        out.append("<h4>Largest speed-ups</h4>" + _steps_table(down))
    return "".join(out)


def history_section(db, machine_class: str | None = None,
                    threshold: float = changepoint.DEFAULT_THRESHOLD,
                    alpha: float = changepoint.DEFAULT_ALPHA,
                    min_size: int = changepoint.DEFAULT_MIN_SIZE):
    """The report section of a history database; None when there is none or it is empty."""
    from .html import Section

    if db is None or not Path(db).is_file():
        return None
    try:
        frame, steps = hist.report(db, machine_class, threshold=threshold, alpha=alpha,
                                   min_size=min_size)
    except ValueError as exc:  # a damaged database costs this section, not the report
        return Section("history", "History over commits",
                       f'<p class="bad">{html.escape(str(exc))}</p>')
    if frame.empty:
        return None
    return Section("history", "History over commits",
                   body(frame, steps, threshold, alpha, min_size))


def write_page(frame: pd.DataFrame, steps: pd.DataFrame, out_html, threshold: float,
               alpha: float, min_size: int) -> Path:
    """A page with the history alone (`convbench history report --html`)."""
    from .html import CSS

    made = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>convbench history</title><style>{CSS}</style></head><body><main>"
            f"<h1>convbench history</h1>"
            f"{body(frame, steps, threshold, alpha, min_size)}"
            f"<footer>generated {made} by harness.report.history</footer></main></body></html>")
    out = require_replaceable(out_html, "history page")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
