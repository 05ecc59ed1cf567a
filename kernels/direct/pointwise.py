"""Direct 1x1 (pointwise, optionally grouped) convolution: a channel-mixing GEMM.

y[n, k, p] = sum_c w[k, c] x[n, c, p] over the flattened (stride-subsampled)
pixels p, per group, on `dense.conv_lanes`: pixels in the vector lanes, six
output channels at a time broadcast straight from the caller's weights,
unpacked (in call mode packing them would cost as much as the GEMM on a 7x7
image). At stride 1 the image is passed as one row of P pixels, so a panel
is one run of each channel. Small images (49 pixels, 2048 channels) split
over output channels, large ones over pixel panels (`dense.lane_split`).
"""

from __future__ import annotations

import math

import numpy as np

from ..blocks import new_output
from ..spec import ConvSpec
from .dense import LaneWeights, as_3d, lane_weights, run_lanes


def prepare_pointwise(spec: ConvSpec, w: np.ndarray,
                      kmap: np.ndarray | None = None) -> LaneWeights:
    """Keep the 1x1 kernel w[k, c/g, 1, ...] as (k, c/g) rows: the GEMM reads them as they are."""
    return lane_weights(w, kmap, spec.k)


def execute_pointwise(spec: ConvSpec, x: np.ndarray, packed: LaneWeights) -> np.ndarray:
    nd = spec.ndim
    stride = (1,) * (3 - nd) + spec.stride
    P = math.prod(spec.out_size)
    y = new_output(spec.output_shape)
    if all(s == 1 for s in stride):  # one row of P pixels: every panel is one run
        x5, out_size = x.reshape(spec.n, spec.c, 1, 1, P), (1, 1, P)
    else:
        x5, out_size = as_3d(x, nd), (1,) * (3 - nd) + spec.out_size
    run_lanes(x5, packed.w, y.reshape(spec.n, spec.k, P), packed.kmap, spec.groups, out_size,
              (0, 0, 0), stride, (1, 1, 1), (1, 1, 1))
    return y


def run_pointwise(spec: ConvSpec, x: np.ndarray, w: np.ndarray,
                  kmap: np.ndarray | None = None) -> np.ndarray:
    return execute_pointwise(spec, x, prepare_pointwise(spec, w, kmap))
