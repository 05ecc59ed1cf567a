"""The `fft` algorithm: FFT convolution of tiles as a real bilinear algorithm.

- matrices.py: the real-DFT (A^T, G, B^T) of a tile of t inputs and r taps, generated
  from roots of unity, with Gauss's 3-multiplication complex product
- plan.py: the tile size per axis (8 or 16) and the polyphase split of strides
- codelets.py: B^T, A^T and G as generated straight-line real-FFT codelets (LLVM vector IR)
  that the shared pipeline runs for fft's matrices (`ftile` = codelets.FTILE)
- cells.py: the cells on the shared tiled pipeline (kernels/tiled), supports() and counts

Cells register themselves on import.
"""

from ..accuracy import Bound
from ..registry import declare_algorithm

# `python -m kernels.accuracy_table --sweeps` (channels 16 to 512, kernels 3 to 11, 16x16)
# measured at most 0.22 EPS32 sqrt(L) (most rows 0.03-0.1: fft is as accurate as direct, its
# matrices' entries are cos and sin), and 2e-7 to 8e-7 absolute; the scale and the floor
# (for tiny reductions, where the transforms' rounding dominates) keep 10x over both.
declare_algorithm("fft", summary="FFT convolution of 8x8 / 16x16 tiles (real DFT, 3-product "
                  "complex multiply) on the shared tiled pipeline",
                  accuracy=Bound(scale=2.5, floor=8e-6))

from . import cells  # noqa: E402,F401  (registers the cells)  isort: skip
from .cells import elementwise_multiplications, transform_multiplications  # noqa: E402
from .matrices import float_matrices, rfft_bilinear  # noqa: E402

__all__ = ["elementwise_multiplications", "float_matrices", "rfft_bilinear",
           "transform_multiplications"]
