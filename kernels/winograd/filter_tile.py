"""U = G g G^T of one input channel for N output channels at once (a Numba intrinsic).

Why: done as two passes of generic 3-term combinations over whole buffers,
every intermediate goes through memory and every coefficient costs an FMA,
zeros included; for ResNet-50 res5 (2.4 M weights per call, each expanding
to 4 frequencies) that made the filter transform the slowest stage. Here the
9 taps of a channel stay in registers as N-lane vectors (one lane per output
channel; N is one register of the target, `TARGET.transform_lanes`), G is baked
in as constants so zeros vanish and +-1 become plain adds, and rows of G that
differ only in the sign of the middle coefficient (the +-p interpolation points
of Cook-Toom) share their even and odd parts.

`make_filter_tile(G)` returns `filter_tile(src, so, sst, dst, do, dst_stride)`:
    dst[do + f*dst_stride + l] = (G w_l G^T)[f]   for l < N, f < A*A,
    w_l[r, s] = src[so + (3*r + s)*sst + l].
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ..outer_block import vector_fma
from ..target import TARGET

N = TARGET.transform_lanes


def _plan(G: np.ndarray):
    """Rows of G as ('pair', a, a2, even, odd) or ('row', a, terms), terms = [(coef, j)]."""
    G = np.asarray(G, np.float32)
    A, r = G.shape
    done, plan = set(), []
    for a in range(A):
        if a in done:
            continue
        done.add(a)
        partner = None
        if r == 3 and G[a, 1] != 0:
            for b in range(a + 1, A):
                if b not in done and G[b, 0] == G[a, 0] and G[b, 2] == G[a, 2] \
                        and G[b, 1] == -G[a, 1]:
                    partner = b
                    break
        if partner is not None:
            done.add(partner)
            even = [(float(G[a, j]), j) for j in (0, 2) if G[a, j] != 0]
            plan.append(("pair", a, partner, even, [(float(G[a, 1]), 1)]))
        else:
            plan.append(("row", a, [(float(G[a, j]), j) for j in range(r) if G[a, j] != 0]))
    return A, plan


def make_filter_tile(G: np.ndarray):
    A, plan = _plan(G)

    @intrinsic
    def filter_tile(typingctx, src, so, sst, dst, do, dst_stride):
        sig = types.void(src, so, sst, dst, do, dst_stride)

        def codegen(context, builder, signature, args):
            f32 = ir.FloatType()
            i64 = ir.IntType(64)
            vec = ir.VectorType(f32, N)
            fma = vector_fma(builder, N)
            sarr = context.make_array(signature.args[0])(context, builder, args[0])
            darr = context.make_array(signature.args[3])(context, builder, args[3])
            sbase = builder.gep(sarr.data, [args[1]])
            dbase = builder.gep(darr.data, [args[4]])
            zero = ir.Constant(vec, [0.0] * N)

            def splat(c):
                return ir.Constant(vec, [c] * N)

            def comb(terms, xs):
                acc = None
                for c, j in terms:
                    x = xs[j]
                    if acc is None:
                        acc = x if c == 1.0 else builder.fmul(splat(c), x)
                    elif c == 1.0:
                        acc = builder.fadd(acc, x)
                    elif c == -1.0:
                        acc = builder.fsub(acc, x)
                    else:
                        acc = builder.call(fma, [splat(c), x, acc])
                return zero if acc is None else acc

            def apply(xs):
                out = [None] * A
                for step in plan:
                    if step[0] == "pair":
                        _, a, b, even, odd = step
                        e, o = comb(even, xs), comb(odd, xs)
                        out[a] = builder.fadd(e, o)
                        out[b] = builder.fsub(e, o)
                    else:
                        out[step[1]] = comb(step[2], xs)
                return out

            taps = []
            for t in range(9):
                p = builder.gep(sbase, [builder.mul(args[2], ir.Constant(i64, t))])
                taps.append(builder.load(builder.bitcast(p, vec.as_pointer()), align=4))
            # columns first: tmp[a][s] = sum_r G[a, r] w[r, s]
            cols = [apply([taps[3 * r + s] for r in range(3)]) for s in range(3)]
            for a in range(A):
                row = apply([cols[s][a] for s in range(3)])
                for b in range(A):
                    off = builder.mul(args[5], ir.Constant(i64, a * A + b))
                    p = builder.gep(dbase, [off])
                    builder.store(row[b], builder.bitcast(p, vec.as_pointer()), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return filter_tile
