"""A square transpose of TN x TN floats in vector registers (a Numba intrinsic, LLVM IR).

Why: turning channel planes into channels-last rows (or a register block's
pixel-major sums into NCHW rows) one float at a time costs a scalar load and
store per element, about three cycles; DeepLab's 2048-channel input took 1.9 ms
to pack that way, ENet's output store a tenth of its kernel. Here TN rows are
loaded as vectors, transposed with log2(TN) rounds of two-source shuffles (the
recursive block transpose: swap the off-diagonal blocks of every 2b x 2b block,
b = TN/2, ..., 1) and stored as vectors.

`transpose_block(dst, do, dstride, src, so, sstride)`:
    dst[do + j*dstride + i] = src[so + i*sstride + j] for i, j < TN
(flat float32 arrays; offsets in elements, rows need no alignment).
TN is one vector register of the target (TARGET.lanes: 16 on AVX-512, 8 on AVX2).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .target import TARGET

TN = TARGET.lanes  # floats per transposed row


def _rounds(n: int):
    """(b, mask of the upper row, mask of the lower row) per round, b = n/2 .. 1: the rows
    i and i + b (i // b even) swap their off-diagonal b x b blocks."""
    b = n // 2
    while b:
        upper = [lane if (lane // b) % 2 == 0 else n + lane - b for lane in range(n)]
        lower = [lane + b if (lane // b) % 2 == 0 else n + lane for lane in range(n)]
        yield b, upper, lower
        b //= 2


@intrinsic
def transpose_block(typingctx, dst, do, dstride, src, so, sstride):
    sig = types.void(dst, do, dstride, src, so, sstride)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        vec = ir.VectorType(ir.FloatType(), TN)
        darr = context.make_array(signature.args[0])(context, builder, args[0])
        sarr = context.make_array(signature.args[3])(context, builder, args[3])
        do_, dstride_, so_, sstride_ = args[1], args[2], args[4], args[5]

        def row_ptr(arr, base, stride, r):
            at = builder.add(base, builder.mul(stride, ir.Constant(i64, r)))
            return builder.bitcast(builder.gep(arr.data, [at]), vec.as_pointer())

        rows = [builder.load(row_ptr(sarr, so_, sstride_, r), align=4) for r in range(TN)]
        for b, upper, lower in _rounds(TN):
            up = ir.Constant(ir.VectorType(i32, TN), upper)
            lo = ir.Constant(ir.VectorType(i32, TN), lower)
            new = list(rows)
            for i in range(TN):
                if (i // b) % 2 == 0:
                    new[i] = builder.shuffle_vector(rows[i], rows[i + b], up)
                    new[i + b] = builder.shuffle_vector(rows[i], rows[i + b], lo)
            rows = new
        for r in range(TN):
            builder.store(rows[r], row_ptr(darr, do_, dstride_, r), align=4)
        return context.get_dummy_value()

    return sig, codegen
