"""The `im2col` algorithm family: unfold (im2col / vol2col) into tiles, then GEMM.

- dense.py: every type with one dense grouped kernel (conv2d, conv3d, dilated2d,
  grouped, shuffled_grouped writing straight into the shuffled channels,
  spatially_separable and flattened on their full kernel), and the 1x1 types as
  a bare GEMM on the NCHW planes
- depthwise.py: per-channel unfold and batched product; depthwise_separable
  with the pointwise GEMM fused onto each depthwise tile
- transposed.py: GEMM, then col2im scatter-add
- plan.py: the workspace budget (`set_workspace_budget`) and tiling
- blas.py: sgemm with leading dimensions from @njit code, BLAS thread control
- channels_last.py: the 1x1 case on channels-last (NHWC) input, one plain GEMM

`workspace_bytes(conv_type, spec)` is the scratch memory one call allocates
besides its input, weights and output.
"""

from __future__ import annotations

from ..accuracy import Bound
from ..layout import NHWC
from ..registry import cell, declare_algorithm, native_layout
from ..spec import ConvSpec
from ..types import check_spec, full_kernel, select
from ..types import conv_type as type_of
from .channels_last import execute_pointwise_nhwc, prepare_pointwise_nhwc, takes_nhwc
from .dense import dense_tiling, execute_dense, prepare_dense
from .depthwise import (
    depthwise_tiling,
    execute_depthwise,
    execute_depthwise_separable,
    prepare_depthwise,
    prepare_depthwise_separable,
    separable_tiling,
)
from .plan import DEFAULT_BUDGET, set_workspace_budget, workspace_budget
from .transposed import execute_transposed, prepare_transposed, transposed_tiling

# each output is one sgemm dot product of length L (see kernels.accuracy for the figures)
declare_algorithm("im2col", summary="unfold into tiles, then sgemm",
                  accuracy=Bound(scale=8, floor=2e-6))

__all__ = ["DEFAULT_BUDGET", "set_workspace_budget", "workspace_budget", "workspace_bytes"]


def workspace_bytes(conv_type: str, spec: ConvSpec) -> int:
    """Bytes of scratch (unfolded tiles, GEMM results) one im2col call allocates."""
    check_spec(conv_type, spec)
    t = type_of(conv_type)
    if t.transposed:
        _, _, slots, elems = transposed_tiling(spec)
        return 4 * slots * elems
    if t.composition == "stages":
        return separable_tiling(spec).nbytes
    if t.grouping == "depthwise":
        return depthwise_tiling(spec).nbytes
    return dense_tiling(spec)[1]


def _dense_cell(conv_type):
    shuffle = type_of(conv_type).shuffle

    def prepare(spec, weights):
        return prepare_dense(spec, full_kernel(conv_type, spec, weights))

    @cell(conv_type, "im2col", prepare=prepare)
    def execute(spec, x, wm):
        return execute_dense(spec, x, wm, shuffle=shuffle)

    if not shuffle:  # a shuffled group's output channels are no run of y's rows
        native_layout(conv_type, "im2col", NHWC, takes=takes_nhwc,
                      prepare=lambda spec, weights: prepare_pointwise_nhwc(
                          spec, full_kernel(conv_type, spec, weights)))(execute_pointwise_nhwc)


# every single-kernel type (1x1 ones as a bare GEMM), grouped or not, shuffled or not
for _t in select(transposed=False, composition=("dense", "product"),
                 grouping=("one", "many", "any")):
    _dense_cell(_t)

for _t in select(transposed=False, composition="dense", grouping="depthwise"):
    cell(_t, "im2col", prepare=lambda spec, weights: prepare_depthwise(spec, weights[0]))(
        execute_depthwise)

for _t in select(transposed=True, ndim=2):
    cell(_t, "im2col", prepare=lambda spec, weights: prepare_transposed(spec, weights[0]))(
        execute_transposed)

cell("depthwise_separable", "im2col",
     prepare=lambda spec, weights: prepare_depthwise_separable(spec, *weights))(
    execute_depthwise_separable)
