"""Result files -> tidy pandas tables.

A result file is a pyperf suite JSON whose benchmarks are named
`type/algorithm/network:layer[@tN][@prepared]` and carry convbench metadata (conv_type,
algorithm, spec, network, layer, multiplications, direct_multiplications,
threads, mode, calibration, library versions). Benchmarks of files from before timing
modes, which have neither the metadata nor the marker, are `call` mode. Beside it a
`<stem>.skips.json` sidecar may list the cells that did not apply or failed verification.

`load_results` gives one row per benchmark with the median, the spread
(IQR and MAD), GFLOP/s (2 flops per *direct* multiplication, so every
algorithm of a layer is measured against the same work), % of the calibrated
sgemm peak, time per multiplication (the algorithm's own count), the bytes
moved (input + weights + output, float32) and the arithmetic intensity.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import kernels
from harness.messages import clip
from harness.modes import DEFAULT_MODE, MODES
from harness.peers import is_peer
from harness.results import load_suite as load_pyperf_suite
from harness.results import require_regular

NAME_RE = re.compile(
    r"^(?P<conv_type>[^/]+)/(?P<algorithm>[^/]+)/(?P<network>[^:]*):(?P<layer>.*?)"
    r"(?:@t(?P<threads>\d+))?(?:@(?P<mode>" + "|".join(MODES) + r"))?$")

# run-level keys gathered for the header (benchmark metadata, then pyperf's own)
RUN_KEYS = (
    "hostname", "cpu_model", "cpu_model_name", "cpu_count", "cpu_config", "cpu_freq",
    "platform", "python_version", "python_implementation", "numba_version",
    "llvmlite_version", "numpy_version", "torch_version", "onnxruntime_version",
    "openvino_version", "perf_version", "threading_layer",
    "threads", "calib_sgemm_gflops_1t", "calib_sgemm_gflops", "calib_bandwidth_gbs",
    "command", "set", "aslr", "blas", "isa", "isa_overridden", "vector_bits", "blocks",
    "machine_class",
)
NUMERIC = ("multiplications", "direct_multiplications", "threads", "compile_seconds",
           "calib_sgemm_gflops_1t", "calib_sgemm_gflops", "calib_bandwidth_gbs",
           "layer_repeat")


def algorithm_order(names) -> list[str]:
    """Our algorithms in the catalogue's order, then the peers alphabetically."""
    names = list(dict.fromkeys(names))
    ours = [a for a in kernels.ALGORITHMS if a in names]
    return ours + sorted(a for a in names if a not in kernels.ALGORITHMS)


def type_order(names) -> list[str]:
    names = list(dict.fromkeys(names))
    return [t for t in kernels.CONV_TYPES if t in names] + sorted(
        t for t in names if t not in kernels.CONV_TYPES)


