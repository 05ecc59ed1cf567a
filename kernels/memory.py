"""Memory guard: an estimate of what one cell (or the oracle) allocates, checked before it does.

`estimate(conv_type, algorithm, spec)` returns the bytes one call is expected
to hold at its peak, by part:

- output: the float32 output (for the reference: its float64 output);
- workspace: scratch besides input, weights and output: im2col's unfolded
  tiles (its own `workspace_bytes`, under its budget), Winograd's packed
  sub-grid input and transformed input V (and conv3d's NumPy intermediates),
  direct's channels-last packed (padded) input and per-thread row buffers (or, groups
  in lanes, only per-thread bands of rows),
  separable's padded planes, zero-upsampled input and stage intermediates,
  depthwise_separable's middle tensor, plus a per-thread allowance;
- weights: packed / transformed / multiplied-out copies of the weights.

The reference (`algorithm="reference"`) is float64: the padded input, the
window view copied twice by einsum, its output (and the zero-upsampled input
of a transposed conv, the middle tensor of depthwise_separable).

It is meant to be roughly right (within 2x of the real peak for layers whose
arrays outgrow the per-thread scratch), not exact, and never below the output.
`mode="plan"` estimates `kernels.plan(...)` and one call of the plan instead: the
weight copy a plan takes and what its prepare step keeps (Winograd's and fft's
transformed filter, which a single call computes chunk by chunk and never holds).
Every estimate is a closed form of the spec (no work lists, no loops over sub-grids
or items): the guard must answer at once for specs whose geometry would not fit.

The limit is `DEFAULT_FRACTION` (half) of the machine's physical memory, unless
the environment variable CONVBENCH_MEMORY_LIMIT (bytes, or with a unit:
"512M", "8G", "1.5T"; binary units) or `set_memory_limit` says otherwise.
`check(...)` and `reason(...)` compare the two; `kernels.run`,
`kernels.reference` and `kernels.supports` use them before allocating anything.
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
import os
import re
from fractions import Fraction

import numba
import numpy as np

from .spec import ConvSpec
from .types import check_spec
from .types import conv_type as _type

DEFAULT_FRACTION = 0.5
ENV_VAR = "CONVBENCH_MEMORY_LIMIT"
PER_THREAD_BYTES = 1 << 20  # small per-thread buffers (register blocks, L1/L2-sized chunks)
F32, F64 = 4, 8

_override: int | None = None
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGTP]?)(?:I?B)?\s*", re.IGNORECASE)


# ---------------------------------------------------------------------------- the limit
@functools.lru_cache(maxsize=1)
def physical_memory() -> int:
    """Bytes of physical memory (os.sysconf); 0 if the platform does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


SIZE_FORMS = ("a whole number of bytes, or a number with a binary unit K, M, G, T or P "
              "(an optional B or iB after it), such as 512M, 8G or 1.5T")


def parse_size(text, field: str = ENV_VAR) -> int:
    """'8G' -> 8 * 2**30; plain digits are bytes; K/M/G/T/P are binary units (KiB, ...).

    An int (Python or NumPy) is bytes; a float or a fraction of a byte is refused rather
    than rounded (1.5 would be 1 byte)."""
    if isinstance(text, (bool, np.bool_)) or not isinstance(text, str) and not hasattr(
            text, "__index__"):
        raise ValueError(f"{field}: the memory limit must be {SIZE_FORMS}; got "
                         f"{type(text).__name__} {str(text)[:40]!r}")
    if not isinstance(text, str):
        value = operator.index(text)
    else:
        m = _SIZE_RE.fullmatch(text) if len(text) <= 40 else None
        if not m:
            shown = text[:40] + ("..." if len(text) > 40 else "")
            raise ValueError(f"{field}: the memory limit must be {SIZE_FORMS}; got {shown!r}")
        exact = Fraction(m.group(1)) * _UNITS[m.group(2).upper()]
        if not m.group(2) and exact.denominator != 1:
            raise ValueError(f"{field}: the memory limit must be {SIZE_FORMS}; got "
                             f"{text!r}, a fraction of a byte")
        value = int(exact)
    if value < 1:
        raise ValueError(f"{field}: the memory limit must be positive, got {str(text)[:40]!r}")
    return value


