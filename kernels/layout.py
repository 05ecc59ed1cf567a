"""Memory layouts of a problem's input and output: NCHW (the default) and channels-last.

- "nchw": x[n, c, *size] and y[n, k, *out_size] (NCDHW for 3-D);
- "nhwc": x[n, *size, c] and y[n, *out_size, k] (NDHWC for 3-D), as oneDNN's `nhwc`
  tag, XNNPACK and PyTorch's channels_last (whose weights keep their OIHW shapes: so do
  ours, in both layouts).

The layout is an axis of every problem, as in benchdnn (`--stag`/`--dtag`): a cell runs
either layout. One that runs channels-last natively registers that form
(`kernels.registry.native_layout`); the others run it through `to_nchw` and `to_nhwc`
around their NCHW form, whose extra buffers `transpose_bytes` counts for the memory guard.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .spec import ConvSpec

NCHW, NHWC = "nchw", "nhwc"
LAYOUTS: tuple[str, ...] = (NCHW, NHWC)
DEFAULT_LAYOUT = NCHW
F32 = 4


def check_layout(layout) -> str:
    """`layout` if it is one of LAYOUTS, else ValueError naming them."""
    if layout not in LAYOUTS:  # a tuple of str: any unhashable value is simply not in it
        raise ValueError(f"layout: must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    return layout


@functools.lru_cache(maxsize=4096)
def _channels_last(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[0], *shape[2:], shape[1])


def input_shape(spec: ConvSpec, layout: str = NCHW) -> tuple[int, ...]:
    """x's shape in `layout`: (n, c, *size) or (n, *size, c)."""
    return spec.input_shape if layout == NCHW else _channels_last(spec.input_shape)


def output_shape(spec: ConvSpec, layout: str = NCHW) -> tuple[int, ...]:
    """y's shape in `layout`: (n, k, *out_size) or (n, *out_size, k)."""
    return spec.output_shape if layout == NCHW else _channels_last(spec.output_shape)


def to_nchw(a: np.ndarray) -> np.ndarray:
    """(n, *size, c) -> a C-contiguous (n, c, *size) copy."""
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


def to_nhwc(a: np.ndarray) -> np.ndarray:
    """(n, c, *size) -> a C-contiguous (n, *size, c) copy (the dtype kept)."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def convert(a: np.ndarray, source: str, target: str) -> np.ndarray:
    """`a` (an input or output array in layout `source`) in layout `target`."""
    check_layout(source)
    check_layout(target)
    if source == target:
        return a
    return to_nhwc(a) if target == NHWC else to_nchw(a)


def transpose_bytes(spec: ConvSpec) -> int:
    """What running channels-last through an NCHW form adds: the NCHW copy of the input and
    the NCHW output that is then transposed (both float32)."""
    return F32 * spec.n * (spec.c * math.prod(spec.size) + spec.k * math.prod(spec.out_size))
