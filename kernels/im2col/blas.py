"""sgemm with leading dimensions, callable from @njit code, and control of BLAS threads.

Why not `np.dot`: it only takes whole contiguous 2-D operands, so a GEMM
result could not land straight in a strided slice of the NCHW output (a
tile of output pixels, every g-th channel for the shuffle) nor accumulate
(beta = 1); every tile would cost an extra copy pass. Numba's own `np.dot`
calls this very function (scipy.linalg.cython_blas.sgemm), so the BLAS
library, and its thread pool, are the same ones.

Row-major operands are passed as their column-major transposes:
C[M, N] = A[M, K] @ B[K, N] is sgemm(N, M, K) on (B, A) with C's row
stride as ldc.
"""

from __future__ import annotations

import os

import llvmlite.binding as llvm
import numpy as np
from numba import njit, types
from numba.extending import get_cython_function_address

from ..blocks import JIT

# Bound as a named external symbol rather than a ctypes function pointer: a pointer is a
# "dynamic global" that stops Numba from caching every function that calls it.
llvm.add_symbol("convbench_im2col_sgemm",
                get_cython_function_address("scipy.linalg.cython_blas", "sgemm"))
_sgemm = types.ExternalFunction("convbench_im2col_sgemm", types.void(*([types.voidptr] * 13)))

_N = ord("N")
_T = ord("T")


@njit(**JIT)
def gemm(m, n, k, a, lda, trans_a, b, ldb, c, ldc, beta):
    """c[m, n] = a[m, k] @ b[k, n] + beta * c (row-major; a transposed if trans_a).

    a, b and c are 1-D views that start at the first element of each operand;
    lda/ldb/ldc are row strides in elements. With trans_a, a is stored [k, m].
    """
    if m == 0 or n == 0:
        return
    ints = np.empty(6, np.int32)
    ints[0] = n
    ints[1] = m
    ints[2] = k
    ints[3] = ldb
    ints[4] = lda
    ints[5] = ldc
    flt = np.empty(2, np.float32)
    flt[0] = 1.0
    flt[1] = beta
    chars = np.empty(2, np.uint8)
    chars[0] = _N
    chars[1] = _T if trans_a else _N
    _sgemm(chars[0:].ctypes, chars[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes,
           ints[2:].ctypes, flt[0:].ctypes, b.ctypes, ints[3:].ctypes, a.ctypes,
           ints[4:].ctypes, flt[1:].ctypes, c.ctypes, ints[5:].ctypes)


_controller = None


def _blas_controller():
    """threadpoolctl's handle on the OpenBLAS that cython_blas (and so `gemm`) uses."""
    global _controller
    if _controller is None:
        import scipy.linalg.cython_blas  # noqa: F401  make sure it is loaded
        from threadpoolctl import ThreadpoolController

        libs = ThreadpoolController().select(user_api="blas").lib_controllers
        scipy_libs = [lib for lib in libs if "scipy.libs" in lib.filepath
                      or "scipy" in os.path.basename(os.path.dirname(lib.filepath))]
        _controller = scipy_libs or libs
    return _controller


def set_blas_threads(n: int) -> None:
    """Threads OpenBLAS uses for each call (direct C call: microseconds, unlike a
    threadpool_limits context, which rescans the loaded libraries every time)."""
    for lib in _blas_controller():
        if lib.num_threads != n:
            lib.set_num_threads(n)


class single_threaded_blas:
    """Run a block with OpenBLAS on one thread, restoring the previous count after.

    Why: the im2col kernels call the GEMM from inside `prange` bodies, one call
    per Numba thread; a multi-threaded BLAS there would put 2 x 2 busy threads on
    2 cores. The other arrangement, a parallel unfold on Numba's threads and then
    one 2-thread GEMM per tile, measured 5-25x slower on ResNet-50's 3x3 layers
    (6-29 against 75-166 GFLOP/s): Numba's OpenMP workers spin-wait after each
    parallel region and take the cores from OpenBLAS's threads, and the GEMM
    reads a tile that another core wrote. One item per thread, unfold then GEMM
    on the same core, keeps every core busy with no hand-off.
    """

    def __enter__(self):
        self._saved = [lib.num_threads for lib in _blas_controller()]
        set_blas_threads(1)
        return self

    def __exit__(self, *exc):
        for lib, n in zip(_blas_controller(), self._saved):
            if lib.num_threads != n:
                lib.set_num_threads(n)
        return False