def set_memory_limit(nbytes: int | str | None) -> None:
    """Refuse cells estimated above `nbytes` (an int, or '8G'); None: back to the default
    (CONVBENCH_MEMORY_LIMIT if set, else DEFAULT_FRACTION of physical memory)."""
    global _override
    _override = None if nbytes is None else parse_size(nbytes, "nbytes")


def memory_limit() -> int:
    """The limit in force: set_memory_limit, else CONVBENCH_MEMORY_LIMIT, else the fraction."""
    if _override is not None:
        return _override
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return parse_size(env)
    total = physical_memory()
    return int(total * DEFAULT_FRACTION) if total else 1 << 62


def _limit_source() -> str:
    if _override is not None:
        return "set by kernels.set_memory_limit"
    if os.environ.get(ENV_VAR, "").strip():
        return f"from {ENV_VAR}"
    return (f"{DEFAULT_FRACTION:g} of {fmt(physical_memory())} physical; "
            f"override with {ENV_VAR} or kernels.set_memory_limit")


def fmt(nbytes: int) -> str:
    """1536 -> '1.5 KiB'."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes} B"


# ------------------------------------------------------------------------- geometry
def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _prod(t) -> int:
    return math.prod(int(v) for v in t)


def _padded(spec: ConvSpec) -> tuple[int, ...]:
    return tuple(i + 2 * p for i, p in zip(spec.size, spec.padding))


def _upsampled(spec: ConvSpec) -> tuple[int, ...]:
    return tuple(s * (i - 1) + 1 for i, s in zip(spec.size, spec.stride))


def _threads() -> int:
    # the most threads a call may use (a constant: the check runs on every call, and
    # numba.get_num_threads() alone costs as much as the cached check)
    return numba.config.NUMBA_NUM_THREADS


def _out(spec: ConvSpec, channels: int | None = None) -> int:
    return spec.n * (spec.k if channels is None else channels) * _prod(spec.out_size)


def _kernel_elems(spec: ConvSpec) -> int:
    return spec.k * (spec.c // spec.groups) * _prod(spec.kernel)


def _factored(conv_type: str) -> bool:
    """The kernel is a product of factors, multiplied out inside the call."""
    return _type(conv_type).composition == "product"


def _staged(conv_type: str) -> bool:
    """Depthwise then pointwise: an intermediate and a second weight array."""
    return _type(conv_type).composition == "stages"


def _depthwise(conv_type: str) -> bool:
    """One filter per channel, alone or as the first stage."""
    return _type(conv_type).grouping == "depthwise" or _staged(conv_type)


# ----------------------------------------------------------------- per algorithm
def _direct(conv_type: str, spec: ConvSpec, mode: str = "call") -> dict:
    t = _threads()
    out = F32 * _out(spec)
    if conv_type == "dilated2d":  # space-to-batch (direct/dilated.py): its own buffers
        from .direct.dilated import buffer_bytes

        parts = buffer_bytes(spec)
        return dict(output=out, workspace=parts["xq"] + t * (PER_THREAD_BYTES
                                                             + parts["per_thread"]),
                    weights=parts["weights"])
    weights = F32 * 2 * _kernel_elems(spec)  # packed blocks (padded to the register block)
    if _type(conv_type).transposed:
        span = tuple(i + 2 * (k * d // s + 2) for i, k, d, s in
                     zip(spec.size, spec.kernel, spec.dilation, spec.stride))
        ws = F32 * spec.n * spec.c * _prod(span) + t * PER_THREAD_BYTES
        return dict(output=out, workspace=ws, weights=weights)
    if _depthwise(conv_type):
        # per thread a zero-padded plane (direct/depthwise.py); the fused depthwise
        # separable path also packs the whole padded input
        ws = t * (PER_THREAD_BYTES + F32 * _prod(spec.stride) * _prod(_padded(spec)))
        if _staged(conv_type):
            ws += F32 * spec.n * spec.c * _prod(_padded(spec))
            mid = F32 * _out(spec, spec.c)
            ws += 2 * mid  # the depthwise output and its channels-last copy
            weights += F32 * 2 * spec.k * spec.c
        return dict(output=out, workspace=ws, weights=weights)
    if _type(conv_type).kernel == "1x1":
        ws = F32 * spec.n * spec.c * _prod(spec.out_size) + t * PER_THREAD_BYTES
        return dict(output=out, workspace=ws, weights=weights)
    from .direct.group_lanes import takes_group_lanes, workspace_bytes

    if takes_group_lanes(spec):  # no input copy: per thread, a band of rows in lanes
        return dict(output=out, workspace=t * (PER_THREAD_BYTES + workspace_bytes(spec)),
                    weights=weights)
    cg = spec.c // spec.groups
    window = cg * _prod(spec.kernel)
    padded = _padded(spec)
    row = F32 * padded[-1] * window
    ws = F32 * spec.n * spec.c * _prod(padded) + t * (PER_THREAD_BYTES + max(512 << 10, row))
    if _factored(conv_type):
        weights += F32 * _kernel_elems(spec)
    return dict(output=out, workspace=ws, weights=weights)


def _im2col(conv_type: str, spec: ConvSpec, mode: str = "call") -> dict:
    from .im2col import workspace_bytes

    out = F32 * _out(spec)
    ws = workspace_bytes(conv_type, spec) + _threads() * PER_THREAD_BYTES
    weights = F32 * (spec.k * spec.c if _staged(conv_type) else 0)
    if _factored(conv_type):
        weights += F32 * _kernel_elems(spec)
    if _type(conv_type).transposed:
        weights += F32 * spec.c * (spec.k // spec.groups) * _prod(spec.kernel)
    return dict(output=out, workspace=ws, weights=weights)


def _tiled_filter_bytes(groups: int, k: int, cg: int, points: int) -> int:
    """Bytes of the transformed filter U of kernels.tiled.pipeline.prepare_filter (its
    layout: output channels in blocks of LANES * kv, input channels in chunks of cc,
    each plane padded by PLANE_PAD floats), for `points` = alpha_h alpha_w."""
    from .outer_block import LANES, WIDE
    from .tiled import pipeline as tp

    kg = k // groups
    kv = 2 if WIDE and kg > LANES else 1
    cc = tp.FILTER_L2 // (points * LANES * kv * F32) // tp.FILTER_CHUNK * tp.FILTER_CHUNK
    cc = min(cg, max(tp.FILTER_CHUNK, cc))
    blocks = groups * _cdiv(kg, LANES * kv) * _cdiv(cg, cc)
    return F32 * blocks * points * (cc * LANES * kv + tp.PLANE_PAD)


def _tiled_filter_held(mode: str, filter_bytes: int, tiles: int, cg: int, points: int,
                       per_call: bool) -> int:
    """The part of the transformed filter a tiled call (or plan) holds: a plan keeps it up
    to PLANNED_FILTER_BYTES; a call computes it chunk by chunk into per-thread buffers,
    except the generic transform (`per_call`: the fft's), which fills it once per call
    when several tile chunks would each redo it and it is at most PRE_FILTER_BYTES
    (kernels.tiled.pipeline.call_buffers)."""
    from .outer_block import PT
    from .tiled import pipeline as tp

    if mode == "plan":
        return filter_bytes if filter_bytes <= tp.PLANNED_FILTER_BYTES else 0
    if not per_call or filter_bytes > tp.PRE_FILTER_BYTES:
        return 0
    chunk = max(tp.MIN_CHUNK_TILES, tp.L2_BYTES // (points * cg * F32))
    chunk = min(_cdiv(chunk, PT) * PT, _cdiv(tiles, PT) * PT)
    return filter_bytes if _cdiv(tiles, chunk) > 1 else 0


def _winograd(m: int):
    def estimate(conv_type: str, spec: ConvSpec, mode: str = "call") -> dict:
        a = m + 2
        nd = spec.ndim
        t = _threads()
        out = F32 * _out(spec)
        tiles = [_cdiv(_cdiv(o, d), m) for o, d in zip(spec.out_size, spec.dilation)]
        subgrids = _prod(spec.dilation)
        T = spec.n * subgrids * _prod(tiles)
        span = _prod(tt * m + 2 for tt in tiles)
        xp = F32 * spec.n * subgrids * spec.c * span  # packed (padded) sub-grids
        V = F32 * a ** nd * T * spec.c  # transformed input
        kg = spec.k // spec.groups
        if _depthwise(conv_type):
            weights = F32 * a * a * spec.c
        elif spec.ndim == 2:  # the 2-D pipeline: the transformed filter where it is held
            weights = _tiled_filter_held(
                mode, _tiled_filter_bytes(spec.groups, spec.k, spec.c // spec.groups, a * a),
                T, spec.c // spec.groups, a * a, per_call=False)
        else:
            weights = F32 * (a ** nd + 3 ** nd) * spec.k * (spec.c // spec.groups)
        if _factored(conv_type) or _type(conv_type).transposed:  # the oriented kernel
            weights += F32 * _kernel_elems(spec)
        ws = xp + V + 2 * t * PER_THREAD_BYTES  # product blocks, transform rows per thread
        if spec.ndim == 3:
            # NumPy: zero-padded sub-grid, V by einsum and its contiguous copy, the
            # products M, the output tiles Y and their copy into y
            M = F32 * a ** 3 * spec.groups * kg * T
            Y = F32 * spec.k * spec.n * _prod(tt * m for tt in tiles)
            ws = xp + 2 * V + M + 2 * Y
        if _staged(conv_type):
            ws += 2 * F32 * _out(spec, spec.c)
            weights += F32 * 2 * spec.k * spec.c
        return dict(output=out, workspace=ws, weights=weights)

    return estimate


def _fft(conv_type: str, spec: ConvSpec, mode: str = "call") -> dict:
    """The tiled pipeline on fft's stride-1 problem (kernels.fft.plan): packed sub-grids,
    V of alpha_h alpha_w points per tile and channel, the transformed filter where it is
    held (`_tiled_filter_held`; a stride-1 depthwise one is F x c, kept always), the
    polyphase copies of a strided conv."""
    from .fft.cells import _stage
    from .fft.matrices import alpha
    from .fft.plan import plan

    p = plan(_stage(conv_type, spec))
    out = F32 * _out(spec)
    m = p.m
    tiles = [_cdiv(_cdiv(o, d), mm) for o, d, mm in zip(p.out_size, p.dilation, m)]
    T = p.n * _prod(p.dilation) * _prod(tiles)  # pipeline.call_buffers: every sub-grid
    span = _prod(tt * mm + t - mm for tt, mm, t in zip(tiles, m, p.tiles))
    F = alpha(p.tiles[0]) * alpha(p.tiles[1])
    xp = F32 * p.n * _prod(p.dilation) * p.c * span
    V = F32 * F * T * p.c
    cg = p.c // p.groups
    if _depthwise(conv_type) and p.phases == (1, 1):  # kernels.tiled.depthwise: U[F, c]
        weights = F32 * F * p.c
    else:
        weights = _tiled_filter_held(mode, _tiled_filter_bytes(p.groups, p.k, cg, F), T, cg,
                                     F, per_call=True)
    ws = xp + V + 2 * _threads() * PER_THREAD_BYTES
    if p.phases != (1, 1):  # the padded input and its phase copy, the phase sub-kernels
        ws += 2 * F32 * p.n * p.c * _prod(o + r - 1 for o, r in zip(p.out_size, p.kernel))
        weights += F32 * p.k * (p.c // p.groups) * _prod(p.kernel)
    if _factored(conv_type) or _type(conv_type).transposed:  # the oriented kernel
        weights += F32 * _kernel_elems(spec)
    if conv_type == "depthwise_separable":
        ws += 2 * F32 * _out(spec, spec.c)
        weights += F32 * 2 * spec.k * spec.c
    return dict(output=out, workspace=ws, weights=weights)


def _bank_ranks(conv_type: str, spec: ConvSpec) -> int:
    """R of the separable cell's channel bank on `spec`, 0 where it runs the terms."""
    from .separable import counts
    from .separable.cells import DENSE_2D, uses_bank
    from .separable.tucker import axis_ranks

    count = {"conv3d": counts.conv3d_count}.get(
        conv_type, counts.dense_count if conv_type in DENSE_2D else None)
    if count is None or not uses_bank(spec, count):
        return 0
    kernel = (1,) * (3 - spec.ndim) + tuple(spec.kernel)
    return _prod(axis_ranks(kernel, spec.k // spec.groups))


def _separable(conv_type: str, spec: ConvSpec, mode: str = "call") -> dict:
    t = _threads()
    out = F32 * _out(spec)
    kh, kw = spec.kernel[-2:]
    cg = spec.c // spec.groups
    # SVD factors of every (k, c) kernel, in float64
    weights = F64 * 3 * spec.k * cg * (kh * kh + kw * kw + kh * kw) * (
        spec.kernel[0] if spec.ndim == 3 else 1)
    per_thread = t * (PER_THREAD_BYTES + F32 * 65536)
    # the channel-bank path (separable/bank.py), where the cell chooses it: every input
    # channel's R = rd rh rw filtered planes at the output size, channels-last for the mix
    bank = F32 * spec.n * spec.c * _bank_ranks(conv_type, spec) * _prod(spec.out_size)
    if bank:  # the Tucker factors instead: the float64 kernel, its unfoldings and core
        weights = F64 * 3 * _kernel_elems(spec)
    if spec.ndim == 3:
        spans = [(o - 1) * s + (k - 1) * d + 1 for o, k, s, d in zip(
            spec.out_size, spec.kernel, spec.stride, spec.dilation)]
        # the padded input volumes, and per thread a plane and a row band of them
        ws = F32 * (spec.n * spec.c * _prod(spans) + 2 * t * _prod(spans[1:]))
        return dict(output=out, workspace=max(ws, bank) + per_thread, weights=weights)
    spans = tuple((o - 1) * (1 if spec.transposed else s) + (k - 1) * d + 1
                  for o, k, s, d in zip(spec.out_size, spec.kernel, spec.stride,
                                        spec.dilation))
    channels = spec.k if conv_type == "flattened" else spec.c
    ws = F32 * spec.n * channels * _prod(spans) + per_thread  # padded planes
    if _type(conv_type).transposed and any(s > 1 for s in spec.stride):
        ws += F32 * spec.n * spec.c * _prod(_upsampled(spec))
    if _staged(conv_type):
        ws += 2 * F32 * _out(spec, spec.c)  # the depthwise output and its packed copy
    if conv_type == "flattened":
        ws += F32 * spec.n * (spec.k + spec.c) * _prod(spec.size)  # lateral output, packing
    return dict(output=out, workspace=max(ws, bank + per_thread), weights=weights)


def _conv_nd64(n: int, c: int, k: int, padded: int, out: int, taps: int) -> int:
    """Peak of reference.conv_nd: the padded input, einsum's two copies of the
    window view, and the output (all float64)."""
    return F64 * (n * c * padded + 2 * n * c * out * taps + n * k * out)


def _reference(conv_type: str, spec: ConvSpec, mode: str = "call") -> dict:
    taps, out = _prod(spec.kernel), _prod(spec.out_size)
    w64 = F64 * 3 * _kernel_elems(spec)
    if _type(conv_type).transposed:  # by definition: taps scattered into every reach
        full = _prod(s * (i - 1) + d * (k - 1) + 1 + a for i, s, d, k, a in zip(
            spec.size, spec.stride, spec.dilation, spec.kernel, spec.output_padding))
        inputs = F64 * spec.n * spec.c * _prod(spec.size)
        return dict(output=F64 * spec.n * spec.k * out,
                    workspace=inputs + F64 * spec.n * spec.k * (full + _prod(spec.size)),
                    weights=w64)
    first = _conv_nd64(spec.n, spec.c, 0, _prod(_padded(spec)), out, taps)
    ws = first + F64 * spec.n * spec.c * _prod(spec.size)  # the float64 input
    if _staged(conv_type):
        mid = F64 * spec.n * spec.c * out
        ws = max(ws + mid, mid + _conv_nd64(spec.n, spec.c, 0, out, out, 1))
        w64 += F64 * spec.k * spec.c
    elif _type(conv_type).shuffle:
        ws += F64 * spec.n * spec.k * out
    return dict(output=F64 * spec.n * spec.k * out, workspace=ws, weights=w64)


ESTIMATORS = {
    "direct": _direct,
    "im2col": _im2col,
    "winograd_f2": _winograd(2),
    "winograd_f4": _winograd(4),
    "separable": _separable,
    "fft": _fft,
    "reference": _reference,
}


# ---------------------------------------------------------------------------- public
MODES = ("call", "plan")


def estimate(conv_type: str, algorithm: str, spec: ConvSpec, mode: str = "call") -> dict:
    """{"output", "workspace", "weights", "total"}: bytes one call holds at its peak
    (algorithm "reference" for the float64 oracle). Input and weights passed in
    are not counted (the caller already holds them).

    `mode="plan"`: the peak of `kernels.plan(...)` and one call of the plan, which holds
    the copy of the weights `plan` takes and what the prepare step keeps (a Winograd or
    fft plan keeps its transformed filter, which a call computes chunk by chunk).

    O(1) in time and memory from the spec (closed forms, no work lists), so that it can
    refuse a spec whose geometry alone would not fit in memory."""
    check_spec(conv_type, spec)
    if mode not in MODES or mode == "plan" and algorithm == "reference":
        raise ValueError(f"mode: expected one of {', '.join(MODES)} (the reference has no "
                         f"plan), got {mode!r}")
    # an algorithm registered without an estimator of its own (a new one, a test's) is
    # estimated as direct: its output and a padded copy of its input, never refused for
    # want of a formula
    fn = ESTIMATORS.get(algorithm, ESTIMATORS["direct"])
    # estimators take (conv_type, spec) and, where a plan holds more than a call, `mode`
    # (one registered elsewhere without it is taken as the same in both modes)
    takes_mode = "mode" in inspect.signature(fn).parameters
    parts = {key: int(v) for key, v in
             (fn(conv_type, spec, mode=mode) if takes_mode else fn(conv_type, spec)).items()}
    if mode == "plan":  # kernels.plan copies the weights before preparing them
        parts["weights"] += F32 * sum(_prod(shape) for shape in
                                      _type(conv_type).weight_shapes(spec))
    parts["total"] = parts["output"] + parts["workspace"] + parts["weights"]
    return parts


@functools.lru_cache(maxsize=4096)
def _total(conv_type: str, algorithm: str, spec: ConvSpec, mode: str) -> int:
    return estimate(conv_type, algorithm, spec, mode)["total"]


def reason(conv_type: str, algorithm: str, spec: ConvSpec, mode: str = "call") -> str | None:
    """None if the estimate fits the limit, else a one-line reason naming the field.

    The total is cached per (cell, spec, mode): `run` checks on every call, and
    working the estimate out anew (several microseconds) would show on small layers.
    """
    limit = memory_limit()
    if _total(conv_type, algorithm, spec, mode) <= limit:
        return None
    est = estimate(conv_type, algorithm, spec, mode)
    field = "padding" if any(spec.padding) and not spec.transposed and _prod(_padded(spec)) \
        > 4 * _prod(spec.size) else "size"
    what = "the reference" if algorithm == "reference" else algorithm
    if mode == "plan":
        what += "'s plan"
    return (f"{field}: {what} would need an estimated {fmt(est['total'])} for {conv_type} "
            f"(output {fmt(est['output'])}, workspace {fmt(est['workspace'])}, "
            f"weights {fmt(est['weights'])}), over the memory limit of {fmt(limit)} "
            f"({_limit_source()})")


def check(conv_type: str, algorithm: str, spec: ConvSpec, mode: str = "call") -> None:
    """Raise ValueError (see `reason`) if the estimate exceeds the memory limit."""
    why = reason(conv_type, algorithm, spec, mode)
    if why:
        raise ValueError(why)
