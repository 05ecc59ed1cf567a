"""Shared Numba building blocks: the KB x 6 dot-product register block and layout packing.

Why a dot-product block: with the reduction (taps x channels) contiguous in
memory, LLVM vectorises `for t in range(n)` with one vector accumulator per
(output channel, output pixel): 4 x 6 = 24 accumulators and 10 loads per 24
FMAs where the ISA has 32 vector registers (AVX-512, NEON), 2 x 6 = 12 where
it has 16 (AVX2, SSE), so that the block does not spill. KB comes from
`kernels.target.TARGET`; callers pick the block with `if KB == 4` (a compile-time
constant), which measured faster than a shared wrapper function, even an inlined one.

Why slices: indexing `b[a0 + t]` makes Numba emit a negative-index
wraparound select that LLVM turns into gathers (10x slower); slicing first
and indexing with the loop counter `t`, which LLVM knows is non-negative,
gives plain vector loads.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from .target import TARGET

JIT = dict(fastmath=True, cache=True, error_model="numpy")
PAR = dict(JIT, parallel=True)

KB = TARGET.dot_channels  # output channels per dot register block (4 or 2)
PB = TARGET.dot_pixels  # output pixels per register block (6)
assert (KB, PB) in ((4, 6), (2, 6)), "dot blocks exist as 4x6 and 2x6"


@njit(**JIT)
def dot_4x6(b, a0, a1, a2, a3, a4, a5, w, w0, w1, w2, w3, n):
    """24 dot products of length n: pixels b[a_i:a_i+n] against weights w[w_j:w_j+n]."""
    x0 = b[a0:a0 + n]
    x1 = b[a1:a1 + n]
    x2 = b[a2:a2 + n]
    x3 = b[a3:a3 + n]
    x4 = b[a4:a4 + n]
    x5 = b[a5:a5 + n]
    v0 = w[w0:w0 + n]
    v1 = w[w1:w1 + n]
    v2 = w[w2:w2 + n]
    v3 = w[w3:w3 + n]
    z = np.float32(0)
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = s20 = s21 = s22 = s23 = z
    s30 = s31 = s32 = s33 = s40 = s41 = s42 = s43 = s50 = s51 = s52 = s53 = z
    for t in range(n):
        q0 = v0[t]
        q1 = v1[t]
        q2 = v2[t]
        q3 = v3[t]
        x = x0[t]
        s00 += x * q0
        s01 += x * q1
        s02 += x * q2
        s03 += x * q3
        x = x1[t]
        s10 += x * q0
        s11 += x * q1
        s12 += x * q2
        s13 += x * q3
        x = x2[t]
        s20 += x * q0
        s21 += x * q1
        s22 += x * q2
        s23 += x * q3
        x = x3[t]
        s30 += x * q0
        s31 += x * q1
        s32 += x * q2
        s33 += x * q3
        x = x4[t]
        s40 += x * q0
        s41 += x * q1
        s42 += x * q2
        s43 += x * q3
        x = x5[t]
        s50 += x * q0
        s51 += x * q1
        s52 += x * q2
        s53 += x * q3
    return (s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23,
            s30, s31, s32, s33, s40, s41, s42, s43, s50, s51, s52, s53)


@njit(**JIT)
def dot_2x6(b, a0, a1, a2, a3, a4, a5, w, w0, w1, n):
    """12 dot products of length n: pixels b[a_i:a_i+n] against weights w[w_j:w_j+n]."""
    x0 = b[a0:a0 + n]
    x1 = b[a1:a1 + n]
    x2 = b[a2:a2 + n]
    x3 = b[a3:a3 + n]
    x4 = b[a4:a4 + n]
    x5 = b[a5:a5 + n]
    v0 = w[w0:w0 + n]
    v1 = w[w1:w1 + n]
    z = np.float32(0)
    s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = s40 = s41 = s50 = s51 = z
    for t in range(n):
        q0 = v0[t]
        q1 = v1[t]
        x = x0[t]
        s00 += x * q0
        s01 += x * q1
        x = x1[t]
        s10 += x * q0
        s11 += x * q1
        x = x2[t]
        s20 += x * q0
        s21 += x * q1
        x = x3[t]
        s30 += x * q0
        s31 += x * q1
        x = x4[t]
        s40 += x * q0
        s41 += x * q1
        x = x5[t]
        s50 += x * q0
        s51 += x * q1
    return s00, s01, s10, s11, s20, s21, s30, s31, s40, s41, s50, s51


@njit(**JIT)
def add_block_2x6(acc, t):
    """acc[12] += the tuple returned by dot_2x6."""
    acc[0] += t[0]
    acc[1] += t[1]
    acc[2] += t[2]
    acc[3] += t[3]
    acc[4] += t[4]
    acc[5] += t[5]
    acc[6] += t[6]
    acc[7] += t[7]
    acc[8] += t[8]
    acc[9] += t[9]
    acc[10] += t[10]
    acc[11] += t[11]


@njit(**JIT)
def add_block(acc, t):
    """acc[24] += the tuple returned by dot_4x6 (unrolled: tuples index by constant)."""
    acc[0] += t[0]
    acc[1] += t[1]
    acc[2] += t[2]
    acc[3] += t[3]
    acc[4] += t[4]
    acc[5] += t[5]
    acc[6] += t[6]
    acc[7] += t[7]
    acc[8] += t[8]
    acc[9] += t[9]
    acc[10] += t[10]
    acc[11] += t[11]
    acc[12] += t[12]
    acc[13] += t[13]
    acc[14] += t[14]
    acc[15] += t[15]
    acc[16] += t[16]
    acc[17] += t[17]
    acc[18] += t[18]
    acc[19] += t[19]
    acc[20] += t[20]
    acc[21] += t[21]
    acc[22] += t[22]
    acc[23] += t[23]


def pack_channels_last(x: np.ndarray, groups: int, lo, hi, step) -> np.ndarray:
    """x[n, c, D, H, W] -> xp[n, g, D', H', W', c/g], zero-padded by lo/hi and subsampled by step.

    xp[..., i, :] = x[..., i*step - lo] along each spatial axis (zero outside x).
    NumPy's strided copy does the transposition faster than a scalar Numba loop,
    and np.zeros of a large buffer costs nothing until touched.
    """
    n, c = x.shape[:2]
    cg = c // groups
    dst, src, shape = [], [], []
    for size, a, b, s in zip(x.shape[2:], lo, hi, step):
        shape.append((size + a + b - 1) // s + 1)
        first = -(-a // s)  # first output index whose source index i*s - a is >= 0
        last = (size - 1 + a) // s  # last one whose source index is < size
        dst.append(slice(first, last + 1))
        src.append(slice(first * s - a, last * s - a + 1, s))
    xp = np.zeros((n, groups, *shape, cg), np.float32)
    xg = x.reshape(n, groups, cg, *x.shape[2:])
    xp[(slice(None), slice(None), *dst)] = xg[(slice(None), slice(None), slice(None), *src)] \
        .transpose(0, 1, 3, 4, 5, 2)
    return xp


# Tests set this to True so that output elements a kernel forgets to write show as NaN
# (NNPACK's trick); benchmarks leave it False and get uninitialised memory.
POISON_OUTPUTS = False


def new_output(shape) -> np.ndarray:
    """Allocate a kernel's float32 output (NaN-filled while POISON_OUTPUTS is set)."""
    if POISON_OUTPUTS:
        return np.full(shape, np.nan, np.float32)
    return np.empty(shape, np.float32)


def set_threads(n: int | None) -> None:
    """Use n Numba threads (None: all)."""
    numba.set_num_threads(n or numba.config.NUMBA_NUM_THREADS)
