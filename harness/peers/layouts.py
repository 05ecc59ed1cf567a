"""The two layout contracts a peer is timed in, and the reorders between them.

`nchw`: x is (n, c, *size) and y (n, k, *out_size); `nhwc` (channels-last: NHWC, NDHWC
for 3-D): x is (n, *size, c) and y (n, *out_size, k). Both C-contiguous float32; the
weights keep their documented shapes in both. A peer whose native layout differs from
the contract reorders inside its timed call, as its own user would have to.
"""

from __future__ import annotations

import numpy as np

LAYOUTS = ("nchw", "nhwc")
DEFAULT_LAYOUT = "nchw"  # a benchmark without a layout is NCHW


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
    return layout


def to_channels_last(a: np.ndarray) -> np.ndarray:
    """(n, c, *size) -> (n, *size, c), C-contiguous (a copy)."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def to_channels_first(a: np.ndarray) -> np.ndarray:
    """(n, *size, c) -> (n, c, *size), C-contiguous (a copy)."""
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


def in_layout(a: np.ndarray, layout: str) -> np.ndarray:
    """An NCHW array in `layout` (for tests and verification)."""
    return to_channels_last(a) if check_layout(layout) == "nhwc" else np.ascontiguousarray(a)


def to_first_perm(ndim: int) -> list[int]:
    """The axes permutation NHWC -> NCHW for an array of `ndim` dimensions."""
    return [0, ndim - 1, *range(1, ndim - 1)]


def to_last_perm(ndim: int) -> list[int]:
    """The axes permutation NCHW -> NHWC for an array of `ndim` dimensions."""
    return [0, *range(2, ndim), 1]


def shape_in(shape, layout: str) -> list[int]:
    """An NCHW shape in `layout`."""
    shape = list(shape)
    return [shape[i] for i in to_last_perm(len(shape))] if layout == "nhwc" else shape
