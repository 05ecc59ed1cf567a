"""Transposed convolution in sub-pixel form: stride-1 dense convolutions, one per phase.

With dilation 1, output row oy receives tap kh from input row (oy + p - kh) / s when
that is an integer. Writing oy + p = Q*s + r (r the output phase), the taps are
kh = r, r + s, r + 2s, ... and they read input rows Q, Q - 1, Q - 2, ...: phase r
is a stride-1 correlation of the (undilated) input with the sub-kernel w[..., r::s]
reversed, n_r = ceil((kernel - r) / s) taps long, and its outputs land on every s-th
output row. No zeros are inserted into the input.

Phases whose sub-kernels have the same shape are stacked as output channels
(channel k*P + i for the group's i-th phase) of one grouped dense convolution, so one
call of the register-blocked dense kernel (`dense.execute_dense`) computes them all,
with a wide channel dimension even where k is small: a kernel that is a multiple of
the stride (4x4 or 2x2 stride 2) is one stage of all s_h*s_w phases; 5x5 stride 2 is
four stages (3x3, 3x2, 2x3, 2x2 sub-kernels), no tap multiplying a structural zero.
Where one phase's k/g channels would not fill the register block's panel (DCGAN's
3-channel output layer) all phases are one stage instead, sub-kernels zero-padded
at the front to T = ceil(kernel / stride) taps (`exact_stages`).
1x1 sub-kernels make the stage a GEMM (the dense kernel with a 1x1 window).
A stage's output z[n, k*P + i, u, v] (u, v the phase grid) is interleaved into y;
phases without taps (kernel < stride) are zeros; with stride 1 there is one phase
and z is y.

Where the 1x1 phase grids tile y exactly (kernel == stride, padding and output
multiples of the stride: U-Net's 2x2 stride 2), all s_h*s_w phases are one pointwise
GEMM with s_h*s_w*k output channels that stores straight into y through a strided
view (`conv_phases_into`), with no staging array and no interleave pass.

The weights are split, flipped, zero-padded where a phase is short and packed for the
register block in one parallel pass straight from the raw w[c, k/g, kh, kw] (prepare),
into the layout of `gemm.pack_blocked_weights` (tests/test_subpixel.py holds the two
equal).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ..blocks import JIT, KB, PAR, PB, new_output, pack_channels_last
from ..spec import ConvSpec
from .dense import ROW_BUFFER_BYTES, PackedDense, execute_dense, kchunks_for
from .gemm import channel_block, outer_width, split_item


@dataclass(frozen=True)
class PhaseAxis:
    """The sub-pixel geometry of one spatial axis.

    Output index o has phase r = (o + p) % s and grid index u = (o + p) // s - q0;
    grid index u reads the input indices start + u ... start + u + taps - 1.
    """

    stride: int
    taps: int   # T = ceil(kernel / stride): sub-kernel length, zero-padded at the front
    q0: int     # the smallest (o + p) // s over the outputs
    count: int  # grid indices per phase (every phase computes all of them)
    start: int  # input index read by tap 0 of grid index 0 (negative: zero padding)
    size: int   # input length

    @classmethod
    def of(cls, size: int, kernel: int, stride: int, padding: int, out: int) -> PhaseAxis:
        taps = -(-kernel // stride)
        q0 = padding // stride
        q1 = (out - 1 + padding) // stride
        return cls(stride, taps, q0, q1 - q0 + 1, q0 - taps + 1, size)

    def with_taps(self, taps: int) -> PhaseAxis:
        """The same grid read by a sub-kernel `taps` long (its windows end where the
        common one's do)."""
        return dataclasses.replace(self, taps=taps, start=self.q0 - taps + 1)

    def phase_taps(self, kernel: int) -> list[int]:
        """Sub-kernel length of each phase r: ceil((kernel - r) / s), 0 past the kernel."""
        return [max(0, -(-(kernel - r) // self.stride)) for r in range(self.stride)]

    @property
    def window(self) -> int:
        """Input indices the dense convolution reads: count + taps - 1."""
        return self.count + self.taps - 1

    @property
    def pad_lo(self) -> int:
        return max(0, -self.start)


@dataclass(frozen=True)
class PhaseStage:
    """One dense (or pointwise) convolution computing the phases (rh[i], rw[i]), stacked
    as channel k*P + i, with sub-kernels the size of its axes' taps."""

    axes: tuple[PhaseAxis, PhaseAxis]
    rh: np.ndarray        # phase of each stacked position i, per axis (int64, length P)
    rw: np.ndarray
    spec: ConvSpec        # the dense problem with k*P output channels
    symmetric: bool       # its padding is its own (else the input is windowed first)
    packed: PackedDense


@dataclass(frozen=True)
class SubpixelPlan:
    """Everything a sub-pixel call needs besides x (from `prepare_subpixel`)."""

    stages: tuple[PhaseStage, ...]
    zero_phases: tuple[tuple[int, int], ...]  # phases without taps: zero outputs
    scatter: np.ndarray | None  # for `conv_phases_into`: where stacked channels land in y


def subpixel_axes(spec: ConvSpec) -> tuple[PhaseAxis, PhaseAxis]:
    return tuple(PhaseAxis.of(*t) for t in zip(spec.size, spec.kernel, spec.stride,
                                                spec.padding, spec.out_size))


def stage_spec(spec: ConvSpec, axes, phases: int) -> tuple[ConvSpec, bool]:
    """The stacked dense problem of `phases` phases (padding on both sides when the
    window allows it, otherwise on an input windowed by `window_input`) and whether it
    is padded itself."""
    symmetric = all(-a.start == a.start + a.window - a.size >= 0 for a in axes)
    size = tuple(a.size for a in axes) if symmetric else tuple(a.window for a in axes)
    stage = ConvSpec(n=spec.n, c=spec.c, k=spec.k * phases, size=size,
                     kernel=tuple(a.taps for a in axes),
                     padding=tuple(a.pad_lo for a in axes) if symmetric else 0,
                     groups=spec.groups)
    return stage, symmetric


def phase_groups(spec: ConvSpec, axes) -> tuple[list, list]:
    """([(taps_h, taps_w, [(rh, rw), ...]), ...], zero phases): phases grouped by the
    shape of their sub-kernels, rh-major within a group."""
    groups, zeros = {}, []
    th, tw = (a.phase_taps(k) for a, k in zip(axes, spec.kernel))
    for rh in range(axes[0].stride):
        for rw in range(axes[1].stride):
            if th[rh] and tw[rw]:
                groups.setdefault((th[rh], tw[rw]), []).append((rh, rw))
            else:
                zeros.append((rh, rw))
    return [(a, b, ph) for (a, b), ph in groups.items()], zeros


@njit(**JIT)
def _tap_offsets(blk, width, kg, KH, KW, sh, sw, rhs, rws, th_n, tw_n, flip):
    """off[tw, th, q]: where stacked channel j = blk*width + q = kk*P + i (phase (rhs[i],
    rws[i])) reads its tap (th, tw) in one input channel's weights w[c].ravel() (kk, kh,
    kw); -1 for a zero: kh = rh + (T_h-1-th)*sh past the kernel (a phase shorter than
    T) or j past k/g*P."""
    P = rhs.shape[0]
    off = np.empty((tw_n, th_n, width), np.int64)
    for q in range(width):
        j = blk * width + q
        kk = j // P
        rh = rhs[j % P]
        rw = rws[j % P]
        for tw in range(tw_n):
            kw = rw + (tw_n - 1 - tw) * sw
            for th in range(th_n):
                kh = rh + (th_n - 1 - th) * sh
                if j < kg * P and kh < KH and kw < KW:
                    fh = KH - 1 - kh if flip else kh
                    fw = KW - 1 - kw if flip else kw
                    off[tw, th, q] = (kk * KH + fh) * KW + fw
                else:
                    off[tw, th, q] = -1
    return off


@njit(**PAR)
def _pack_taps(w, groups, flip, sh, sw, rhs, rws, taps, bases, nblk, width, outer, out):
    """Pack w[c, k/g, KH, KW] for stages s = 0, 1, ... of P phases each (phases rhs[s],
    rws[s]; sub-kernel taps[s] = (T_h, T_w)) by `_tap_offsets`, stage s at out[bases[s]:]
    laid out [g, blk, tw, th, c, q] (outer) or [g, blk, q, tw, th, c] (dot). One pass
    over w: each block's weights of one input channel are read once for every stage."""
    C, kg, KH, KW = w.shape
    cg = C // groups
    nst = taps.shape[0]
    wf = w.reshape((C, kg * KH * KW))
    tmax = 0
    for st in range(nst):
        tmax = max(tmax, taps[st, 0], taps[st, 1])
    for item in prange(groups * nblk):
        g = item // nblk
        blk = item % nblk
        off = np.empty((nst, tmax, tmax, width), np.int64)
        for st in range(nst):
            off[st, :taps[st, 1], :taps[st, 0]] = _tap_offsets(
                blk, width, kg, KH, KW, sh, sw, rhs[st], rws[st], taps[st, 0], taps[st, 1],
                flip)
        if outer:
            for c in range(cg):
                src = wf[g * cg + c]
                for st in range(nst):
                    th_n, tw_n = taps[st, 0], taps[st, 1]
                    for tw in range(tw_n):
                        for th in range(th_n):
                            o = bases[st] + (((item * tw_n + tw) * th_n + th) * cg + c) * width
                            dst = out[o:o + width]
                            ot = off[st, tw, th]
                            for q in range(width):
                                dst[q] = src[ot[q]] if ot[q] >= 0 else np.float32(0)
        else:
            for st in range(nst):
                th_n, tw_n = taps[st, 0], taps[st, 1]
                for q in range(width):
                    for tw in range(tw_n):
                        for th in range(th_n):
                            o = bases[st] + (((item * width + q) * tw_n + tw) * th_n + th) * cg
                            t = off[st, tw, th, q]
                            for c in range(cg):
                                out[o + c] = wf[g * cg + c, t] if t >= 0 else np.float32(0)


def pack_subpixel_weights(w: np.ndarray, groups: int, flip: bool, stages) -> list[PackedDense]:
    """Raw transposed weights w[c, k/g, KH, KW] -> each stage's packed weights, for
    stages (axes, rh, rw) of equally many phases: the layout `gemm.pack_blocked_weights`
    gives the stacked (k*P, c/g, 1, T_h, T_w) kernel whose channel k*P + i is phase
    (rh[i], rw[i])'s reversed sub-kernel, zero-padded in front to the axes' T taps
    (flipped first when the spec says so)."""
    c, kg, _, _ = w.shape
    cg = c // groups
    P = stages[0][1].shape[0]
    (sh, sw) = (a.stride for a in stages[0][0])
    taps = np.array([[a.taps for a in axes] for axes, _, _ in stages], np.int64)
    kgs = kg * P
    width = outer_width(kgs)
    nblk = -(-kgs // (width or KB))
    sizes = [groups * nblk * (width or KB) * th * tw * cg for th, tw in taps]
    bases = np.cumsum([0] + sizes[:-1]).astype(np.int64)
    out = np.empty(sum(sizes), np.float32)
    _pack_taps(np.ascontiguousarray(w), groups, flip, sh, sw,
               np.stack([rh for _, rh, _ in stages]), np.stack([rw for _, _, rw in stages]),
               taps, bases, nblk, width or KB, bool(width), out)
    packed = []
    for base, size, (th, tw) in zip(bases, sizes, taps):
        wb = out[base:base + size]
        wb = (wb.reshape(groups, nblk, tw * th * cg, width) if width
              else wb.reshape(groups, nblk, KB, tw * th * cg))
        packed.append(PackedDense(wb, bool(width), np.arange(kgs * groups)))
    return packed


def writes_in_place(spec: ConvSpec, axes) -> bool:
    """Kernel == stride: every phase has one tap, and phase grids that tile the output
    exactly (every grid point of every phase is an output: padding and output size
    multiples of the stride), so the stacked GEMM can store straight into y."""
    return all(k == a.stride and a.q0 * a.stride == p and (a.q0 + a.count) * a.stride == o + p
               for a, k, p, o in zip(axes, spec.kernel, spec.padding, spec.out_size))


def scatter_rows(spec: ConvSpec, rh: np.ndarray, rw: np.ndarray) -> np.ndarray:
    """Stacked channel k*P + i -> its first element in y[b].ravel() (k*OH*OW + rh[i]*OW
    + rw[i]): a row of the strided view of `phase_view`."""
    OH, OW = spec.out_size
    k = np.arange(spec.k)[:, None]
    return (k * OH * OW + rh * OW + rw).astype(np.int64).ravel()


def _stages(spec: ConvSpec, w: np.ndarray, groups) -> tuple[PhaseStage, ...]:
    """The stages of `groups` [(axes, phases), ...], those with equally many phases packed
    in one pass."""
    by_count = {}
    for axes, phases in groups:
        rh, rw = (np.array(r, np.int64) for r in zip(*phases))
        by_count.setdefault(len(phases), []).append((axes, rh, rw))
    stages = []
    for count, same in by_count.items():
        for (axes, rh, rw), packed in zip(same, pack_subpixel_weights(w, spec.groups,
                                                                      spec.flip, same)):
            stage, symmetric = stage_spec(spec, axes, count)
            stages.append(PhaseStage(axes, rh, rw, stage, symmetric, packed))
    return tuple(stages)


def exact_stages(spec: ConvSpec, w: np.ndarray) -> bool:
    """One stage per sub-kernel shape (no zero taps) where a phase's k/g channels fill
    the outer-product block's panel; otherwise one stage of all phases, zero-padded to
    T x T (DCGAN's 3-channel output layer: 12 stacked channels in one panel, not 3 per
    call)."""
    return bool(outer_width(spec.k // spec.groups))


def prepare_subpixel(spec: ConvSpec, w: np.ndarray) -> SubpixelPlan:
    axes = subpixel_axes(spec)
    every = [(rh, rw) for rh in range(axes[0].stride) for rw in range(axes[1].stride)]
    if writes_in_place(spec, axes):
        (st,) = _stages(spec, w, [(axes, every)])
        return SubpixelPlan((st,), (), scatter_rows(spec, st.rh, st.rw))
    if not exact_stages(spec, w):
        return SubpixelPlan(_stages(spec, w, [(axes, every)]), (), None)
    groups, zeros = phase_groups(spec, axes)
    return SubpixelPlan(_stages(spec, w, [((axes[0].with_taps(th), axes[1].with_taps(tw)),
                                           phases) for th, tw, phases in groups]),
                        tuple(zeros), None)


def window_input(x: np.ndarray, axes) -> np.ndarray:
    """x[n, c, start : start + window] on both axes, zero outside x (NCHW)."""
    n, c = x.shape[:2]
    xw = np.zeros((n, c, axes[0].window, axes[1].window), np.float32)
    dst, src = [], []
    for a in axes:
        lo, hi = max(0, a.start), min(a.size, a.start + a.window)
        if hi <= lo:
            return xw
        dst.append(slice(lo - a.start, hi - a.start))
        src.append(slice(lo, hi))
    xw[:, :, dst[0], dst[1]] = x[:, :, src[0], src[1]]
    return xw


@njit(**PAR)
def interleave(z, y, rhs, rws, geo):
    """y[b, k, oy, ox] = z[b, k*P + i, u, v] where oy + ph = (q0h + u)*sh + rhs[i] and
    ox + pw = (q0w + v)*sw + rws[i], for the oy, ox inside y; geo = (sh, sw, ph, pw,
    q0h, q0w)."""
    n, K, OH, OW = y.shape
    P = rhs.shape[0]
    U, V = z.shape[2], z.shape[3]
    sh, sw, ph, pw, q0h, q0w = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5]
    for item in prange(n * K * P):
        i = item % P
        k = (item // P) % K
        b = item // (P * K)
        oy0 = q0h * sh + rhs[i] - ph
        ox0 = q0w * sw + rws[i] - pw
        v0 = max(0, -(ox0 // sw))  # the first v with ox >= 0
        v1 = min(V, (OW - 1 - ox0) // sw + 1) if OW > ox0 else 0
        for u in range(U):
            oy = oy0 + u * sh
            if 0 <= oy < OH:
                src = z[b, k * P + i, u]
                row = y[b, k, oy]
                for v in range(v0, v1):
                    row[ox0 + v * sw] = src[v]


@njit(**PAR)
def conv_phases_into(xp, wb, outer, yv, kmap, row_step, rows, kchunks):
    """The stacked pointwise GEMM stored straight into y: stacked channel j of grid pixel
    (u, v) goes to yv[b, kmap[j], u*row_step + v], yv the strided view of `phase_view`
    (element (r, t) of image b at y[b].ravel()[r + sw*t]). xp[n, g, U, V, cg]; a work
    item is `rows` grid rows x one chunk of channel blocks, each weight block used on
    all its rows while it is in L2."""
    n, groups, U, V, cg = xp.shape
    kgs = kmap.shape[0] // groups
    nblk = wb.shape[1]
    width = wb.shape[3] if outer else wb.shape[2]
    per_chunk = (nblk + kchunks - 1) // kchunks
    nrg = (U + rows - 1) // rows
    for item in prange(n * groups * nrg * kchunks):
        b, g, _, rg, ch = split_item(item, kchunks, nrg, 1, groups)
        u0 = rg * rows
        offs = np.empty(V, np.int64)
        buf = xp[b, g].ravel()
        km = kmap[g * kgs:(g + 1) * kgs]
        accs = np.empty((V + PB) * width, np.float32)
        for blk in range(ch * per_chunk, min(nblk, (ch + 1) * per_chunk)):
            wf = wb[g, blk].ravel()
            for u in range(u0, min(U, u0 + rows)):
                for v in range(V):
                    offs[v] = (u * V + v) * cg
                channel_block(buf, offs, V, 1, cg, 0, wf, width, outer, yv[b], km, blk * width,
                              kgs, u * row_step, accs)


def phase_view(y: np.ndarray, axes) -> np.ndarray:
    """y[n, k, OH, OW] as yv[n, rows, cols] with yv[b, r, t] = y[b].ravel()[r + sw*t]:
    stacked channel rows start at `scatter_rows`, grid pixel (u, v) is column
    u*sh*V + v (OW = sw*V when `writes_in_place`); the shape reaches exactly the last
    element of y[b]."""
    n, K, OH, OW = y.shape
    ah, aw = axes
    cols = (ah.count - 1) * ah.stride * aw.count + aw.count
    rows = K * OH * OW - aw.stride * (cols - 1)
    e = y.itemsize
    return np.lib.stride_tricks.as_strided(y, (n, rows, cols), (K * OH * OW * e, e,
                                                                aw.stride * e))


def execute_in_place(spec: ConvSpec, xs: np.ndarray, sp: SubpixelPlan) -> np.ndarray:
    """The stacked 1x1 GEMM of `writes_in_place` stores straight into y (no staging)."""
    st = sp.stages[0]
    ah, aw = st.axes
    cg = spec.c // spec.groups
    xp = pack_channels_last(xs[:, :, None], spec.groups, (0, 0, 0), (0, 0, 0), (1, 1, 1))
    xp = xp.reshape(spec.n, spec.groups, ah.count, aw.count, cg)
    y = new_output(spec.output_shape)
    rows = max(1, min(ah.count, ROW_BUFFER_BYTES // (4 * cg * aw.count)))
    items = spec.n * spec.groups * -(-ah.count // rows)
    wb = st.packed.wb
    conv_phases_into(xp, wb, st.packed.outer, phase_view(y, st.axes), sp.scatter,
                     ah.stride * aw.count, rows, kchunks_for(items, wb.shape[1]))
    return y


def execute_subpixel(spec: ConvSpec, x: np.ndarray, sp: SubpixelPlan) -> np.ndarray:
    """Transposed conv of x through the stages of `prepare_subpixel`."""
    if sp.scatter is not None:
        st = sp.stages[0]
        return execute_in_place(spec, x if st.symmetric else window_input(x, st.axes), sp)
    if len(sp.stages) == 1 and sp.stages[0].rh.shape[0] == 1 and spec.stride == (1, 1):
        return _run_stage(sp.stages[0], x)  # one phase on the grid p ... p + out - 1: y
    y = new_output(spec.output_shape)
    for st in sp.stages:
        ah, aw = st.axes
        interleave(_run_stage(st, x), y, st.rh, st.rw,
                   np.array([ah.stride, aw.stride, *spec.padding, ah.q0, aw.q0], np.int64))
    for rh, rw in sp.zero_phases:  # (o + p) % s == r
        y[:, :, (rh - spec.padding[0]) % spec.stride[0]::spec.stride[0],
          (rw - spec.padding[1]) % spec.stride[1]::spec.stride[1]] = 0
    return y


def _run_stage(st: PhaseStage, x: np.ndarray) -> np.ndarray:
    xs = x if st.symmetric else window_input(x, st.axes)
    # a 1x1 stage too: its weights are packed for the register blocks (PackedDense), which
    # the dense kernel reads; the pointwise kernel takes unpacked rows (LaneWeights)
    return execute_dense(st.spec, xs, st.packed)
