"""The `direct` algorithm: sliding-window loop nests, one per shape family.

- dense.py: any grouped 1/2/3-D convolution with a full kernel (conv2d,
  conv3d, dilated2d, grouped, shuffled_grouped writing straight into the
  shuffled channel, and spatially_separable / flattened on their full kernel)
- depthwise.py: one filter per channel
- pointwise.py: 1x1, grouped or not
- transposed_choice.py: transposed conv, by shape: transposed_small.py (a serial loop
  for tiny layers), subpixel.py (stride phases as one dense or pointwise convolution)
  or transposed.py (gather form, for dilation > 1)
"""

from __future__ import annotations

from ..accuracy import Bound
from ..registry import cell, declare_algorithm
from ..types import conv_type as type_of
from ..types import full_kernel, select, separable_stages, shuffle_permutation
from .dense import execute_dense, prepare_dense
from .depthwise import execute_depthwise, prepare_depthwise
from .pointwise import execute_pointwise, prepare_pointwise
from .transposed_choice import execute_direct_transposed, prepare_direct_transposed

# each output is one float32 sum of L products (see kernels.accuracy for the figures)
declare_algorithm("direct", summary="sliding-window loop nests in register blocks",
                  accuracy=Bound(scale=8, floor=2e-6))


def _dense_cell(conv_type):
    shuffle = type_of(conv_type).shuffle

    def prepare(spec, weights):
        return prepare_dense(spec, full_kernel(conv_type, spec, weights),
                             kmap=shuffle_permutation(spec.k, spec.groups) if shuffle else None)

    cell(conv_type, "direct", prepare=prepare)(execute_dense)


# every single-kernel type of any dimensionality, grouped or not, shuffled or not
for _t in select(transposed=False, composition=("dense", "product"), kernel="any",
                 grouping=("one", "many", "any")):
    _dense_cell(_t)

for _t in select(transposed=False, composition="dense", kernel="any", grouping="depthwise"):
    cell(_t, "direct", prepare=lambda spec, weights: prepare_depthwise(spec, weights[0]))(
        execute_depthwise)

for _t in select(transposed=False, kernel="1x1", shuffle=False):
    cell(_t, "direct", prepare=lambda spec, weights: prepare_pointwise(spec, weights[0]))(
        execute_pointwise)

for _t in select(transposed=True, ndim=2):
    cell(_t, "direct", prepare=lambda spec, weights: prepare_direct_transposed(spec, weights[0]))(
        execute_direct_transposed)


def _prepare_depthwise_separable(spec, weights):
    dw, pw = weights
    dw_spec, pw_spec = separable_stages(spec)
    return prepare_depthwise(dw_spec, dw), prepare_pointwise(pw_spec, pw)


@cell("depthwise_separable", "direct", prepare=_prepare_depthwise_separable)
def _depthwise_separable(spec, x, state):
    dw, pw = state
    dw_spec, pw_spec = separable_stages(spec)
    return execute_pointwise(pw_spec, execute_depthwise(dw_spec, x, dw), pw)
