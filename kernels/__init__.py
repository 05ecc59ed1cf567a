"""convbench kernels: every convolution type of deep learning as Numba CPU kernels.

Public API (see DESIGN.md): ConvSpec, CONV_TYPES, ALGORITHMS, make_inputs,
reference, supports, run, multiplications; memory_estimate, memory_limit,
set_memory_limit (the memory guard, see kernels.memory).
"""

from . import target  # noqa: F401  first: decides what Numba compiles for  isort: skip
from .memory import estimate as memory_estimate
from .memory import memory_limit, set_memory_limit
from .reference import reference
from .registry import ALGORITHMS, cell_reason, multiplications, run, supports
from .spec import ConvSpec
from .types import CATALOGUE, CONV_TYPES, make_inputs

# Algorithm modules register their cells on import.
from . import direct, fft, im2col, separable, winograd  # noqa: E402,F401  isort: skip

__all__ = [
    "ALGORITHMS", "CATALOGUE", "CONV_TYPES", "ConvSpec", "cell_reason", "make_inputs",
    "memory_estimate", "memory_limit", "multiplications", "reference", "run", "set_memory_limit",
    "supports",
]
