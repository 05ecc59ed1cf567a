"""Direct grouped convolution in 1, 2 or 3 dimensions: the sliding window, register-blocked.

Two loop nests over the GEMM of `gemm`:

- `conv_lanes` (pixels in the vector lanes, output channels broadcast from the
  caller's weights, unpacked): for groups of at most LANE_GROUP_CHANNELS
  output channels (ResNeXt's 32 groups of 4..16), where the channel-blocked
  nest fills a dot block per group and pays a horizontal sum per output, and
  for every 1x1 layer (`pointwise`).
- `conv_dense` (output channels in the lanes, weights packed), below.

Layout of `conv_dense`: the input is packed channels-last and zero-padded per group,
xp[n, g, D, H, W, c/g]. For one output row the rows the kernel touches are
interleaved into a buffer B[w][kd*kh][c/g], so the window of an output pixel,
(kw, kd*kh, c/g), is one contiguous run of B (for dense kw), and the
register-blocked GEMM of `gemm.channel_block` walks those runs.

2-D problems run as 3-D with depth 1; 1-D as 2-D with height 1.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR, PB, new_output, pack_channels_last
from ..spec import ConvSpec
from ..target import l2_share
from ..types import flip_spatial
from .gemm import (
    channel_block,
    lane_block,
    lane_panel,
    lane_rows,
    lane_width,
    pack_blocked_weights,
    split_item,
    store_lane_rows,
)
from .group_lanes import (
    GroupLanes,
    execute_group_lanes,
    prepare_group_lanes,
    takes_group_lanes,
)

LANE_GROUP_CHANNELS = 16  # groups of at most this many output channels take conv_lanes
WEIGHT_CHUNK_BYTES = l2_share(512 << 10)  # the weights one conv_lanes work item keeps in L2
ITEMS_PER_THREAD = 4  # conv_lanes work items per thread, so that uneven items still balance


@njit(**PAR)
def conv_lanes(xf, C, CH, offs, w, y, kmap, groups, plane, out_size, width, npan, kchunks,
               pchunks, panels):
    """y[b, kmap[g*kg + k], p] = sum_i w[g*kg + k, i] * xf[(b*C + g*cg)*CH + offs[i] + q(p)]:
    the window of output pixel p, q(p) its point on the phase `plane` grid (`phase_split`).

    A work item is one chunk of `width`-point panels x one chunk of 6-channel blocks. With
    one channel chunk each panel is gathered by the item that uses it, then meets every
    weight block; with several, all panels are gathered first into `panels[n, g, npan, ...]`
    (else each item would gather them again), and each weight block meets the item's panels
    in turn, so the weights stream from memory once (2048 x 512 on a 7x7 image: 4 MB of
    weights against 200 KB of panels)."""
    K, L = w.shape
    cg = C // groups
    kg = K // groups
    nkb = (kg + PB - 1) // PB
    kper = (nkb + kchunks - 1) // kchunks
    pper = (npan + pchunks - 1) // pchunks
    wf = w.ravel()
    n = y.shape[0]
    shared = panels.shape[0] > 0
    if shared:
        for item in prange(n * groups * npan):
            bg = item // npan
            j = item % npan
            lane_panel(xf, ((bg // groups) * C + (bg % groups) * cg) * CH, offs, j * width,
                       width, panels[bg // groups, bg % groups, j])
    for item in prange(n * groups * pchunks * kchunks):
        b, g, _, pc, kc = split_item(item, kchunks, pchunks, 1, groups)
        base = (b * C + g * cg) * CH
        yb = y[b]
        acc = np.empty(PB * width, np.float32)
        rows = np.empty(PB, np.int64)
        j0, j1 = pc * pper, min(npan, (pc + 1) * pper)
        if shared:
            own = panels[b, g].ravel()
            for kb in range(kc * kper, min(nkb, (kc + 1) * kper)):
                lane_rows(rows, g * kg * L, kb * PB, kg, L)
                for j in range(j0, j1):
                    lane_block(own, j * L * width, width, wf, rows, L, acc)
                    store_lane_rows(yb, kmap, g * kg, kb * PB, kg, j * width, plane, out_size,
                                    acc, width)
        else:
            panel = np.empty(L * width, np.float32)
            for j in range(j0, j1):
                lane_panel(xf, base, offs, j * width, width, panel)
                for kb in range(kc * kper, min(nkb, (kc + 1) * kper)):
                    lane_rows(rows, g * kg * L, kb * PB, kg, L)
                    lane_block(panel, 0, width, wf, rows, L, acc)
                    store_lane_rows(yb, kmap, g * kg, kb * PB, kg, j * width, plane, out_size,
                                    acc, width)


@njit(**PAR)
def phase_split(x, pad, stride, phases, out):
    """out[b, c, f, zd, zh, zw] = x[b, c] zero-padded by `pad` at (zd*sd + ad, zh*sh + ah,
    zw*sw + aw), (ad, ah, aw) = phases[f]: every window step of a strided layer then reads
    one phase at a fixed offset, so a run of outputs reads a run of the phase."""
    n, C, D, H, W = x.shape
    nph, Dq, Hq, Wq = out.shape[2], out.shape[3], out.shape[4], out.shape[5]
    pd, ph, pw = pad
    sd, sh, sw = stride
    for item in prange(n * C):
        b = item // C
        c = item % C
        for f in range(nph):
            ad, ah, aw = phases[f, 0], phases[f, 1], phases[f, 2]
            # the zw whose source column zw*sw + aw - pw lies in [0, W)
            lo = min(Wq, max(0, (pw - aw + sw - 1) // sw))
            hi = max(lo, min(Wq, (W - 1 + pw - aw) // sw + 1))
            for zd in range(Dq):
                sdi = zd * sd + ad - pd
                for zh in range(Hq):
                    shi = zh * sh + ah - ph
                    row = out[b, c, f, zd, zh]
                    if 0 <= sdi < D and 0 <= shi < H:
                        src = x[b, c, sdi, shi]
                        for zw in range(lo):
                            row[zw] = 0
                        part = row[lo:hi]
                        s0 = lo * sw + aw - pw
                        for t in range(hi - lo):
                            part[t] = src[s0 + t * sw]
                        for zw in range(hi, Wq):
                            row[zw] = 0
                    else:
                        for zw in range(Wq):
                            row[zw] = 0


def lane_split(images_groups: int, kg: int, window: int, npan: int) -> tuple[int, int]:
    """(channel chunks, panel chunks) of conv_lanes: channel chunks whose weights fit L2,
    then panel chunks, then more channel chunks, until every thread has ITEMS_PER_THREAD."""
    nkb = -(-kg // PB)
    want = ITEMS_PER_THREAD * numba.get_num_threads()
    kchunks = max(1, min(nkb, math.ceil(kg * window * 4 / WEIGHT_CHUNK_BYTES)))
    pchunks = max(1, min(npan, math.ceil(want / (images_groups * kchunks))))
    kchunks = max(kchunks, min(nkb, math.ceil(want / (images_groups * pchunks))))
    return kchunks, pchunks


@functools.lru_cache(maxsize=256)  # per layer shape: numpy on a few dozen values costs 25 us
def window_offsets(cg: int, kernel: tuple, dilation: tuple, stride: tuple,
                   grid: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(phases, offs): the stride phases the window reads, (ad, ah, aw) rows, numbered
    row-major; and the offset of each window step (c, kd, kh, kw), in weight-row order, in
    one group of the phase-split input xph[c, phase, *grid]: tap t of an axis reads phase
    t*d % s at offset t*d // s."""
    residues = [sorted({t * d % s for t in range(kk)})
                for kk, d, s in zip(kernel, dilation, stride)]
    phases = np.array([(a, b, c) for a in residues[0] for b in residues[1] for c in residues[2]],
                      np.int64).reshape(-1, 3)
    plane = math.prod(grid)
    pitch = (grid[1] * grid[2], grid[2], 1)
    offs = np.arange(cg, dtype=np.int64).reshape(-1, 1, 1, 1) * (len(phases) * plane)
    for axis, (kk, d, s) in enumerate(zip(kernel, dilation, stride)):
        t = np.arange(kk) * d
        later = math.prod(len(r) for r in residues[axis + 1:])
        phase = np.searchsorted(residues[axis], t % s)
        step = phase * later * plane + (t // s) * pitch[axis]
        offs = offs + step.reshape([-1 if i == axis else 1 for i in range(3)])
    offs = offs.reshape(-1)
    phases.flags.writeable = offs.flags.writeable = False  # shared by every call of the shape
    return phases, offs


def run_lanes(x5: np.ndarray, w: np.ndarray, y: np.ndarray, kmap: np.ndarray, groups: int,
              out_size: tuple, pad: tuple, stride: tuple, dilation: tuple,
              kernel: tuple) -> None:
    """y[n, k, P] = the grouped convolution of x5[n, c, D, H, W] with the raw weight rows
    w[k, window], by conv_lanes: the input split into the stride phases the window reads
    (a copy only where there is padding or a stride), each zero-padded to the `grid` of
    points an output pixel's window can reach."""
    n, C = x5.shape[:2]
    grid = tuple(o + (kk - 1) * d // s for o, kk, d, s in zip(out_size, kernel, dilation, stride))
    phases, offs = window_offsets(C // groups, kernel, dilation, stride, grid)
    if any(pad) or any(s != 1 for s in stride):
        xph = np.empty((n, C, len(phases)) + grid, np.float32)
        phase_split(x5, pad, stride, phases, xph)
    else:  # the input is its own only phase
        xph = x5
    OD, OH, OW = out_size
    points = ((OD - 1) * grid[1] + OH - 1) * grid[2] + OW  # the last output's point, plus 1
    width = lane_width(points)
    npan = -(-points // width)
    kchunks, pchunks = lane_split(n * groups, w.shape[0] // groups, w.shape[1], npan)
    shared = (n, groups, npan, w.shape[1] * width) if kchunks > 1 else (0, 0, 0, 0)
    conv_lanes(xph.reshape(-1), C, len(phases) * math.prod(grid), offs, w, y, kmap, groups,
               grid, out_size, width, npan, kchunks, pchunks, np.empty(shared, np.float32))


@dataclass(frozen=True)
class LaneWeights:
    """The weight-only part of a conv_lanes call: the weights as rows w[k, window], as the
    caller gave them (flipped where the spec says so), never packed."""
    w: np.ndarray       # float32 (k, c/g * taps), C-contiguous
    kmap: np.ndarray    # output channel of each grouped channel (int64)


def lane_weights(w: np.ndarray, kmap: np.ndarray | None, k: int) -> LaneWeights:
    rows = np.ascontiguousarray(w, dtype=np.float32).reshape(w.shape[0], -1)
    return LaneWeights(rows, np.arange(k) if kmap is None else kmap.astype(np.int64))


@njit(**JIT)
def _fill_rows(B, xg, od, oh0, nrows, sd, sh, dd, dh, KD, KH):
    """B[r, w, kd*KH + kh, :] = xg[od*sd + kd*dd, (oh0 + r)*sh + kh*dh, w, :] for r < nrows."""
    Wp = xg.shape[2]
    cg = xg.shape[3]
    L = KD * KH * cg
    for r in range(nrows):
        for kd in range(KD):
            for kh in range(KH):
                row = xg[od * sd + kd * dd, (oh0 + r) * sh + kh * dh]
                base = r * Wp * L + (kd * KH + kh) * cg
                for w in range(Wp):
                    dst = B[base + w * L:base + w * L + cg]
                    src = row[w]
                    for c in range(cg):
                        dst[c] = src[c]


@njit(**PAR)
def conv_dense(xp, wb, outer, y, out_size, kmap, stride, dilation, kernel, rows, kchunks):
    """y[n, kmap[k], p] = sum over the group's window of xp * w, p the flattened output
    pixel (od, oh, ow) of the 3-D `out_size`.

    xp[n, g, Dp, Hp, Wp, cg] padded input; wb the weights from
    `gemm.pack_blocked_weights`; kmap the output channel of each grouped
    channel (identity, or ShuffleNet's shuffle); y the NCHW output as (n, k, pixels),
    or a channels-last one seen through a transposed view. A work item is `rows` output
    rows x one chunk of output channel blocks.
    """
    n, groups = xp.shape[0], xp.shape[1]
    cg = xp.shape[5]
    K = y.shape[1]
    OD, OH, OW = out_size
    KD, KH, KW = kernel
    kg = K // groups
    nblk = wb.shape[1]
    width = wb.shape[3] if outer else wb.shape[2]
    per_chunk = (nblk + kchunks - 1) // kchunks
    L = KD * KH * cg
    Wp = xp.shape[4]
    nrg = (OH + rows - 1) // rows
    fused = dilation[2] == 1  # dense columns: the whole window is one run of B
    nrun = 1 if fused else KW
    runlen = KW * L if fused else L
    for item in prange(n * groups * OD * nrg * kchunks):
        b, g, od, rg, ch = split_item(item, kchunks, nrg, OD, groups)
        oh0 = rg * rows
        nrows = min(rows, OH - oh0)
        npix = nrows * OW
        B = np.empty(nrows * Wp * L, np.float32)
        _fill_rows(B, xp[b, g], od, oh0, nrows, stride[0], stride[1], dilation[0], dilation[1],
                   KD, KH)
        offs = np.empty(npix, np.int64)
        for p in range(npix):
            offs[p] = ((p // OW) * Wp + (p % OW) * stride[2]) * L
        yb = y[b]
        km = kmap[g * kg:(g + 1) * kg]
        accs = np.empty((npix + PB) * width, np.float32)
        for blk in range(ch * per_chunk, min(nblk, (ch + 1) * per_chunk)):
            channel_block(B, offs, npix, nrun, runlen, dilation[2] * L, wb[g, blk].ravel(),
                          width, outer, yb, km, blk * width, kg, (od * OH + oh0) * OW, accs)


def as_3d(a: np.ndarray, ndim: int) -> np.ndarray:
    """View a (n, c, *spatial) array with exactly 3 spatial axes (leading ones of size 1)."""
    return a.reshape(a.shape[:2] + (1,) * (3 - ndim) + a.shape[2:])


def _pad3(t: tuple, ndim: int, fill: int) -> tuple:
    return (fill,) * (3 - ndim) + tuple(t)


def rows_per_item(out_h: int, row_bytes: int) -> int:
    """Output rows per work item: as many as keep the row buffer in L2.

    Each item streams all the weights of its channel chunk once, so few, tall
    items matter when the weights outgrow the caches (512x512x3x3 is 9.4 MB);
    several rows also fill 6-pixel blocks on small images (7 pixels make 2
    blocks, 49 make 9)."""
    return max(1, min(out_h, ROW_BUFFER_BYTES // max(row_bytes, 1)))


ROW_BUFFER_BYTES = l2_share(512 << 10)  # the rows of one work item stay in L2


def kchunks_for(items: int, nkb: int) -> int:
    """Split output channels when there are too few rows to keep every thread busy."""
    want = 4 * numba.get_num_threads()
    return max(1, min(nkb, math.ceil(want / max(items, 1))))


@dataclass(frozen=True)
class PackedDense:
    """The weight-only part of a dense call: weights in the register blocks' layout."""
    wb: np.ndarray      # from gemm.pack_blocked_weights
    outer: bool         # which register block wb is laid out for
    kmap: np.ndarray    # output channel of each grouped channel (int64)


def takes_lanes(spec: ConvSpec) -> bool:
    """Whether the dense kernel of `spec` runs on conv_lanes: groups of few output channels."""
    return spec.groups > 1 and spec.k // spec.groups <= LANE_GROUP_CHANNELS


def prepare_dense(spec: ConvSpec, w: np.ndarray, kmap: np.ndarray | None = None
                  ) -> PackedDense | LaneWeights | GroupLanes:
    """Pack the dense kernel w[k, c/g, *kernel] (flipped if the spec says so) for the nest
    that runs `spec`: groups in lanes (group_lanes), else for conv_lanes only flip it, else
    pack it for conv_dense."""
    if takes_group_lanes(spec):
        return prepare_group_lanes(spec, w, kmap)
    if takes_lanes(spec):
        return lane_weights(flip_spatial(w, spec.ndim) if spec.flip else w, kmap, spec.k)
    wb, outer = pack_blocked_weights(as_3d(np.ascontiguousarray(w), spec.ndim), spec.groups,
                                     spec.flip)
    kmap = np.arange(spec.k) if kmap is None else kmap.astype(np.int64)
    return PackedDense(wb, outer, kmap)


def execute_dense(spec: ConvSpec, x: np.ndarray,
                  packed: PackedDense | LaneWeights | GroupLanes) -> np.ndarray:
    """Direct grouped convolution of x with prepared weights."""
    if isinstance(packed, GroupLanes):
        return execute_group_lanes(spec, x, packed)
    nd = spec.ndim
    x5 = as_3d(x, nd)
    pad = _pad3(spec.padding, nd, 0)
    if isinstance(packed, LaneWeights):
        y = new_output(spec.output_shape)
        run_lanes(x5, packed.w, y.reshape(spec.n, spec.k, -1), packed.kmap, spec.groups,
                  _pad3(spec.out_size, nd, 1), pad, _pad3(spec.stride, nd, 1),
                  _pad3(spec.dilation, nd, 1), _pad3(spec.kernel, nd, 1))
        return y
    xp = pack_channels_last(x5, spec.groups, pad, pad, (1, 1, 1))
    y = new_output(spec.output_shape)
    run_dense(spec, xp, packed, y.reshape(spec.n, spec.k, -1))
    return y


def run_dense(spec: ConvSpec, xp: np.ndarray, packed: PackedDense, y: np.ndarray) -> None:
    """conv_dense of the packed, padded input xp[n, g, Dp, Hp, Wp, c/g] into y[n, k,
    pixels] (a view: NCHW, or channels-last transposed)."""
    nd = spec.ndim
    out_size = _pad3(spec.out_size, nd, 1)
    OD, OH = out_size[:2]
    window = math.prod(spec.kernel) * (spec.c // spec.groups)
    rows = rows_per_item(OH, xp.shape[4] * window * 4)
    items = spec.n * spec.groups * OD * -(-OH // rows)
    geometry = (_pad3(spec.stride, nd, 1), _pad3(spec.dilation, nd, 1),
                _pad3(spec.kernel, nd, 1), rows)
    wb = packed.wb
    conv_dense(xp, wb, packed.outer, y, out_size, packed.kmap, *geometry,
               kchunks_for(items, wb.shape[1]))