def result_stem(path: Path) -> str:
    name = Path(path).name
    for suffix in (".json.gz", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def skips_path(path: Path) -> Path:
    path = Path(path)
    return path.with_name(result_stem(path) + ".skips.json")


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def canonical_spec(text: str) -> str:
    """The spec string without its layer name, for matching problems across types."""
    try:
        return str(kernels.ConvSpec.parse(str(text)).replace(name=""))
    except (ValueError, TypeError):
        return re.sub(r'n"[^"]*"\s*$', "", str(text))


def problem_bytes(conv_type: str, spec_text: str) -> float:
    """Bytes of input + weights + output in float32 (the roofline's minimum traffic)."""
    try:
        spec = kernels.ConvSpec.parse(str(spec_text))
    except (ValueError, TypeError):
        return math.nan
    elems = math.prod(spec.input_shape) + math.prod(spec.output_shape)
    try:
        shapes = kernels.CATALOGUE[conv_type].weight_shapes(spec)
    except (KeyError, ValueError, ZeroDivisionError):
        shapes = ((spec.k, spec.c // max(1, spec.groups), *spec.kernel),)
    elems += sum(math.prod(s) for s in shapes)
    return 4.0 * elems


def peak_gflops(threads: float, sgemm_1t: float, sgemm: float) -> float:
    """Calibrated peak for a thread count: the 1-thread sgemm for one thread, otherwise
    the all-thread sgemm, capped at threads x the 1-thread figure."""
    have_1t = sgemm_1t == sgemm_1t and sgemm_1t > 0
    have_n = sgemm == sgemm and sgemm > 0
    t = threads if threads == threads and threads > 0 else 1
    if t == 1 and have_1t:
        return sgemm_1t
    if have_n and have_1t:
        return min(sgemm, sgemm_1t * t)
    if have_n:
        return sgemm
    if have_1t:
        return sgemm_1t * t
    return math.nan


@dataclass
class Results:
    """Everything read from one or more result files."""

    paths: list[Path]
    frame: pd.DataFrame          # one row per benchmark
    skips: pd.DataFrame          # conv_type, algorithm, network, layer, spec, reason, source
    run_info: dict = field(default_factory=dict)  # key -> sorted distinct values
    dates: tuple = (None, None)  # first and last pyperf run date
    untimed: list = field(default_factory=list)  # benchmarks without values, left out

    @property
    def empty(self) -> bool:
        return self.frame.empty


def _bench_row(bench, source: str) -> dict:
    md = bench.get_metadata()
    name = bench.get_name() or md.get("name", "")
    m = NAME_RE.match(name)
    parsed = m.groupdict() if m else {}
    values = np.asarray(bench.get_values(), dtype=float)
    row = {
        "source": source,
        "name": name,
        "conv_type": str(md.get("conv_type", parsed.get("conv_type", "?"))),
        "algorithm": str(md.get("algorithm", parsed.get("algorithm", "?"))),
        "network": str(md.get("network", parsed.get("network", ""))),
        "layer": str(md.get("layer", parsed.get("layer", name))),
        "spec": str(md.get("spec", "")),
        "mode": str(md.get("mode") or parsed.get("mode") or DEFAULT_MODE),
        "threading_layer": str(md.get("threading_layer", "")),
        "values": tuple(values.tolist()),
        "n_values": int(values.size),
    }
    for key in NUMERIC:
        row[key] = _number(md.get(key))
    if row["threads"] != row["threads"] and parsed.get("threads"):
        row["threads"] = float(parsed["threads"])
    if row["threads"] != row["threads"]:
        row["threads"] = 1.0
    if values.size:
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        row.update(median=float(med), q1=float(q1), q3=float(q3), mean=float(values.mean()),
                   min=float(values.min()),
                   mad=float(np.median(np.abs(values - med))))
    else:
        row.update(median=math.nan, q1=math.nan, q3=math.nan, mean=math.nan, min=math.nan,
                   mad=math.nan)
    return row




def load_suite(path) -> tuple[pd.DataFrame, dict, tuple]:
    """One result file -> (benchmark rows, run-level metadata, (first, last) date)."""
    path = Path(path)
    suite = load_pyperf_suite(path)
    source = result_stem(path)
    rows, info, starts, ends = [], {}, [], []
    for bench in suite.get_benchmarks():
        rows.append(_bench_row(bench, source))
        md = bench.get_metadata()
        for key in RUN_KEYS:
            if key in md:
                info.setdefault(key, set()).add(md[key])
        # per-run metadata that differs between pyperf workers
        for run in bench.get_runs():
            rmd = run.get_metadata()
            for key in ("hostname", "cpu_model_name", "cpu_count", "python_version",
                        "platform"):
                if key in rmd:
                    info.setdefault(key, set()).add(rmd[key])
        try:
            start, end = bench.get_dates() or (None, None)
        except (AttributeError, ValueError, TypeError):
            start = end = None
        if start:
            starts.append(start)
            ends.append(end)
    frame = pd.DataFrame(rows)
    dates = (min(starts), max(ends)) if starts else (None, None)
    return frame, info, dates


def load_skips(path) -> pd.DataFrame:
    """The `<stem>.skips.json` sidecar (empty frame when there is none)."""
    cols = ["conv_type", "algorithm", "network", "layer", "spec", "reason", "mode"]
    sidecar = skips_path(path)
    if not sidecar.exists():
        return pd.DataFrame(columns=[*cols, "source"])
    require_regular(sidecar, "skips file")  # a FIFO would block the read
    try:
        with open(sidecar, encoding="utf-8") as fh:
            data = json.load(fh)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{clip(sidecar)}: not a skips file ({clip(exc, 80)})") from None
    if isinstance(data, dict):  # tolerate {"skips": [...]}
        data = data.get("skips", [])
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ValueError(f"{clip(sidecar)}: not a skips file (expected a list of objects)")
    frame = pd.DataFrame(list(data))
    for col in cols:
        if col not in frame:
            frame[col] = ""
    frame = frame.fillna("")
    # entries without a mode (call-mode entries, and sidecars from before modes) are `call`
    frame["mode"] = frame["mode"].replace("", DEFAULT_MODE)
    frame["source"] = result_stem(path)
    if "threads" in frame:
        frame["threads"] = pd.to_numeric(frame["threads"], errors="coerce")
    return frame


def derive(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the derived columns: GFLOP/s, % of peak, time per multiplication, bytes,
    intensity, and the per-layer speedup over direct and ratio to torch."""
    df = frame.copy()
    if df.empty:
        return df
    df["peer"] = df["algorithm"].map(is_peer)
    dm = df["direct_multiplications"].where(df["direct_multiplications"] > 0,
                                            df["multiplications"])
    df["direct_multiplications"] = dm
    mults = df["multiplications"].where(df["multiplications"] > 0, dm)
    df["multiplications"] = mults
    df["flops"] = 2.0 * dm
    df["gflops"] = df["flops"] / df["median"] / 1e9
    df["peak_gflops"] = [peak_gflops(t, a, b) for t, a, b in zip(
        df["threads"], df["calib_sgemm_gflops_1t"], df["calib_sgemm_gflops"])]
    df["pct_peak"] = 100.0 * df["gflops"] / df["peak_gflops"]
    df["s_per_mult"] = df["median"] / mults
    df["iqr"] = df["q3"] - df["q1"]
    df["rel_iqr"] = df["iqr"] / df["median"]
    df["rel_mad"] = df["mad"] / df["median"]
    df["bytes"] = [problem_bytes(t, s) for t, s in zip(df["conv_type"], df["spec"])]
    df["intensity"] = df["flops"] / df["bytes"]
    df["problem"] = [canonical_spec(s) for s in df["spec"]]
    df["label"] = df["network"] + ":" + df["layer"]
    key = ["source", "conv_type", "label", "problem", "threads", "mode"]
    direct = df[df["algorithm"] == "direct"].groupby(key)["median"].min().rename(
        "direct_median")
    torch = df[df["algorithm"] == "torch"].groupby(key)["median"].min().rename("torch_median")
    df = df.join(direct, on=key).join(torch, on=key)
    df["speedup_over_direct"] = df["direct_median"] / df["median"]
    df["ratio_to_torch"] = df["torch_median"] / df["median"]  # > 1: faster than torch
    return df


def load_results(paths) -> Results:
    """Read result files (and their sidecars) into one Results."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    frames, skips, info, starts, ends = [], [], {}, [], []
    for path in paths:
        frame, file_info, (start, end) = load_suite(path)
        frames.append(frame)
        skips.append(load_skips(path))
        for key, vals in file_info.items():
            info.setdefault(key, set()).update(vals)
        if start:
            starts.append(start)
            ends.append(end)
    frame = pd.concat([f for f in frames if not f.empty], ignore_index=True) \
        if any(not f.empty for f in frames) else pd.DataFrame()
    untimed = []
    if not frame.empty:  # a benchmark of warm-ups only has no time to show or rank
        timed = frame["median"].notna()
        untimed = sorted(frame.loc[~timed, "name"])
        frame = frame[timed].reset_index(drop=True)
    skip_frame = pd.concat(skips, ignore_index=True) if skips else pd.DataFrame()
    run_info = {k: sorted(v, key=str) for k, v in info.items()}
    dates = (min(starts), max(ends)) if starts else (None, None)
    return Results(paths=paths, frame=derive(frame), skips=skip_frame, run_info=run_info,
                   dates=dates, untimed=untimed)


def mode_order(names) -> list[str]:
    """The timing modes present, `call` first (harness.modes order)."""
    names = set(names)
    return [m for m in MODES if m in names] + sorted(names - set(MODES))


def primary_mode(df: pd.DataFrame) -> str:
    """The mode the single-mode sections (plots, seed ideas) show: `call` when present."""
    modes = mode_order(df["mode"]) if "mode" in df and not df.empty else []
    return modes[0] if modes else DEFAULT_MODE


def in_mode(df: pd.DataFrame, mode: str) -> pd.DataFrame:
    return df[df["mode"] == mode] if "mode" in df else df


def main_threads(df: pd.DataFrame) -> pd.DataFrame:
    """Rows at the largest thread count each (source, type, layer) ran with."""
    if df.empty:
        return df
    top = df.groupby(["source", "conv_type", "label"])["threads"].transform("max")
    return df[df["threads"] == top]


def geomean(values) -> float:
    vals = np.asarray([v for v in values if v == v and v > 0], dtype=float)
    return float(np.exp(np.log(vals).mean())) if vals.size else math.nan
