"""Generated straight-line codelets for the fft transforms B^T (input), A^T (output), G (filter).

Why: applied as dense matrix rows (`kernels.tiled.pipeline._comb`), B^T of a 16-point tile
costs ~16 multiply-adds per each of its 23 points and A^T ~23 per output, with the
intermediate rows going through memory in passes of up to eight terms. A real FFT needs
O(log t) operations per point. Here Python runs the radix-2 FFT symbolically (values are
nodes of a program; products by 0 and +-1 vanish, equal subexpressions are shared, unused
ones dropped) and the program becomes LLVM IR on vectors of `LANES` columns: the t (or
alpha) inputs of a column are loaded once, every intermediate stays in registers, the
outputs are stored once, like FFTW's and NNPACK's generated codelets.

`apply_codelet(code, dst, do, dst_st, src, so, src_st, n, rows, reps, dst_rep, src_rep)`:
    dst[do + k*dst_rep + i*dst_st + x] = sum_j M[i, j] src[so + k*src_rep + j*src_st + x]
    for x < n, i < rows, k < reps (repeats: one call, one dispatch, for many small blocks),
with M the matrix of `code` (`codelet_code(kind, t, r)`: B^T or A^T of a t-point tile, G of
r taps; `matrix_of(code)` in float64; A^T's rows are its first `rows` outputs, i.e. m =
t - r + 1). `codelet_for(M, kind)` finds the code of a float32 fft matrix in compiled code.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ..blocks import JIT
from ..outer_block import vector_fma
from ..target import TARGET
from .matrices import _cos_sin, alpha, rfft_bilinear

LANES = TARGET.transform_lanes
FTILE = -1  # the pipeline's `ftile` for fft matrices: B^T, A^T and G by these codelets
TILES = (8, 16)  # tile sizes with codelets
KINDS = ("input", "output", "filter")  # B^T, A^T, G


class Program:
    """A straight-line linear program over `n_in` inputs: nodes are ints, None is zero.

    ops[k] is ('in', j) | ('add', a, b) | ('sub', a, b) | ('neg', a) | ('mul', c, a) |
    ('fma', c, a, b) = c*a + b; equal ops are one node (common subexpressions)."""

    def __init__(self, n_in: int):
        self.ops: list[tuple] = []
        self._index: dict[tuple, int] = {}
        self.inputs = [self._node(("in", j)) for j in range(n_in)]
        self.outputs: list[int | None] = []

    def _node(self, op: tuple) -> int:
        if op not in self._index:
            self._index[op] = len(self.ops)
            self.ops.append(op)
        return self._index[op]

    def _neg_of(self, a):
        return self.ops[a][1] if self.ops[a][0] == "neg" else None

    def neg(self, a):
        if a is None:
            return None
        inner = self._neg_of(a)
        return inner if inner is not None else self._node(("neg", a))

    def mul(self, c: float, a):
        if a is None or c == 0:
            return None
        if c == 1:
            return a
        if c == -1:
            return self.neg(a)
        return self._node(("mul", float(c), a))

    def add(self, a, b):
        if a is None:
            return b
        if b is None:
            return a
        if self._neg_of(b) is not None:
            return self.sub(a, self._neg_of(b))
        if self._neg_of(a) is not None:
            return self.sub(b, self._neg_of(a))
        for x, y in ((a, b), (b, a)):  # c*x + y as one fused multiply-add
            if self.ops[y][0] == "mul":
                return self._node(("fma", self.ops[y][1], self.ops[y][2], x))
        return self._node(("add",) + tuple(sorted((a, b))))

    def sub(self, a, b):
        if b is None:
            return a
        if a is None:
            return self.neg(b)
        if a == b:
            return None
        if self._neg_of(b) is not None:
            return self.add(a, self._neg_of(b))
        if self.ops[b][0] == "mul":
            return self._node(("fma", -self.ops[b][1], self.ops[b][2], a))
        return self._node(("sub", a, b))

    def live(self) -> list[int]:
        """The nodes the outputs need, in program order."""
        need = set()
        stack = [o for o in self.outputs if o is not None]
        while stack:
            k = stack.pop()
            if k in need:
                continue
            need.add(k)
            stack += _args(self.ops[k])
        return sorted(need)

    def arithmetic(self) -> int:
        """Vector operations the program runs (an fma counts once)."""
        return sum(self.ops[k][0] != "in" for k in self.live())

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """The outputs for inputs x[j, ...] in float64 (zeros for None outputs)."""
        x = np.asarray(x, np.float64)
        val: dict[int, np.ndarray] = {}
        for k in self.live():
            op = self.ops[k]
            kind = op[0]
            if kind == "in":
                val[k] = x[op[1]]
            elif kind == "add":
                val[k] = val[op[1]] + val[op[2]]
            elif kind == "sub":
                val[k] = val[op[1]] - val[op[2]]
            elif kind == "neg":
                val[k] = -val[op[1]]
            elif kind == "mul":
                val[k] = op[1] * val[op[2]]
            else:
                val[k] = op[1] * val[op[2]] + val[op[3]]
        zero = np.zeros(x.shape[1:])
        return np.array([zero if o is None else val[o] for o in self.outputs])


def _args(op: tuple) -> list[int]:
    """The nodes an op reads."""
    kind = op[0]
    if kind == "in":
        return []
    return list(op[2:]) if kind in ("mul", "fma") else list(op[1:])


def _twiddle(n: int, f: int, sign: int) -> tuple[float, float]:
    """cos and sign*sin of 2 pi f / n (exact at quarter turns, |cos| = |sin| at eighths)."""
    c, s = (float(v[0]) for v in _cos_sin(n, f, np.array([1])))
    if c != 0 and abs(abs(c) - abs(s)) < 1e-12:
        s = float(np.copysign(abs(c), s))
    return c, sign * s


def _cmul(p: Program, z, w):
    (ar, ai), (c, s) = z, w
    if c != 0 and abs(c) == abs(s):  # an eighth turn: two products
        if c == s:
            return p.mul(c, p.sub(ar, ai)), p.mul(c, p.add(ar, ai))
        return p.mul(c, p.add(ar, ai)), p.mul(s, p.sub(ar, ai))
    return (p.sub(p.mul(c, ar), p.mul(s, ai)), p.add(p.mul(s, ar), p.mul(c, ai)))


def _fft(p: Program, z: list, sign: int) -> list:
    """X_f = sum_j z_j e^{sign 2 pi i f j / n}, radix-2 decimation in time, on (re, im) nodes."""
    n = len(z)
    if n == 1:
        return list(z)
    even, odd = _fft(p, z[0::2], sign), _fft(p, z[1::2], sign)
    out = [None] * n
    for f in range(n // 2):
        o = _cmul(p, odd[f], _twiddle(n, f, sign))
        e = even[f]
        out[f] = (p.add(e[0], o[0]), p.add(e[1], o[1]))
        out[f + n // 2] = (p.sub(e[0], o[0]), p.sub(e[1], o[1]))
    return out


def input_program(t: int) -> Program:
    """B^T of a t-point tile: per frequency f of the real DFT X = rfft(d), X_0; (a + b, a, b)
    with a + ib = X_f; X_{t/2} (`kernels.fft.matrices` orders the points so)."""
    p = Program(t)
    X = _fft(p, [(x, None) for x in p.inputs], -1)
    for f in range(t // 2 + 1):
        a, b = X[f]
        p.outputs += [a] if f == 0 or 2 * f == t else [p.add(a, b), a, b]
    return p


def output_program(t: int) -> Program:
    """A^T of a t-point tile, all t outputs: C_f from the three products (Re = k1 - k3,
    Im = k1 + k2), the Hermitian rest C_{t-f} = conj C_f, y = Re(inverse DFT of C) / t."""
    p = Program(alpha(t))
    pts = p.inputs
    C = [(pts[0], None)]
    for f in range(1, (t + 1) // 2):
        k1, k2, k3 = pts[1 + 3 * (f - 1):4 + 3 * (f - 1)]
        C.append((p.sub(k1, k3), p.add(k1, k2)))
    if t % 2 == 0:
        C.append((pts[-1], None))
    for f in range(len(C), t):
        re, im = C[t - f]
        C.append((re, p.neg(im)))
    Y = _fft(p, C, +1)
    p.outputs = [p.mul(1.0 / t, y[0]) for y in Y]
    return p


def filter_program(t: int, r: int) -> Program:
    """G of r taps in a t-point tile: per frequency c + id = sum_k g_k e^{+2 pi i f k / t}
    (the conjugate spectrum: correlation), c at f = 0 and t/2, else (c, d - c, c + d)."""
    p = Program(r)
    X = _fft(p, [(g, None) for g in p.inputs] + [(None, None)] * (t - r), +1)
    for f in range(t // 2 + 1):
        c, d = X[f]
        p.outputs += [c] if f == 0 or 2 * f == t else [c, p.sub(d, c), p.add(c, d)]
    return p


def _check(kind: str, t: int, r: int) -> None:
    if kind not in KINDS or t not in TILES:
        raise ValueError(f"kind, t: codelets exist for kinds {KINDS} and tiles {TILES} "
                         f"(got {kind!r}, {t})")
    if kind == "filter" and not 2 <= r <= t:
        raise ValueError(f"r: a filter codelet takes 2 <= r <= t taps (got r={r}, t={t})")


@cache
def program(kind: str, t: int, r: int = 0) -> Program:
    """The program of B^T ("input") or A^T ("output") of a t-point tile, or G ("filter") of r
    taps."""
    _check(kind, t, r)
    if kind == "filter":
        return filter_program(t, r)
    return input_program(t) if kind == "input" else output_program(t)


def matrix(kind: str, t: int, r: int = 0) -> np.ndarray:
    """The float64 matrix `program(kind, t, r)` implements: B^T (alpha x t), A^T of m = t
    (t x alpha; A^T of r taps is its first t - r + 1 rows) or G (alpha x r)."""
    _check(kind, t, r)
    AT, G, BT = rfft_bilinear(t, r if kind == "filter" else 1)
    return {"input": BT, "output": AT, "filter": G}[kind]


def _emit(builder, prog: Program, lanes: int, clip_rows: bool, dbase, dst_st, sbase, src_st,
          rows) -> None:
    """The IR of one program on <lanes x float> vectors at dbase / sbase."""
    i64 = ir.IntType(64)
    vec = ir.VectorType(ir.FloatType(), lanes)
    fma = vector_fma(builder, lanes)

    def splat(c):
        return ir.Constant(vec, [float(np.float32(c))] * lanes)

    val = {}
    for k in prog.live():
        op = prog.ops[k]
        kind = op[0]
        if kind == "in":
            ptr = builder.gep(sbase, [builder.mul(src_st, ir.Constant(i64, op[1]))])
            val[k] = builder.load(builder.bitcast(ptr, vec.as_pointer()), align=4)
        elif kind == "add":
            val[k] = builder.fadd(val[op[1]], val[op[2]])
        elif kind == "sub":
            val[k] = builder.fsub(val[op[1]], val[op[2]])
        elif kind == "neg":
            val[k] = builder.fsub(splat(0.0), val[op[1]])
        elif kind == "mul":
            val[k] = builder.fmul(splat(op[1]), val[op[2]])
        else:
            val[k] = builder.call(fma, [splat(op[1]), val[op[2]], val[op[3]]])
    for i, o in enumerate(prog.outputs):
        v = splat(0.0) if o is None else val[o]
        ptr = builder.gep(dbase, [builder.mul(dst_st, ir.Constant(i64, i))])
        ptr = builder.bitcast(ptr, vec.as_pointer())
        if clip_rows:
            with builder.if_then(builder.icmp_signed(">", rows, ir.Constant(i64, i))):
                builder.store(v, ptr, align=4)
        else:
            builder.store(v, ptr, align=4)


def _make(codes: list, lanes: int):
    """The intrinsic codelet(code, dst, do, dst_st, src, so, src_st, rows): one vector of
    `lanes` columns by the program of `code` (a switch over `codes`, [(code, kind, t, r)];
    one compiled function for all of them: a Numba function per codelet took minutes to
    compile). `rows` clips the outputs stored (A^T only)."""

    @intrinsic
    def codelet(typingctx, code, dst, do, dst_st, src, so, src_st, rows):
        sig = types.void(code, dst, do, dst_st, src, so, src_st, rows)

        def codegen(context, builder, signature, args):
            code, dst, do, dst_st, src, so, src_st, rows = args
            darr = context.make_array(signature.args[1])(context, builder, dst)
            sarr = context.make_array(signature.args[4])(context, builder, src)
            dbase = builder.gep(darr.data, [do])
            sbase = builder.gep(sarr.data, [so])
            fn = builder.function
            end = fn.append_basic_block("codelet_end")
            switch = builder.switch(code, end)
            for c, kind, t, r in codes:
                block = fn.append_basic_block(f"codelet_{c}")
                switch.add_case(ir.Constant(code.type, c), block)
                builder.position_at_end(block)
                _emit(builder, program(kind, t, r), lanes, kind == "output", dbase, dst_st,
                      sbase, src_st, rows)
                builder.branch(end)
            builder.position_at_end(end)
            return context.get_dummy_value()

        return sig, codegen

    return codelet


def _looped(codes: list):
    """apply(code, dst, do, dst_st, src, so, src_st, n, rows, reps, dst_rep, src_rep) of the
    codelets `codes`: whole vectors of columns, then one column at a time, reps times."""
    wide, one = _make(codes, LANES), _make(codes, 1)

    @njit(**JIT)
    def apply(code, dst, do, dst_st, src, so, src_st, n, rows, reps, dst_rep, src_rep):
        # one integer type throughout (uint64 with int64 would make floats)
        code, do, dst_st, so, src_st = (np.int64(code), np.int64(do), np.int64(dst_st),
                                        np.int64(so), np.int64(src_st))
        n, rows, dst_rep, src_rep = np.int64(n), np.int64(rows), np.int64(dst_rep), np.int64(
            src_rep)
        for k in range(np.int64(reps)):
            d, s = do + k * dst_rep, so + k * src_rep
            x = np.int64(0)
            while x + LANES <= n:
                wide(code, dst, d + x, dst_st, src, s + x, src_st, rows)
                x += LANES
            while x < n:
                one(code, dst, d + x, dst_st, src, s + x, src_st, rows)
                x += 1

    return apply


# every codelet, code = index + 1; the transforms of the data and of the filter dispatch
# apart so that the input and output stages do not carry the 22 filter codelets
CODELETS = ([(kind, t, 0) for t in TILES for kind in ("input", "output")]
            + [("filter", t, r) for t in TILES for r in range(2, t + 1)])
_DATA = sum(kind != "filter" for kind, _, _ in CODELETS)
# _CODES[kind, tile index, r]: the code, 0 where there is none
_CODES = np.zeros((len(KINDS), len(TILES), max(TILES) + 1), np.int64)
for _code, (_kind, _t, _r) in enumerate(CODELETS, 1):
    _CODES[KINDS.index(_kind), TILES.index(_t), _r] = _code
_ALPHAS = np.array([alpha(t) for t in TILES], np.int64)
_NUMBERED = [(code, *c) for code, c in enumerate(CODELETS, 1)]
apply_data_codelet = _looped(_NUMBERED[:_DATA])
apply_filter_codelet = _looped(_NUMBERED[_DATA:])


def codelet_code(kind: str, t: int, r: int = 0) -> int:
    """The code of the codelet for B^T ("input") or A^T ("output") of a t-point tile or G
    ("filter") of r taps, 0 if there is none (the pipeline then applies the matrix row by
    row)."""
    if kind not in KINDS:
        raise ValueError(f"kind: one of {KINDS} (got {kind!r})")
    if t not in TILES or (kind == "filter" and not 2 <= r <= t):
        return 0
    return int(_CODES[KINDS.index(kind), TILES.index(t), r if kind == "filter" else 0])


def matrix_of(code: int) -> np.ndarray:
    return matrix(*CODELETS[code - 1])


@njit(**JIT)
def codelet_for(M, kind):
    """The code for an fft matrix M of `kind` 0 (B^T: alpha x t), 1 (A^T: m x alpha) or 2
    (G: alpha x r), from its shape (alpha names the tile), 0 if there is none."""
    A = M.shape[1] if kind == 1 else M.shape[0]
    for i in range(_ALPHAS.size):
        if _ALPHAS[i] == A:
            return _CODES[kind, i, M.shape[1] if kind == 2 else 0]
    return 0


@njit(**JIT)
def apply_codelet(code, dst, do, dst_st, src, so, src_st, n, rows, reps=1, dst_rep=0, src_rep=0):
    """See the module doc; code from `codelet_code` / `codelet_for` (the pipeline calls
    `apply_data_codelet` and `apply_filter_codelet`, which take their own codes only)."""
    if code > _DATA:
        apply_filter_codelet(code, dst, do, dst_st, src, so, src_st, n, rows, reps, dst_rep,
                             src_rep)
    else:
        apply_data_codelet(code, dst, do, dst_st, src, so, src_st, n, rows, reps, dst_rep,
                           src_rep)
