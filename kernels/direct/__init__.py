"""The `direct` algorithm: sliding-window loop nests, one per shape family.

- dense.py: any grouped 1/2/3-D convolution with a full kernel (conv2d,
  conv3d, dilated2d, grouped, shuffled_grouped writing straight into the
  shuffled channel, and spatially_separable / flattened on their full kernel)
- depthwise.py: one filter per channel
- pointwise.py: 1x1, grouped or not
- transposed.py: transposed conv in gather form
"""

from __future__ import annotations

import numpy as np

from ..accuracy import Bound
from ..registry import cell, declare_algorithm
from ..types import full_kernel, separable_stages, shuffle_permutation
from .dense import run_dense
from .depthwise import run_depthwise
from .pointwise import run_pointwise
from .transposed import run_transposed

# each output is one float32 sum of L products (see kernels.accuracy for the figures)
declare_algorithm("direct", summary="sliding-window loop nests in register blocks",
                  accuracy=Bound(scale=8, floor=2e-6))


def _dense_cell(conv_type):
    @cell(conv_type, "direct")
    def run(spec, x, weights):
        return run_dense(spec, x, np.ascontiguousarray(full_kernel(conv_type, spec, weights)))


for _t in ("conv2d", "conv3d", "dilated2d", "grouped", "spatially_separable", "flattened"):
    _dense_cell(_t)


@cell("shuffled_grouped", "direct")
def _shuffled(spec, x, weights):
    return run_dense(spec, x, weights[0], kmap=shuffle_permutation(spec.k, spec.groups))


@cell("depthwise", "direct")
def _depthwise(spec, x, weights):
    return run_depthwise(spec, x, weights[0])


@cell("pointwise", "direct")
@cell("pointwise_grouped", "direct")
def _pointwise(spec, x, weights):
    return run_pointwise(spec, x, weights[0])


@cell("transposed2d", "direct")
def _transposed(spec, x, weights):
    return run_transposed(spec, x, weights[0])


@cell("depthwise_separable", "direct")
def _depthwise_separable(spec, x, weights):
    dw, pw = weights
    dw_spec, pw_spec = separable_stages(spec)
    return run_pointwise(pw_spec, run_depthwise(dw_spec, x, dw), pw)
