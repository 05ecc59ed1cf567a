"""The `fft` algorithm: FFT convolution of tiles as a real bilinear algorithm.

- matrices.py: the real-DFT (A^T, G, B^T) of a tile of t inputs and r taps, generated
  from roots of unity, with Gauss's 3-multiplication complex product
- plan.py: the tile size per axis (8 or 16) and the polyphase split of strides
- cells.py: the cells on the shared tiled pipeline (kernels/tiled), supports() and counts

Cells register themselves on import.
"""

from ..accuracy import Bound
from ..registry import declare_algorithm

# scale: the worst error measured by `python -m harness.checks.accuracy` (channels 16 to 512,
# kernels 3 to 11) is under a tenth of the bound at every reduction length
declare_algorithm("fft", summary="FFT convolution of 8x8 / 16x16 tiles (real DFT, 3-product "
                  "complex multiply) on the shared tiled pipeline",
                  accuracy=Bound(scale=8.0, floor=1e-5))

from . import cells  # noqa: E402,F401  (registers the cells)  isort: skip
from .cells import elementwise_multiplications, transform_multiplications  # noqa: E402
from .matrices import float_matrices, rfft_bilinear  # noqa: E402

__all__ = ["elementwise_multiplications", "float_matrices", "rfft_bilinear",
           "transform_multiplications"]
