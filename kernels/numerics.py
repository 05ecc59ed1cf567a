"""Numeric range of each algorithm: overflow headroom, tiny values, NaN/Inf spread.

`numeric_profile(conv_type, algorithm, spec)` measures, against the float64
oracle `kernels.reference`, on `make_inputs` data:

- ``max_safe_peak``: the largest peak |reference output| reached by scaling the
  input by 10**e (e = 0, 1, ..., weights unscaled) at which the algorithm still
  returns all-finite outputs within its error bound (`kernels.accuracy.bound`, on
  `kernels.accuracy.error`, relative to the reference's own max |y|), refined by
  tenths of a decade above the last safe decade; ``first_failing_peak`` is the
  next one (None if the float32 input itself overflows first), with ``failure``
  saying why;
- ``tiny_rel_error``: max |y - ref| / max |ref| with the input x1e-30 and the
  weights x1e-10 (outputs near 1e-39, float32 subnormals), relative to the
  output's own scale; ``tiny_sweep_error`` is the same error divided by
  max(1, max |ref|), the measure of the sweeps' verification;
- ``nan_spread`` / ``inf_spread``: one interior input element set to NaN
  (resp. +Inf): the algorithm's number of non-finite outputs divided by the
  reference's; ``inf_kept`` is the fraction of the reference's +-Inf outputs
  that come back as the same infinity (the rest turn into NaN).

Direct and im2col compute each output as one sum of products, so their range is
float32's own. The Winograd transforms mix the alpha x alpha inputs of a tile
with coefficients of both signs and magnitudes up to 8 (F(4x4,3x3)), so a NaN
reaches a whole tile, an Inf meets its own negative (Inf - Inf = NaN), and the
intermediates are larger than the output; see `python -m harness.checks.numeric_range`.

The fft's products are taken in the frequency domain, where a tile's t_h x t_w inputs
are summed (the DC term) before the inverse transform divides by t_h t_w, so its
intermediates reach t_h t_w times the largest output a same-signed tile can give:
it stays finite while P = c/g * r_h * r_w * max|x| * max|w| is at most
`fft_product_limit(spec)` = float32 max / (FFT_MARGIN t_h t_w), 1.3e36 for its 8x8
tiles, 3.3e35 for 16x16 (measured on all-positive data: finite up to float32 max /
(t_h t_w), Inf at twice that; the margin covers the complex points' sqrt 2 per axis).
On `make_inputs` data the table's layer stays finite up to an output peak of 1.5e37
(conv2d) and 2.9e37 (depthwise), a 7x7 layer (16x16 tiles) up to 6e36. Keeping the
reference's range would need the 1/t_h t_w inside B^T, which the generated codelets
(kernels.fft.codelets) would pay for with a multiplication per point.
"""

from __future__ import annotations

import math

import numpy as np

from . import accuracy
from .reference import reference
from .registry import run, supports
from .types import make_inputs

EXPONENTS = tuple(range(0, 39))
FFT_MARGIN = 4  # under the measured overflow of same-signed data (see the docstring)
TINY_X, TINY_W = 1e-30, 1e-10


def _scaled(a, s: float) -> np.ndarray:
    with np.errstate(over="ignore", under="ignore"):
        return (np.asarray(a, np.float64) * s).astype(np.float32)


def _run(conv_type, algorithm, spec, x, weights):
    with np.errstate(all="ignore"):
        y = np.asarray(run(conv_type, algorithm, spec, x, weights), np.float64)
        ref = reference(conv_type, spec, x, weights)
    return y, ref


