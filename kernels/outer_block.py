"""An outer-product GEMM register block written directly in LLVM IR (a Numba intrinsic).

Why: LLVM's loop vectoriser keeps accumulators in registers only for
reductions along the innermost loop (the dot-product form of
`blocks.dot_4x6`), which pays one horizontal sum per output element. The
Winograd products reduce over c/g only (64 for ResNet-50's res2), so those
horizontal sums cost as much as the FMAs. The outer-product form keeps
PT x KV vectors of LANES accumulators live across the whole reduction: per
step it loads KV vectors of packed filter values, broadcasts PT input values
and issues PT*KV FMAs, with no horizontal work at all.

`outer_block_<KV>(u, uo, v, a0..a5, n, out, oo)`:
    out[oo + p*LANES*KV + l] = sum_{i<n} u[uo + i*LANES*KV + l] * v[a_p + i]
for the PT = 6 tiles p (input offsets a_p) and the LANES*KV output channels l.
`outer_add_<KV>` adds the sums to what `out` holds instead, so a long
reduction can run in cache-sized chunks.

LANES (the target's panel: 16 on AVX-512, AVX2 and NEON, 8 on generic SSE) and
which KV the kernels may use (`WIDE`: KV = 2 only where 6 x 2 panels fit the
vector registers, i.e. AVX-512) come from `kernels.target.TARGET`.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .target import TARGET

LANES = TARGET.panel  # floats per vector of the block (one panel)
PT = TARGET.outer_rows  # tiles per block (broadcast operands)
WIDE = 2 in TARGET.outer_kvs  # whether the 6 x 2-panel block fits the registers
assert PT == 6, "the intrinsics take six input offsets"


def vector_fma(builder, lanes: int):
    """LLVM's fused multiply-add on <lanes x float>, declared once per module (shared by
    the IR intrinsics of the suite). Without FMA hardware (generic SSE2) it is
    `llvm.fmuladd`, a multiply and an add: `llvm.fma` would become a libm call per lane."""
    vec = ir.VectorType(ir.FloatType(), lanes)
    name = "fma" if TARGET.has_fma else "fmuladd"
    return cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vec, [vec, vec, vec]), f"llvm.{name}.v{lanes}f32")


def _make(kv: int, accumulate: bool):
    width = LANES * kv

    @intrinsic
    def outer_block(typingctx, u, uo, v, a0, a1, a2, a3, a4, a5, n, out, oo):
        sig = types.void(u, uo, v, a0, a1, a2, a3, a4, a5, n, out, oo)

        def codegen(context, builder, signature, args):
            f32 = ir.FloatType()
            i64 = ir.IntType(64)
            vec = ir.VectorType(f32, LANES)
            fma = vector_fma(builder, LANES)
            uarr = context.make_array(signature.args[0])(context, builder, args[0])
            varr = context.make_array(signature.args[2])(context, builder, args[2])
            oarr = context.make_array(signature.args[10])(context, builder, args[10])
            ubase = builder.gep(uarr.data, [args[1]])
            vbases = [builder.gep(varr.data, [args[3 + p]]) for p in range(PT)]
            n_val = args[9]
            obase = builder.gep(oarr.data, [args[11]])
            zero = ir.Constant(vec, None)

            def out_ptr(j):
                return builder.bitcast(builder.gep(obase, [ir.Constant(i64, j * LANES)]),
                                       vec.as_pointer())

            init = [builder.load(out_ptr(j), align=4) if accumulate else zero
                    for j in range(PT * kv)]
            mask0 = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)

            pre = builder.block
            loop = builder.append_basic_block("outer.loop")
            done = builder.append_basic_block("outer.done")
            builder.cbranch(builder.icmp_signed(">", n_val, ir.Constant(i64, 0)), loop, done)

            builder.position_at_end(loop)
            i = builder.phi(i64)
            accs = [builder.phi(vec) for _ in range(PT * kv)]
            i.add_incoming(ir.Constant(i64, 0), pre)
            for a, a0_ in zip(accs, init):
                a.add_incoming(a0_, pre)
            urow = builder.gep(ubase, [builder.mul(i, ir.Constant(i64, width))])
            uvecs = []
            for q in range(kv):
                ptr = builder.bitcast(builder.gep(urow, [ir.Constant(i64, q * LANES)]),
                                      vec.as_pointer())
                uvecs.append(builder.load(ptr, align=4))
            new = []
            for p in range(PT):
                s = builder.load(builder.gep(vbases[p], [i]), align=4)
                b = builder.shuffle_vector(builder.insert_element(ir.Constant(vec, ir.Undefined),
                                                                 s, ir.Constant(i64, 0)),
                                          ir.Constant(vec, ir.Undefined), mask0)
                for q in range(kv):
                    new.append(builder.call(fma, [uvecs[q], b, accs[p * kv + q]]))
            i_next = builder.add(i, ir.Constant(i64, 1))
            end = builder.block
            i.add_incoming(i_next, end)
            for a, v_new in zip(accs, new):
                a.add_incoming(v_new, end)
            builder.cbranch(builder.icmp_signed("<", i_next, n_val), loop, done)

            builder.position_at_end(done)
            results = []
            for j in range(PT * kv):
                res = builder.phi(vec)
                res.add_incoming(init[j], pre)
                res.add_incoming(new[j], end)
                results.append(res)
            for p in range(PT):
                for q in range(kv):
                    ptr = builder.bitcast(
                        builder.gep(obase, [ir.Constant(i64, p * width + q * LANES)]),
                        vec.as_pointer())
                    builder.store(results[p * kv + q], ptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return outer_block


outer_block_1 = _make(1, False)
outer_block_2 = _make(2, False)
outer_add_1 = _make(1, True)
outer_add_2 = _make(2, True)


@njit(fastmath=True, cache=True, inline="always")
def outer_product(wide, add, u, uo, v, a0, a1, a2, a3, a4, a5, n, out, oo):
    """The 6 x 2*LANES (`wide`) or 6 x LANES block, overwriting `out` or adding to it
    (`add`). `wide` must be False unless WIDE (the target has the registers for it)."""
    if WIDE and wide:  # a compile-time False drops the wide block from the code
        if add:
            outer_add_2(u, uo, v, a0, a1, a2, a3, a4, a5, n, out, oo)
        else:
            outer_block_2(u, uo, v, a0, a1, a2, a3, a4, a5, n, out, oo)
    elif add:
        outer_add_1(u, uo, v, a0, a1, a2, a3, a4, a5, n, out, oo)
    else:
        outer_block_1(u, uo, v, a0, a1, a2, a3, a4, a5, n, out, oo)
