"""The `direct` algorithm: sliding-window loop nests, one per shape family.

- small.py: tiny layers of every type (a serial loop: the call's fixed cost is all there is)
- dense.py: any grouped 1/2/3-D convolution with a full kernel (conv2d,
  conv3d, grouped, shuffled_grouped writing straight into the
  shuffled channel, and spatially_separable / flattened on their full kernel)
- dilated.py: dilated2d by space-to-batch, padded taps skipped
- depthwise.py: one filter per channel (NCHW planes, or channels in vector lanes)
- group_lanes.py: grouped 2-D layers of many small groups (ResNeXt), one group per vector
  lane, on lane_nest.py's nest (shared with depthwise's channels in lanes); dense.py
  picks it by group_lanes.takes_group_lanes
- fused.py: depthwise separable, depthwise and pointwise fused per band of rows;
  depthwise_separable.py times it against the two stages in turn and keeps the faster
- pointwise.py: 1x1, grouped or not
- transposed_choice.py: transposed conv, by shape: small.py's serial gather loop for
  tiny layers, subpixel.py (stride phases as one dense or pointwise convolution)
  or transposed.py (gather form, for dilation > 1)
- channels_last.py: the native channels-last (NHWC) forms of the dense, pointwise,
  depthwise and depthwise separable cells, on the same register blocks with no transpose
  (dilated.py has its own, `execute_dilated_nhwc`)
"""

from __future__ import annotations

import functools

from ..accuracy import Bound
from ..layout import NHWC
from ..registry import cell, declare_algorithm, native_layout
from ..types import conv_type as type_of
from ..types import full_kernel, select, shuffle_permutation
from .channels_last import (
    dense_nhwc_bytes,
    execute_dense_nhwc,
    execute_depthwise_nhwc,
    execute_pointwise_nhwc,
    execute_separable_nhwc,
    prepare_dense_nhwc,
    prepare_depthwise_nhwc,
    prepare_pointwise_nhwc,
    prepare_separable_nhwc,
)
from .dense import execute_dense, prepare_dense, takes_lanes
from .depthwise import execute_depthwise, prepare_depthwise
from .depthwise_separable import execute_separable, prepare_separable, prepare_separable_plan
from .dilated import execute_dilated, execute_dilated_nhwc, prepare_dilated
from .group_lanes import takes_group_lanes
from .pointwise import execute_pointwise, prepare_pointwise
from .small import small_or
from .transposed_choice import execute_direct_transposed, prepare_direct_transposed

# each output is one float32 sum of L products (see kernels.accuracy for the figures)
declare_algorithm("direct", summary="sliding-window loop nests in register blocks",
                  accuracy=Bound(scale=8, floor=2e-6))


def _direct_cell(conv_type, prepare, execute, kmap=None):
    """Register conv_type's direct cell: tiny layers take the serial loop (small.py) on the
    full kernel, the rest `prepare` and `execute`."""
    prepare_cell, execute_cell = small_or(
        prepare, execute, lambda spec, weights: full_kernel(conv_type, spec, weights), kmap)
    cell(conv_type, "direct", prepare=prepare_cell)(execute_cell)


@functools.lru_cache(maxsize=256)
def _shuffle_map(spec):
    """Cached (tiny layers ask on every call); no kernel writes it."""
    return shuffle_permutation(spec.k, spec.groups)


def _dense_cell(conv_type):
    kmap = _shuffle_map if type_of(conv_type).shuffle else None

    def prepare(spec, weights):
        return prepare_dense(spec, full_kernel(conv_type, spec, weights),
                             kmap=kmap(spec) if kmap else None)

    _direct_cell(conv_type, prepare, execute_dense, kmap)

    def prepare_nhwc(spec, weights):
        return prepare_dense_nhwc(spec, full_kernel(conv_type, spec, weights),
                                  kmap=kmap(spec) if kmap else None)

    # NCHW's lane nests count no padded copy of the input; channels-last packs one
    native_layout(conv_type, "direct", NHWC, prepare=prepare_nhwc, extra_bytes=lambda spec: (
        dense_nhwc_bytes(spec) if takes_lanes(spec) or takes_group_lanes(spec) else 0))(
        execute_dense_nhwc)


# every single-kernel type of any dimensionality, grouped or not, shuffled or not
for _t in select(transposed=False, composition=("dense", "product"), kernel="any",
                 grouping=("one", "many", "any")):
    if _t != "dilated2d":  # runs by space-to-batch (dilated.py)
        _dense_cell(_t)

_direct_cell("dilated2d", lambda spec, weights: prepare_dilated(spec, weights[0]),
             execute_dilated)
native_layout("dilated2d", "direct", NHWC,
              prepare=lambda spec, weights: prepare_dilated(spec, weights[0]))(
    execute_dilated_nhwc)

for _t in select(transposed=False, composition="dense", kernel="any", grouping="depthwise"):
    _direct_cell(_t, lambda spec, weights: prepare_depthwise(spec, weights[0]), execute_depthwise)
    native_layout(_t, "direct", NHWC, prepare=prepare_depthwise_nhwc)(execute_depthwise_nhwc)

for _t in select(transposed=False, kernel="1x1", shuffle=False):
    _direct_cell(_t, lambda spec, weights: prepare_pointwise(spec, weights[0]), execute_pointwise)
    native_layout(_t, "direct", NHWC, prepare=prepare_pointwise_nhwc)(execute_pointwise_nhwc)

for _t in select(transposed=True, ndim=2):
    cell(_t, "direct", prepare=lambda spec, weights: prepare_direct_transposed(spec, weights[0]))(
        execute_direct_transposed)


# fused (the depthwise output of a band stays in cache for the pointwise GEMM) or the two
# stages in turn, whichever measures faster on this machine
cell("depthwise_separable", "direct", prepare=prepare_separable,
     prepare_for_plan=prepare_separable_plan)(execute_separable)
native_layout("depthwise_separable", "direct", NHWC, prepare=prepare_separable_nhwc)(
    execute_separable_nhwc)
