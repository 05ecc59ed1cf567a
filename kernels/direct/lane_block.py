"""The channels-in-lanes depthwise register block, written in LLVM IR (a Numba intrinsic).

Why IR: the natural Numba form, a loop over the CL lanes of four output
pixels, has four store streams and 36 load streams that LLVM cannot prove
apart, so it gives up on vectorising (too many runtime alias checks) and
emits scalar FMAs. Here the vectors are explicit:

`lane_taps(xin, a0, a1, a2, a3, w, wo, offs, oo, ntaps, out, d0, d1, d2, d3)`:
    out[d_p + l] = sum_{i < ntaps} w[wo + i*CL + l] * xin[a_p + offs[oo + i] + l]
for the PIXELS = 4 output pixels p (their windows start at a_p) and the CL lanes l
(one vector register of channels: 16 on AVX-512, 8 on AVX2). Per tap: one weight
vector, four input vectors, four FMAs into four accumulator registers.

`lane_taps2` / `lane_taps4` are the same block for 2 / 4 outputs per pixel (grouped
convolutions with the groups in lanes: output k of a group is out[d_p + k*dk], its
weights w[wo + (i*kb + k)*CL]): one input load then feeds kb FMAs.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ..outer_block import vector_fma
from ..target import TARGET

CL = TARGET.lanes  # channels per vector register: one channel block
PIXELS = 4  # output pixels per block (accumulator registers)


def _taps_codegen(kb):
    """The codegen of a PIXELS x kb block: per tap, kb weight vectors (w[wo + (i*kb + k)*CL],
    contiguous), PIXELS input vectors, PIXELS*kb FMAs; output k of pixel p lands at
    out[d_p + k*dk] (args: xin, a0..a3, w, wo, offs, oo, ntaps, out, d0..d3[, dk])."""

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        i64 = ir.IntType(64)
        vec = ir.VectorType(f32, CL)
        vptr = vec.as_pointer()
        fma = vector_fma(builder, CL)

        def data(k):
            return context.make_array(signature.args[k])(context, builder, args[k]).data

        xdata, wdata, odata, outdata = data(0), data(5), data(7), data(10)
        xbases = [builder.gep(xdata, [args[1 + p]]) for p in range(PIXELS)]
        wbase = builder.gep(wdata, [args[6]])
        obase = builder.gep(odata, [args[8]])
        n_val = args[9]

        pre = builder.block
        loop = builder.append_basic_block("lanes.loop")
        done = builder.append_basic_block("lanes.done")
        zero = ir.Constant(vec, None)
        builder.cbranch(builder.icmp_signed(">", n_val, ir.Constant(i64, 0)), loop, done)

        builder.position_at_end(loop)
        i = builder.phi(i64)
        accs = [builder.phi(vec) for _ in range(PIXELS * kb)]  # [k][p]
        i.add_incoming(ir.Constant(i64, 0), pre)
        for a in accs:
            a.add_incoming(zero, pre)
        wrow = builder.gep(wbase, [builder.mul(i, ir.Constant(i64, kb * CL))])
        wvs = [builder.load(builder.bitcast(builder.gep(wrow, [ir.Constant(i64, k * CL)]), vptr),
                            align=4) for k in range(kb)]
        off = builder.load(builder.gep(obase, [i]), align=8)
        new = [None] * (PIXELS * kb)
        for p in range(PIXELS):
            xv = builder.load(builder.bitcast(builder.gep(xbases[p], [off]), vptr), align=4)
            for k in range(kb):
                new[k * PIXELS + p] = builder.call(fma, [wvs[k], xv, accs[k * PIXELS + p]])
        i_next = builder.add(i, ir.Constant(i64, 1))
        end = builder.block
        i.add_incoming(i_next, end)
        for a, v in zip(accs, new):
            a.add_incoming(v, end)
        builder.cbranch(builder.icmp_signed("<", i_next, n_val), loop, done)

        builder.position_at_end(done)
        results = []
        for v in new:  # the phis first: LLVM wants them at the top of the block
            res = builder.phi(vec)
            res.add_incoming(zero, pre)
            res.add_incoming(v, end)
            results.append(res)
        dk = args[15] if kb > 1 else ir.Constant(i64, 0)
        for k in range(kb):
            shift = builder.mul(dk, ir.Constant(i64, k))
            for p in range(PIXELS):
                at = builder.add(args[11 + p], shift)
                ptr = builder.bitcast(builder.gep(outdata, [at]), vptr)
                builder.store(results[k * PIXELS + p], ptr, align=4)
        return context.get_dummy_value()

    return codegen


@intrinsic
def lane_taps(typingctx, xin, a0, a1, a2, a3, w, wo, offs, oo, ntaps, out, d0, d1, d2, d3):
    sig = types.void(xin, a0, a1, a2, a3, w, wo, offs, oo, ntaps, out, d0, d1, d2, d3)
    return sig, _taps_codegen(1)


def _taps_k(kb):
    @intrinsic
    def taps(typingctx, xin, a0, a1, a2, a3, w, wo, offs, oo, ntaps, out, d0, d1, d2, d3, dk):
        sig = types.void(xin, a0, a1, a2, a3, w, wo, offs, oo, ntaps, out, d0, d1, d2, d3, dk)
        return sig, _taps_codegen(kb)

    return taps


def block_registers(kb: int) -> int:
    """Vector registers a PIXELS x kb block keeps live: accumulators, weights, one input."""
    return PIXELS * kb + kb + 1


# `lane_taps2/4(..., dk)`: lane_taps for kb = 2 / 4 outputs per pixel sharing each input
# load (1 weight + 4 inputs per 4 FMAs is load-bound; 4 weights + 4 inputs per 16 is not)
lane_taps2 = _taps_k(2)
lane_taps4 = _taps_k(4)
# output channels per block the ISA's registers hold without spilling (4 x 4 needs 21)
KB_CHOICES = tuple(kb for kb in (1, 2, 4) if block_registers(kb) <= TARGET.registers)


def _transpose(builder, vecs):
    """The n x n transpose of n vectors of n lanes (vecs[i][j] -> out[j][i]): log2(n)
    rounds of interleaving vector i with vector i + n/2 (two-source shuffles)."""
    n = len(vecs)
    i32 = ir.IntType(32)
    lo = ir.Constant(ir.VectorType(i32, n), [k for i in range(n // 2) for k in (i, n + i)])
    hi = ir.Constant(ir.VectorType(i32, n), [k for i in range(n // 2, n) for k in (i, n + i)])
    for _ in range(n.bit_length() - 1):
        new = []
        for i in range(n // 2):
            new.append(builder.shuffle_vector(vecs[i], vecs[i + n // 2], lo))
            new.append(builder.shuffle_vector(vecs[i], vecs[i + n // 2], hi))
        vecs = new
    return vecs


@intrinsic
def lanes_in(typingctx, x, src, cstride, nl, xin, base, dst, d0):
    """Channels into lanes, CL pixels at a time: for the CL pixels q of a channel run,
    xin[base + dst[d0 + q] + l] = x[src + l*cstride + q] (x flat) for the nl <= CL
    channels l, 0 for l >= nl (channels past the last)."""
    sig = types.void(x, src, cstride, nl, xin, base, dst, d0)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        vec = ir.VectorType(ir.FloatType(), CL)
        zero = ir.Constant(vec, None)

        def data(k):
            return context.make_array(signature.args[k])(context, builder, args[k]).data

        xdata, xindata, dstdata = data(0), data(4), data(6)
        src, cstride, nl, base, d0 = args[1], args[2], args[3], args[5], args[7]
        vecs = []
        for i in range(CL):
            ok = builder.icmp_signed("<", ir.Constant(i64, i), nl)
            # channels past nl read channel 0 (valid memory) and are replaced by zeros
            at = builder.select(ok, builder.add(src, builder.mul(ir.Constant(i64, i), cstride)),
                                src)
            v = builder.load(builder.bitcast(builder.gep(xdata, [at]), vec.as_pointer()),
                             align=4)
            vecs.append(builder.select(ok, v, zero))
        for j, t in enumerate(_transpose(builder, vecs)):
            off = builder.load(builder.gep(dstdata, [builder.add(d0, ir.Constant(i64, j))]),
                               align=8)
            at = builder.add(base, off)
            builder.store(t, builder.bitcast(builder.gep(xindata, [at]), vec.as_pointer()),
                          align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def lanes_out(typingctx, out, o0, y, ybase, cstride, nl):
    """Lanes back to channels, CL pixels at a time: y[ybase + l*cstride + p] =
    out[o0 + p*CL + l] (y flat) for the CL pixels p and the nl <= CL channels l."""
    sig = types.void(out, o0, y, ybase, cstride, nl)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        vec = ir.VectorType(ir.FloatType(), CL)

        def data(k):
            return context.make_array(signature.args[k])(context, builder, args[k]).data

        odata, ydata = data(0), data(2)
        o0, ybase, cstride, nl = args[1], args[3], args[4], args[5]
        vecs = [builder.load(builder.bitcast(
            builder.gep(odata, [builder.add(o0, ir.Constant(i64, i * CL))]), vec.as_pointer()),
            align=4) for i in range(CL)]
        for j, t in enumerate(_transpose(builder, vecs)):
            with builder.if_then(builder.icmp_signed("<", ir.Constant(i64, j), nl)):
                at = builder.add(ybase, builder.mul(ir.Constant(i64, j), cstride))
                builder.store(t, builder.bitcast(builder.gep(ydata, [at]), vec.as_pointer()),
                              align=4)
        return context.get_dummy_value()

    return sig, codegen
