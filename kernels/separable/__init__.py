"""The `separable` algorithm: spatial kernels as sums of rank-1 terms, run as 1-D passes.

- factor.py: SVD split, numerical rank and `rank_error` (how separable a kernel is)
- engine.py: the Numba vertical/horizontal (and conv3d depth) passes of the rank-1 terms
- tucker.py: a grouped kernel as a separable filter bank per input channel plus a
  channel mix (per-channel Tucker decomposition, exact at full rank)
- bank.py: that bank as 1-D passes, then the mix as the direct 1x1 GEMM (the path of
  wide dense 2-D layers and conv3d)
- counts.py: multiplications of the passes (and the bank), as the seed counts them
- cells.py: one cell per type with spatial extent (registers on import); picks the
  path that counts fewer multiplications
"""

from __future__ import annotations

from ..accuracy import Bound
from ..registry import declare_algorithm
from .factor import RANK_RTOL, numerical_rank, rank1_terms, rank_error, rank_tolerance

# float32 1-D passes over the SVD terms; terms below float32 rounding are dropped
declare_algorithm("separable", summary="SVD into rank-1 terms, run as 1-D passes",
                  accuracy=Bound(scale=8, floor=2e-6))

# importing cells registers them, so after the declaration
from .cells import separable_multiplications  # noqa: E402  isort: skip

__all__ = ["RANK_RTOL", "numerical_rank", "rank1_terms", "rank_error", "rank_tolerance",
           "separable_multiplications"]