def _try(conv_type, algorithm, spec, x, weights, bound, e):
    """(peak, None) if scaling x by 10**e is safe, (peak, why) if the algorithm fails,
    (None, why) if the input or the reference leaves float32."""
    xs = _scaled(x, 10.0 ** e)
    if not np.isfinite(xs).all():
        return None, "float32 input overflows"
    y, ref = _run(conv_type, algorithm, spec, xs, weights)
    peak = float(np.abs(ref).max())
    if not np.isfinite(ref).all() or peak > float(np.finfo(np.float32).max):
        return None, "reference leaves float32"
    bad = int((~np.isfinite(y)).sum())
    err = accuracy.error(y, ref)
    if bad or err > bound:
        return peak, (f"{bad}/{y.size} outputs non-finite" if bad
                      else f"relative error {err:.2g} > {bound:.2g}")
    return peak, None


def max_safe_peak(conv_type, algorithm, spec, x, weights, bound) -> dict:
    """Decades first (EXPONENTS), then tenths of a decade above the last safe one."""
    safe, first, why, last = 0.0, None, "", None
    for e in EXPONENTS:
        peak, why = _try(conv_type, algorithm, spec, x, weights, bound, e)
        if why:
            first = peak
            break
        safe, last = peak, e
    if last is not None:
        for k in range(1, 10):
            peak, fine = _try(conv_type, algorithm, spec, x, weights, bound, last + k / 10)
            if fine:
                first, why = peak, fine
                break
            safe = peak
    return dict(max_safe_peak=safe, first_failing_peak=first, failure=why or "")


def _spread(conv_type, algorithm, spec, x, weights, value) -> dict:
    xs = np.array(x, np.float32, copy=True)
    centre = tuple(d // 2 for d in xs.shape)
    xs[centre] = value
    y, ref = _run(conv_type, algorithm, spec, xs, weights)
    n_ref = int((~np.isfinite(ref)).sum())
    n_y = int((~np.isfinite(y)).sum())
    out = dict(ref=n_ref, algo=n_y, ratio=n_y / n_ref if n_ref else math.inf)
    if np.isinf(value):
        infs = np.isinf(ref)
        kept = int((y[infs] == ref[infs]).sum())
        out["kept"] = kept / int(infs.sum()) if infs.any() else 1.0
        out["nan"] = int(np.isnan(y).sum())
    return out


def numeric_profile(conv_type: str, algorithm: str, spec, seed: int = 0) -> dict:
    """One row of the numeric-range table (see the module docstring); a cell that does
    not apply gives a row with `skipped` set to the reason."""
    row = dict(conv_type=conv_type, algorithm=algorithm, spec=str(spec))
    why = supports(conv_type, algorithm, spec)
    if why:
        row["skipped"] = why
        return row
    row["bound"] = accuracy.bound(algorithm, conv_type, spec)
    x, weights = make_inputs(conv_type, spec, seed=seed)
    row.update(max_safe_peak(conv_type, algorithm, spec, x, weights, row["bound"]))

    xt = _scaled(x, TINY_X)
    wt = tuple(_scaled(w, TINY_W) for w in weights)
    y, ref = _run(conv_type, algorithm, spec, xt, wt)
    diff = float(np.abs(y - ref).max()) if np.isfinite(y).all() else math.inf
    peak = float(np.abs(ref).max())
    row["tiny_peak"] = peak
    row["tiny_rel_error"] = diff / peak if peak > 0 else math.inf
    row["tiny_sweep_error"] = diff / max(1.0, peak)

    nan = _spread(conv_type, algorithm, spec, x, weights, np.nan)
    inf = _spread(conv_type, algorithm, spec, x, weights, np.inf)
    row.update(nan_ref=nan["ref"], nan_outputs=nan["algo"], nan_spread=nan["ratio"],
               inf_ref=inf["ref"], inf_outputs=inf["algo"], inf_spread=inf["ratio"],
               inf_kept=inf["kept"], inf_to_nan=inf["nan"])
    return row


def fft_product_limit(spec) -> float:
    """The documented range of the fft on `spec`: every output is finite while
    c/g * r_h * r_w * max|x| * max|w| is at most this (see the module docstring)."""
    from .fft.plan import plan

    th, tw = plan(spec).tiles
    return float(np.finfo(np.float32).max) / (FFT_MARGIN * th * tw)
