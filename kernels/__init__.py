"""convbench kernels: every convolution type of deep learning as Numba CPU kernels.

Public API (see DESIGN.md): ConvSpec, CONV_TYPES, ALGORITHMS, LAYOUTS, make_inputs,
reference, supports, run, multiplications (every entry taking `layout="nchw"` or
"nhwc", see kernels.layout); plan (the weight-only work done once,
then `plan(x)`: see kernels.registry); memory_estimate, memory_limit,
set_memory_limit (the memory guard, see kernels.memory).
"""

import importlib

from . import target  # noqa: F401  first: decides what Numba compiles for  isort: skip
from . import compile_cache  # noqa: F401  before any kernel module  isort: skip
from . import registry
from .layout import LAYOUTS
from .memory import memory_limit, set_memory_limit
from .reference import reference
from .registry import cell_reason, memory_estimate, multiplications, plan, run, supports
from .spec import ConvSpec
from .types import CATALOGUE, CONV_TYPES, make_inputs

# The algorithm packages, in the order ALGORITHMS lists them: each declares its
# algorithm(s) (kernels.registry.declare_algorithm) and registers its cells on import.
# Adding an algorithm is adding its package here (before auto, which chooses among
# the algorithms declared before it).
ALGORITHM_PACKAGES = ("direct", "im2col", "winograd", "separable", "fft", "auto")


for _package in ALGORITHM_PACKAGES:
    importlib.import_module(f"{__name__}.{_package}")
registry.order_algorithms(ALGORITHM_PACKAGES, __name__)

from .registry import ALGORITHMS  # noqa: E402  (complete only now)

__all__ = [
    "ALGORITHMS", "CATALOGUE", "CONV_TYPES", "ConvSpec", "LAYOUTS", "cell_reason",
    "make_inputs",
    "memory_estimate", "memory_limit", "multiplications", "plan", "reference", "run",
    "set_memory_limit",
    "supports",
]
