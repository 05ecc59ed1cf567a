"""The `separable` algorithm: spatial kernels as sums of rank-1 terms, run as 1-D passes.

- factor.py: SVD split, numerical rank and `rank_error` (how separable a kernel is)
- engine.py: the Numba vertical/horizontal (and conv3d depth) passes
- counts.py: multiplications of the passes, as the seed counts them
- cells.py: one cell per type with spatial extent (registers on import)
"""

from __future__ import annotations

from . import cells  # noqa: F401  (registers the cells)
from .cells import separable_multiplications
from .factor import RANK_RTOL, numerical_rank, rank1_terms, rank_error, rank_tolerance

__all__ = ["RANK_RTOL", "numerical_rank", "rank1_terms", "rank_error", "rank_tolerance",
           "separable_multiplications"]
