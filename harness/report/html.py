"""Assemble the self-contained HTML page: header, summary, per-type tables, plots,
the seed article's ideas and the comparison. Sections with nothing to show are
left out, so partial results give a shorter page, never an empty section."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import html
from dataclasses import dataclass, field

import pandas as pd

from . import engines, fmt, networks, plots, seed_ideas, tables
from .compare import Comparison, per_type_geomeans
from .load import Results, in_mode, main_threads, mode_order, primary_mode, type_order

CSS = """
:root { --fg:#1d2329; --muted:#5f6b76; --line:#d8dde2; --accent:#1f5fa8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); margin: 0; background: #fff; }
main { max-width: 1500px; margin: 0 auto; padding: 18px 28px 60px; }
h1 { font-size: 26px; margin: 6px 0 2px; }
h2 { font-size: 20px; margin: 34px 0 8px; padding-bottom: 4px;
     border-bottom: 2px solid var(--accent); }
h3 { font-size: 16px; margin: 24px 0 6px; }
p, li { max-width: 1100px; }
.sub { color: var(--muted); margin: 0 0 12px; }
nav { background: #f4f7fa; border: 1px solid var(--line); border-radius: 6px;
      padding: 8px 14px; margin: 12px 0; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; white-space: nowrap; }
table.data { border-collapse: collapse; margin: 8px 0 14px; font-size: 13px; }
table.data th, table.data td { border: 1px solid var(--line); padding: 4px 8px;
      vertical-align: top; text-align: left; }
table.data thead th { background: #eef2f6; position: sticky; top: 0; }
table.data caption { caption-side: top; text-align: left; color: var(--muted);
      padding: 2px 0 6px; }
table.meta td:first-child { color: var(--muted); white-space: nowrap; }
table.grid td { min-width: 150px; }
.t { font-weight: 600; font-variant-numeric: tabular-nums; }
.m { color: var(--muted); font-size: 12px; font-variant-numeric: tabular-nums; }
.sp { color: var(--muted); font-weight: 400; font-size: 12px; }
.sp.noisy { color: #b00000; font-weight: 600; }
.spec { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 11.5px; }
.na { color: #8a8f94; font-style: italic; font-size: 12px; }
code, .mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 13px; max-width: 1100px; }
.note { color: var(--muted); font-size: 13px; margin: 2px 0; }
.bad { color: #a00000; font-weight: 600; }
.good { color: #136b13; font-weight: 600; }
details summary { cursor: pointer; color: var(--accent); margin: 6px 0; }
footer { color: var(--muted); font-size: 12px; margin-top: 40px;
         border-top: 1px solid var(--line); padding-top: 8px; }
"""

# Sets body[data-images] / body[data-broken-images] once everything has loaded, and says
# so in the footer: a renderer (or a reader) can tell that no plot failed to decode.
IMAGE_CHECK = """
window.addEventListener('load', function () {
  var imgs = document.images, bad = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (!(imgs[i].complete && imgs[i].naturalWidth > 0)) { bad++; }
  }
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-broken-images', bad);
  var s = document.getElementById('image-status');
  if (s) { s.textContent = bad ? (bad + ' of ' + imgs.length + ' images failed to load')
                               : ('all ' + imgs.length + ' images loaded'); }
});
"""


@dataclass
class Section:
    id: str
    title: str
    body: str
    children: list = field(default_factory=list)


def _figure(fig, caption: str, alt: str) -> str:
    if fig is None:
        return ""
    uri = plots.to_data_uri(fig)
    return (f'<figure><img src="{uri}" alt="{html.escape(alt)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _p(text: str, cls: str = "") -> str:
    return f'<p class="{cls}">{text}</p>' if cls else f"<p>{text}</p>"


def _join(values) -> str:
    return ", ".join(str(v) for v in values) if values else ""


# ---------------------------------------------------------------------------- header
def header_table(res: Results, command: str | None, files: list[str]) -> str:
    info = res.run_info
    get = info.get
    rows = []

    def add(key, value):
        if value not in (None, "", []):
            rows.append((key, value))

    add("results", _join(files))
    start, end = res.dates
    if start:
        add("date", f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M}" if end and end != start
            else f"{start:%Y-%m-%d %H:%M}")
    add("machine", _join(get("hostname")))
    add("CPU", _join(get("cpu_model") or get("cpu_model_name")))
    if get("isa"):
        overridden = any(int(v) for v in get("isa_overridden") or ())
        bits = _join(get("vector_bits"))
        add("vector ISA", html.escape(
            _join(get("isa")) + (f" ({bits}-bit vectors)" if bits else "")
            + (", chosen by CONVBENCH_ISA" if overridden else ", the host's")
            + (f"; register blocks {_join(get('blocks'))}" if get("blocks") else "")))
    else:
        add("vector ISA", "not recorded in the results")
    add("machine class", _join(get("machine_class")))
    cores = _join(get("cpu_count"))
    add("logical CPUs", cores)
    add("platform", _join(get("platform")))
    if not res.frame.empty:
        add("threads", _join(sorted({int(t) for t in res.frame["threads"]})))
        add("timing modes", _join(mode_order(res.frame["mode"])))
    add("threading layer", _join(get("threading_layer")))
    libs = [f"{name} {_join(get(key))}" for name, key in (
        ("Python", "python_version"), ("numba", "numba_version"),
        ("llvmlite", "llvmlite_version"), ("NumPy", "numpy_version"),
        ("PyTorch", "torch_version"), ("ONNX Runtime", "onnxruntime_version"),
        ("OpenVINO", "openvino_version"), ("pyperf", "perf_version")) if get(key)]
    add("libraries", "; ".join(libs))
    calib = []
    if get("calib_sgemm_gflops_1t"):
        calib.append("sgemm 1 thread " + _join(fmt.num(v) for v in get("calib_sgemm_gflops_1t"))
                     + " GFLOP/s")
    if get("calib_sgemm_gflops"):
        calib.append("sgemm all threads " + _join(fmt.num(v) for v in get("calib_sgemm_gflops"))
                     + " GFLOP/s")
    if get("calib_bandwidth_gbs"):
        calib.append("memory bandwidth " + _join(fmt.num(v) for v in get("calib_bandwidth_gbs"))
                     + " GB/s")
    add("calibration", "; ".join(calib) or "not recorded in the results")
    if get("blas"):
        add("BLAS", html.escape(_join(get("blas"))))
    add("sweep command", "<code>" + html.escape(_join(get("command"))) + "</code>"
        if get("command") else "not recorded in the results")
    if command:
        add("report command", f"<code>{html.escape(command)}</code>")
    if not res.frame.empty:
        df = res.frame
        add("benchmarks", f"{len(df)} ({df['conv_type'].nunique()} conv types, "
            f"{df['label'].nunique()} layers, {df['algorithm'].nunique()} algorithms incl. "
            f"peers), {int(df['n_values'].sum())} timed values")
        # GFLOP/s counts the direct algorithm's multiplications, so Winograd and separable
        # passes may exceed the peak legitimately; only the algorithm's own count may not
        own_gflops = 2 * df["multiplications"] / df["median"] / 1e9
        over = int((own_gflops > df["peak_gflops"]).sum())
        if over:
            add("calibration check", f"<span class='bad'>{over} benchmark(s) perform their own "
                f"multiplications faster than the calibrated sgemm peak: either the BLAS "
                f"used for calibration is slower than the CPU allows (see BLAS) or the "
                f"calibration ran on a busy machine; % of peak and the roofline are relative "
                f"to that sgemm</span>")
    if res.skips is not None and len(res.skips):
        add("skipped cells", f"{len(res.skips)} (see <a href='#skips'>skipped cells</a>)")
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{v if k in _RAW else html.escape(str(v))}"
                   f"</td></tr>" for k, v in rows)
    return f'<table class="data meta"><tbody>{body}</tbody></table>'


_RAW = {"sweep command", "report command", "skipped cells", "calibration check"}


# --------------------------------------------------------------------------- sections
def _primary(res: Results) -> Results:
    """`res` with only the benchmarks of its primary timing mode (`call` when present),
    for the sections that show one mode (plots, seed ideas)."""
    if res.frame.empty:
        return res
    return dataclasses.replace(res, frame=in_mode(res.frame, primary_mode(res.frame)))


def _mode_note(res: Results) -> str:
    modes = mode_order(res.frame["mode"]) if not res.frame.empty else []
    return (f" {primary_mode(res.frame).capitalize()} mode only (the per-type tables show "
            "every mode)." if len(modes) > 1 else "")


def modes_text(res: Results) -> str:
    modes = mode_order(res.frame["mode"]) if not res.frame.empty else []
    return ("Timing modes: " + ", ".join(modes) + ". In call mode the timed call gets raw "
            "weights (packing, Winograd filter transforms and SVDs are timed, as in "
            "torch.nn.functional); in prepared mode the weight work is done once before "
            "timing (kernels.plan; the engines' loaded models and torch's frozen, "
            "inference-optimised module) and only the data path is timed.")


def summary_section(res: Results) -> Section | None:
    s = tables.summary(res.frame)
    if s.empty:
        return None
    text = modes_text(res) + (
        " One row per conv type and mode, at the largest thread count it ran with. The best "
            "algorithm is the one of ours that is fastest on most layers; its median time "
            "is the median over those layers, GFLOP/s is 2 × direct multiplications over "
            "time summed across them, % of peak is against the calibrated sgemm rate, and "
            "the speedup over direct is a geometric mean over layers.")
    if s["vs_torch"].notna().any():
        text += (" “vs torch” is torch time / our time, a geometric mean over layers: ▲ "
                 "faster than PyTorch (oneDNN), ▼ slower; “fastest per layer” takes the "
                 "fastest of our algorithms on each layer.")
    else:
        text += " PyTorch did not run in these results, so there is no ratio to it."
    body = engines.engines_html(res.frame) + _p(text, "sub")  # the user's question first
    peers = tables.peer_summary(res.frame)
    if not peers.empty:
        body += _p("Fastest of ours against the fastest peer, per type and mode: on each "
                   "layer both ran, the fastest of our algorithms and the fastest peer "
                   "library; each column names the one fastest on most layers, and the ratio "
                   "is the geometric mean over layers of peer time / our time (▲: ours is "
                   "faster).", "sub") + tables.peer_summary_html(peers)
    return Section("summary", "Summary", body + tables.summary_html(s))


def networks_section(res: Results) -> Section | None:
    totals = networks.network_totals(res.frame)
    if totals.empty:
        return None
    text = ("The time of all of a network's conv layers, each layer's repeat count applied "
            "(harness.report.networks): with auto, with the fastest of our algorithms on each "
            "layer (best of ours), with each algorithm alone and with each peer. A total "
            "marked “n/N layers” covers only n of the network's N layers (the algorithm "
            "did not run the others, or the sweep timed a few of them; hatched in the "
            "chart): it is not comparable to a complete one.")
    fig = networks.totals_figure(totals)
    return Section("networks", "Whole networks", _p(text, "sub")
                   + tables.styled(networks.totals_table(totals))
                   + _figure(fig, "Total conv time per network at its largest thread count "
                                  "(orange: auto; light blue: best of ours per layer).",
                             "whole-network conv time per algorithm"))


def type_sections(res: Results) -> Section | None:
    df = res.frame
    if df.empty:
        return None
    children = []
    for t in type_order(df["conv_type"]):
        grid, note = tables.type_grid(df, res.skips, t)
        body = grid + note
        modes = mode_order(df.loc[df["conv_type"] == t, "mode"])
        for mode in modes:
            sub = df[(df["conv_type"] == t) & (df["mode"] == mode)]
            fig = plots.speedups(sub)
            has_torch = (sub["algorithm"] == "torch").any()
            caption = ((f"{mode.capitalize()} mode. " if len(modes) > 1 else "")
                       + "Per layer: speedup over the direct kernel (left)"
                       + (" and torch time / our time (right; > 1 beats PyTorch)"
                          if has_torch else "") + ", log scale; the dashed line is parity.")
            body += _figure(fig, caption, f"{t}: speedups per layer ({mode} mode)")
        children.append(Section(f"type-{t}", t, body))
    intro = _p("Each cell: median time ± half the interquartile range (relative; hover for "
               "the MAD); GFLOP/s (2 × direct multiplications / time) and % of the calibrated "
               "peak; the algorithm's own multiplication count and time per multiplication. "
               "Green ★: fastest in the row, red: slowest; grey cells did not run, with the "
               "reason from the sweep's skip list. A spread in red is above "
               f"±{100 * tables.NOISY:.0f}%: that timing is noisy, read it with care.", "sub")
    return Section("types", "Per conv type", intro, children)


def time_vs_mults_section(res: Results) -> Section | None:
    note, res = _mode_note(res), _primary(res)
    fig = plots.time_vs_multiplications(res.frame)
    if fig is None:
        return None
    return Section("mults", "Time vs theoretical multiplications", _figure(
        fig, "Median time (whiskers: interquartile range) against the multiplications each "
        "algorithm performs (padded taps included; peers are placed at the direct count), "
        "log-log, at the largest thread count. The dashed line is equal time per "
        "multiplication through the direct kernel's median: points on it run as fast per "
        "multiplication as direct does; below it an algorithm gains more than its count "
        "predicts, above it the saved multiplications are eaten by transforms, memory "
        "traffic or overhead." + note, "time vs multiplications per conv type"))


def roofline_section(res: Results) -> Section | None:
    note, res = _mode_note(res), _primary(res)
    fig = plots.roofline(res.frame)
    if fig is None:
        return None
    df = main_threads(res.frame)
    peak = df["peak_gflops"].max()
    bw = df["calib_bandwidth_gbs"].max()
    return Section("roofline", "Roofline", _figure(
        fig, f"Achieved GFLOP/s (2 × direct multiplications / median time) against "
        f"arithmetic intensity, each layer's flops over the bytes of its float32 input, "
        f"weights and output (the least traffic possible). Roofs from the calibration: "
        f"sgemm {fmt.num(peak)} GFLOP/s, bandwidth {fmt.num(bw)} GB/s; points far below the "
        f"roof leave performance on the table, points left of the ridge are "
        f"bandwidth-bound." + note, "roofline"))


def accuracy_section(acc: pd.DataFrame | None) -> Section | None:
    if acc is None or acc.empty:
        return None
    fig = plots.accuracy(acc)
    if fig is None:
        return None
    t = acc.copy()
    t["max_rel_error"] = pd.to_numeric(t["max_rel_error"], errors="coerce")
    pivot = t.pivot_table(index="channels", columns="algorithm", values="max_rel_error",
                          aggfunc="max")
    pivot = pivot.map(lambda v: f"{v:.2e}" if v == v else "–")
    return Section("accuracy", "Winograd error vs tile size", _figure(
        fig, "Maximum relative error against the float64 reference (from "
        "<code>python -m kernels.accuracy_table --sweeps</code>): larger Winograd tiles "
        "save multiplications and lose digits.", "winograd accuracy")
        + tables.styled(pivot.reset_index(), caption="max relative error by channels"))


def numerics_section(num: pd.DataFrame | None) -> Section | None:
    if num is None or num.empty:
        return None

    def g(v):
        return "–" if v is None or v != v else f"{float(v):.2g}"

    t = pd.DataFrame({
        "type": num["conv_type"], "algorithm": num["algorithm"],
        "largest safe output": num["max_safe_peak"].map(g),
        "first failing": num["first_failing_peak"].map(g),
        "error on tiny values": num["tiny_rel_error"].map(g),
        "NaN spread": num["nan_spread"].map(lambda v: f"{v:.2f}x"),
        "Inf kept": num["inf_kept"].map(lambda v: f"{100 * v:.0f}%"),
    })
    spec = html.escape(str(num["spec"].iloc[0])) if "spec" in num else ""
    return Section("numerics", "Numeric range", _p(
        f"Each algorithm against the float64 oracle on <code>{spec}</code> (from "
        "<code>python -m harness.checks.numeric_range</code>): the largest output peak it "
        "still computes finite and within its error bound (inputs scaled by powers of ten; "
        "– where the float32 input overflows first), the relative error when outputs are "
        "float32 subnormals (inputs x1e-30, weights x1e-10), how many outputs one NaN input "
        "reaches relative to the reference, and the share of Inf outputs that stay Inf. "
        "Winograd tiles mix neighbouring inputs: a NaN reaches whole tiles and an Inf meets "
        "its own negative in the transforms.") + tables.styled(t))


def compile_section(res: Results) -> Section | None:
    fig = plots.compile_times(res.frame)
    if fig is None:
        return None
    d = res.frame[~res.frame["peer"]]
    total = d.groupby(["conv_type", "algorithm"])["compile_seconds"].max().sum()
    return Section("compile", "Compile time per kernel", _figure(
        fig, f"Numba compile time of each (type, algorithm) kernel, measured on the first "
        f"call and kept out of the timings (about {fmt.num(total)} s for the slowest "
        f"compile of each kernel together).", "compile times"))


def threads_section(res: Results) -> Section | None:
    fig = plots.thread_scaling(_primary(res).frame)
    if fig is None:
        return None
    t = tables.thread_table(res.frame)
    return Section("threads", "Thread scaling", _figure(
        fig, "Speedup over each benchmark's fewest-thread run, geometric mean over the "
        "layers that ran at several thread counts; dotted: linear scaling." + _mode_note(res),
        "thread scaling")
        + (tables.styled(t, caption="geomean speedup over the fewest threads")
           if not t.empty else ""))


@functools.lru_cache(maxsize=1)
def _seed_static() -> tuple[str, str, str]:
    """The result-independent parts of the seed section (computed once per process)."""
    # 6.1 checkerboard
    over = seed_ideas.checkerboard()
    tab = seed_ideas.checkerboard_table(over)
    k3s2 = next((o for o in over if o.kernel == 3 and o.stride == 2), None)
    k4s2 = next((o for o in over if o.kernel == 4 and o.stride == 2), None)
    facts = []
    if k3s2:
        facts.append(f"k=3, s=2 gives {'/'.join(map(str, k3s2.interior_1d))} in 1-D and "
                     f"{'/'.join(map(str, k3s2.interior))} in 2-D")
    if k4s2:
        facts.append(f"k=4, s=2 is {'flat' if k4s2.even else 'uneven'} "
                     f"({'/'.join(map(str, k4s2.interior))})")
    checker = _p("Seed section 6.1. A transposed convolution of an all-ones 6×6 input with an "
                 "all-ones kernel, run by <code>kernels.run('transposed2d', "
                 f"'{over[0].algorithm}', …)</code> and checked against the float64 oracle, "
                 "counts the kernel taps landing on each output pixel. The overlap is uneven "
                 "(checkerboard) when the kernel size is not divisible by the stride, and in "
                 "2-D the pattern is the product of the two 1-D ones: "
                 + "; ".join(facts) + ". Interior counts leave out the k−1 border pixels.")
    checker += _figure(seed_ideas.checkerboard_figure(over),
                       "Overlap counts per output pixel, kernel sizes across, strides down, "
                       "each panel on its own colour scale; red titles mark uneven overlap.",
                       "checkerboard overlap heatmaps")
    checker += tables.styled(tab)
    # 7 receptive field
    rf = seed_ideas.receptive_field()
    dilation = _p("Seed section 7. An impulse propagated through stacked 3×3 convolutions "
                  "with dilation " + ", ".join(map(str, rf.dilations)) + " (by <code>"
                  "kernels.run</code>, padding = dilation so the size is kept) reaches "
                  + ", ".join(f"{e}×{e}" for e in rf.extents)
                  + " input pixels: the receptive field grows exponentially with depth while "
                  "every layer keeps nine weights. A single layer alone sees k + (k−1)(d−1).")
    dilation += _figure(seed_ideas.receptive_field_figure(rf),
                        "Input pixels that reach the centre output after each layer of the "
                        "stack (red square: measured extent).",
                        "receptive field of dilated stacks")
    dilation += tables.styled(seed_ideas.receptive_field_table(rf))
    # 8 ratios
    ex = seed_ideas.depthwise_separable_example()
    ss, source = seed_ideas.spatially_separable_example()
    conv, dws = ex["multiplications"].iloc[0], ex["multiplications"].iloc[-1]
    ratios = _p("Seed section 8, from <code>kernels.multiplications</code>. The article's "
                f"7×7×3 → 5×5×128 example with 3×3 filters: {conv:,} multiplications for the "
                f"standard convolution and {dws:,} for the depthwise separable one, "
                f"{100 * dws / conv:.1f}% of it.")
    ex_show = ex.assign(multiplications=ex["multiplications"].map(lambda v: f"{v:,}"))
    ratios += tables.styled(ex_show, caption="depthwise separable vs standard convolution")
    ratios += tables.styled(ss.astype({"multiplications": str}),
                            caption=f"spatially separable, 3×3 on 5×5 (separable count from "
                            f"{source})")
    ratios += _figure(seed_ideas.ratio_curves_figure(seed_ideas.depthwise_separable_curve(),
                                                     seed_ideas.spatially_separable_curve()),
                      "Counted ratios as the problem grows: spatially separable / standard "
                      "tends to 2/m for an m×m kernel (left); depthwise separable / standard "
                      "tends to 1/Nc + 1/h² (right; 32 input channels, 56×56).",
                      "multiplication ratio curves")
    return checker, dilation, ratios


def seed_section(res: Results) -> Section:
    res = _primary(res)
    checker, dilation, ratios = _seed_static()
    measured = seed_ideas.measured_ratios(res.frame)
    if measured.empty:
        ratios += _p("The results hold no depthwise_separable and conv2d run of the same "
                     "shape, nor a spatially_separable layer timed with both separable and "
                     "direct, so there is no measured time ratio to set beside the counts.",
                     "note")
    else:
        show = measured.copy()
        for c in ("multiplication ratio", "time ratio", "time / multiplication ratio"):
            show[c] = show[c].map(lambda v: f"{v:.3f}")
        ratios += tables.styled(show, caption="counted vs measured ratios (fastest of our "
                                "algorithms on each side, largest thread count)")
        ratios += _figure(seed_ideas.measured_ratio_figure(measured),
                          "Measured time ratio against the counted multiplication ratio; on "
                          "the dashed line time follows the count.", "measured vs counted")
    children = [
        Section("seed-checkerboard", "Checkerboard artifacts of transposed convolution",
                checker),
        Section("seed-dilation", "Receptive field of stacked dilated 3×3 convolutions",
                dilation),
        Section("seed-separable", "Multiplication ratios of separable convolutions", ratios),
    ]
    return Section("seed", "The seed article's ideas, computed by the suite",
                   _p("Nothing here is typed in: every number comes from running the suite's "
                      "kernels or its multiplication counts.", "sub"), children)


def comparison_section(cmp: Comparison, label_a: str, label_b: str, idx: int) -> Section:
    t = cmp.table
    common = cmp.common
    counts = t["verdict"].value_counts()
    parts = [f"{int(counts.get(k, 0))} {k}" for k in ("slower", "faster", "same", "missing",
                                                       "new") if counts.get(k, 0)]
    gm = cmp.geomean
    gm_cls = "bad" if gm > 1.02 else "good" if gm < 0.98 else ""
    body = _p(f"<b>{html.escape(label_b)}</b> against <b>{html.escape(label_a)}</b>: "
              f"{len(common)} benchmarks in both; " + ", ".join(parts) + ". Geometric mean "
              f"time ratio of our kernels (B / A, > 1: B slower): "
              f"<span class='{gm_cls}'>{gm:.3f}</span>. Engine: {html.escape(cmp.engine)}"
              + (f", threshold {cmp.threshold:g}×, alpha {cmp.alpha:g}"
                 if cmp.threshold == cmp.threshold else "") + ".")
    for note in cmp.notes:
        body += _p(html.escape(note), "note")
    per = per_type_geomeans(cmp)
    if not per.empty:
        for c in ("geomean_ratio", "worst", "best"):
            per[c] = per[c].map(lambda v: f"{v:.3f}")
        body += tables.styled(per.rename(columns={"conv_type": "conv type",
                                                  "geomean_ratio": "geomean ratio B/A"}),
                              caption="per conv type")
    moved = common[(common["verdict"] != "same")
                   | ((common["ratio"] - 1).abs() > 0.02)].sort_values("ratio")
    if len(moved) > 50:
        moved = pd.concat([moved.head(25), moved.tail(25)])
    if not moved.empty:
        body += _figure(plots.comparison(moved, label_a, label_b),
                        f"Time ratio of the {len(moved)} benchmarks that moved by more than 2% "
                        "or significantly (the 25 best and 25 worst when more); red: "
                        "significantly slower, green: significantly faster, grey: not "
                        "significant.", "comparison ratios")
    elif not common.empty:
        body += _p("No benchmark moved by more than 2%.", "note")
    show = pd.DataFrame({
        "benchmark": t["name"], "status": t["status"],
        f"{label_a}": t["base_median"].map(fmt.seconds),
        f"{label_b}": t["new_median"].map(fmt.seconds),
        "ratio B/A": t["ratio"].map(lambda v: f"{v:.3f}" if v == v else "–"),
        "p (Mann–Whitney)": t["p_value"].map(lambda v: f"{v:.2g}" if v == v else "–"),
        "normalisation": t["factor"].map(lambda v: f"÷{v:.3f}" if v == v else "–"),
    })
    css = pd.DataFrame("", index=show.index, columns=show.columns)
    css["ratio B/A"] = ["background-color:#f9dcdc" if v == "slower" else
                        "background-color:#d9f2d9" if v == "faster" else "" for v in t["verdict"]]
    head, rest = show.head(40), show.iloc[40:]
    body += tables.styled(head, caption="worst offenders first", css=css.head(40))
    if len(rest):
        body += ("<details><summary>" + f"{len(rest)} more benchmarks</summary>"
                 + tables.styled(rest, css=css.iloc[40:]) + "</details>")
    return Section(f"compare-{idx}", f"Comparison: {label_b} vs {label_a}", body)


def skips_section(res: Results) -> Section | None:
    s = tables.skip_summary(res.skips)
    if s.empty:
        return None
    failed = s[s["status"].astype(str).str.contains("fail|error", case=False)]
    intro = (_p(f"<span class='bad'>{int(failed['layers'].sum())} cells failed verification "
                f"or errored</span> and are not in the timings.")
             if len(failed) else "")
    return Section("skips", "Skipped cells", intro + _p(
        "Cells of the sweep that did not run, grouped by reason (from the sweep's skip "
        "list).", "sub") + tables.styled(s))


# ------------------------------------------------------------------------------ page
def render(res: Results, *, accuracy: pd.DataFrame | None = None,
           numerics: pd.DataFrame | None = None,
           comparisons: list[tuple[Comparison, str, str]] = (), command: str | None = None,
           title: str | None = None, files: list[str] = (), history=None) -> str:
    """The page; `history` is a history database (harness.history) whose section is added
    when it holds results."""
    from .history import history_section

    sections: list[Section | None] = []
    if not res.frame.empty:
        sections += [summary_section(res), networks_section(res), type_sections(res),
                     time_vs_mults_section(res), roofline_section(res), accuracy_section(accuracy),
                     numerics_section(numerics), compile_section(res), threads_section(res)]
    else:
        sections += [accuracy_section(accuracy), numerics_section(numerics)]
    for i, (cmp, a, b) in enumerate(comparisons):
        sections.append(comparison_section(cmp, a, b, i))
    sections.append(history_section(history))
    sections.append(seed_section(res))
    sections.append(skips_section(res))
    sections = [s for s in sections if s is not None]

    nav = " ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
    out = []
    for s in sections:
        out.append(f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>{s.body}')
        if s.children:
            out.append('<p class="note">' + " · ".join(
                f'<a href="#{c.id}">{html.escape(c.title)}</a>' for c in s.children) + "</p>")
        for c in s.children:
            out.append(f'<section id="{c.id}"><h3>{html.escape(c.title)}</h3>{c.body}'
                       "</section>")
        out.append("</section>")
    title = title or "convbench report"
    made = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    empty_note = ("" if not res.frame.empty else
                  _p("<span class='bad'>The result files hold no benchmark.</span>"))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{CSS}</style></head>
<body><main>
<header><h1>{html.escape(title)}</h1>
<p class="sub">Numba CPU kernels for every convolution type of deep learning, timed with pyperf
over real network layers, against their theoretical multiplication counts and PyTorch (oneDNN)
measured in the same run.</p>
{header_table(res, command, list(files))}{empty_note}</header>
<nav>{nav}</nav>
{''.join(out)}
<footer>generated {made} by harness.report · <span id="image-status">images not checked
(scripts disabled)</span></footer>
</main>
<script>{IMAGE_CHECK}</script>
</body></html>
"""

