"""Where Numba keeps the compiled kernels: a directory keyed by the kernels' sources.

Numba's on-disk cache checks only the file that defines a kernel: a kernel that calls
(and inlines) a function from another module keeps its old machine code after that
module is edited (numba/numba#1833; Numba's docs list it as a limitation), so tests
and benchmarks silently run stale code. Keying the cache directory by a hash of every
source file of this package makes an edit anywhere here a fresh cache (a full
recompile, minutes) instead of a stale one. The ISA is already part of Numba's own
key (CPU name and features), so `CONVBENCH_ISA` needs nothing here.

The directory is ``$NUMBA_CACHE_DIR/<key>`` when that variable is set, else
``kernels/__pycache__/numba/<key>``; `make clean` removes the old keys. This module
must be imported before any kernel module is (kernels/__init__.py does).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba

PACKAGE = Path(__file__).resolve().parent


def source_key() -> str:
    """A hash of the relative path and bytes of every .py file of the package."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    root = os.environ.get("NUMBA_CACHE_DIR") or PACKAGE / "__pycache__" / "numba"
    return Path(root) / source_key()


# Numba reads config.CACHE_DIR when each cached function is decorated
numba.config.CACHE_DIR = str(cache_dir())
