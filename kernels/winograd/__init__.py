"""The `winograd` algorithm family: Winograd minimal filtering F(2x2,3x3) and F(4x4,3x3).

- matrices.py: Cook–Toom transform matrices, generated in exact rationals
- the outer-product GEMM register block it uses is kernels/outer_block.py (shared)
- conv2d.py: every grouped 3x3 stride-1 conv (dilation as sub-grids) and depthwise on the
  shared tiled pipeline (kernels/tiled)
- conv3d.py: F(m_d,3) along depth nested around the grouped 2-D pipeline (Numba)
- cells.py: the cells, their supports() reasons and the Lavin–Gray counts

Cells register themselves on import.
"""

from ..registry import declare_algorithm
from .accuracy import BOUNDS

declare_algorithm("winograd_f2", summary="Winograd F(2x2,3x3) on the shared tiled pipeline",
                  accuracy=BOUNDS["winograd_f2"])
declare_algorithm("winograd_f4", summary="Winograd F(4x4,3x3) on the shared tiled pipeline",
                  accuracy=BOUNDS["winograd_f4"])

from . import cells  # noqa: E402,F401  (registers the cells)  isort: skip
from .cells import (  # noqa: E402
    elementwise_multiplications,
    tile_count,
    transform_multiplications,
)
from .matrices import cook_toom, float_matrices  # noqa: E402

__all__ = ["BOUNDS", "cook_toom", "elementwise_multiplications", "float_matrices",
           "tile_count", "transform_multiplications"]
