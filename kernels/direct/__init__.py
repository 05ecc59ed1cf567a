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
from ..types import conv_type as type_of
from ..types import full_kernel, select, separable_stages, shuffle_permutation
from .dense import run_dense
from .depthwise import run_depthwise
from .pointwise import run_pointwise
from .transposed import run_transposed

# each output is one float32 sum of L products (see kernels.accuracy for the figures)
declare_algorithm("direct", summary="sliding-window loop nests in register blocks",
                  accuracy=Bound(scale=8, floor=2e-6))


def _dense_cell(conv_type):
    shuffle = type_of(conv_type).shuffle

    @cell(conv_type, "direct")
    def run(spec, x, weights):
        w = np.ascontiguousarray(full_kernel(conv_type, spec, weights))
        return run_dense(spec, x, w, kmap=shuffle_permutation(spec.k, spec.groups)
                         if shuffle else None)


# every single-kernel type of any dimensionality, grouped or not, shuffled or not
for _t in select(transposed=False, composition=("dense", "product"), kernel="any",
                 grouping=("one", "many", "any")):
    _dense_cell(_t)

for _t in select(transposed=False, composition="dense", kernel="any", grouping="depthwise"):
    cell(_t, "direct")(lambda spec, x, weights: run_depthwise(spec, x, weights[0]))

for _t in select(transposed=False, kernel="1x1", shuffle=False):
    cell(_t, "direct")(lambda spec, x, weights: run_pointwise(spec, x, weights[0]))

for _t in select(transposed=True, ndim=2):
    cell(_t, "direct")(lambda spec, x, weights: run_transposed(spec, x, weights[0]))


@cell("depthwise_separable", "direct")
def _depthwise_separable(spec, x, weights):
    dw, pw = weights
    dw_spec, pw_spec = separable_stages(spec)
    return run_pointwise(pw_spec, run_depthwise(dw_spec, x, dw), pw)
