"""An N x N float32 transpose in registers (a Numba intrinsic written in LLVM IR).

Why: the filter transform needs the raw weights w[k, c, tap] lane-major, with
N output channels k side by side in one vector. As scalar moves that transpose
costs more than the transform itself for ResNet-50 res5 (2.4 M weights per
call); with N = 16, 16 vector loads, 64 two-source shuffles and 16 vector
stores move 256 values at once.

N is one vector register of the target (`TARGET.transform_lanes`: 16 on
AVX-512, 8 on AVX2, 4 on NEON and SSE), so the N rows stay in registers.

`transpose_block(src, so, sst, dst, do, offs, oo)`:
    dst[do + offs[oo + j] + r] = src[so + r*sst + j]   for r, j < N
(row r of the source block becomes lane r of destination vector j, and each
destination vector goes wherever offs says, so the caller picks the layout).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ..target import TARGET

N = TARGET.transform_lanes
assert N & (N - 1) == 0, "the block transpose halves N down to 1"


@intrinsic
def transpose_block(typingctx, src, so, sst, dst, do, offs, oo):
    sig = types.void(src, so, sst, dst, do, offs, oo)

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        i64 = ir.IntType(64)
        vec = ir.VectorType(f32, N)
        sarr = context.make_array(signature.args[0])(context, builder, args[0])
        darr = context.make_array(signature.args[3])(context, builder, args[3])
        oarr = context.make_array(signature.args[5])(context, builder, args[5])
        sbase = builder.gep(sarr.data, [args[1]])
        dbase = builder.gep(darr.data, [args[4]])
        obase = builder.gep(oarr.data, [args[6]])
        rows = []
        for r in range(N):
            p = builder.gep(sbase, [builder.mul(args[2], ir.Constant(i64, r))])
            rows.append(builder.load(builder.bitcast(p, vec.as_pointer()), align=4))
        # block transpose: at level b swap the off-diagonal b x b blocks of each 2b x 2b block
        b = N // 2
        while b >= 1:
            new = list(rows)
            for r in range(N):
                if r & b:
                    continue
                s = r + b
                lo = [lane if not lane & b else N + lane - b for lane in range(N)]
                hi = [lane + b if not lane & b else N + lane for lane in range(N)]
                new[r] = builder.shuffle_vector(rows[r], rows[s], ir.Constant(
                    ir.VectorType(ir.IntType(32), N), lo))
                new[s] = builder.shuffle_vector(rows[r], rows[s], ir.Constant(
                    ir.VectorType(ir.IntType(32), N), hi))
            rows = new
            b //= 2
        for j in range(N):
            off = builder.load(builder.gep(obase, [ir.Constant(i64, j)]))
            p = builder.gep(dbase, [off])
            builder.store(rows[j], builder.bitcast(p, vec.as_pointer()), align=4)
        return context.get_dummy_value()

    return sig, codegen
