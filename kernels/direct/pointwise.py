"""Direct 1x1 (pointwise, optionally grouped) convolution: a channel-mixing GEMM.

y[n, k, p] = sum_c w[k, c] x[n, c, p] over the flattened (stride-subsampled)
pixels p, per group. Pixels go in the vector lanes (`gemm.lane_block`): the
input is packed into panels of `width` pixels x c/g channels (one pass over
the input, which a 1x1 layer reads k/g times over), and six output channels
at a time are broadcast straight from the caller's weights, unpacked: in call
mode packing the weights would cost as much as the GEMM on a 7x7 image.

A work item is a range of output-channel blocks x a range of panels; its
panels stay in L2 while each 6-row weight block, in L1, meets all of them, so
the weights stream from memory once per panel range and the input once per
item. Small images (49 pixels, 2048 channels) split over output channels,
large ones over panels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR, PB, new_output
from ..spec import ConvSpec
from .dense import as_3d
from .gemm import lane_block, lane_rows, lane_width, split_item

PANELS_BYTES = 384 * 1024  # input panels one work item keeps in L2
ITEMS_PER_THREAD = 4  # work items per thread, so that uneven items still balance


@njit(**JIT)
def _subsample(plane, stride, OD, OH, OW, row):
    """row[(od*OH + oh)*OW + ow] = plane[od*sd, oh*sh, ow*sw]."""
    p = 0
    for od in range(OD):
        for oh in range(OH):
            src = plane[od * stride[0], oh * stride[1]]
            for ow in range(OW):
                row[p + ow] = src[ow * stride[2]]
            p += OW


@njit(**PAR)
def pack_pixel_panels(x, groups, stride, out):
    """out[b, g, j, c, l] = x[b, g*cg + c] at flattened output pixel j*width + l (the input
    subsampled by `stride`), zero past the last pixel."""
    n, C = x.shape[0], x.shape[1]
    cg = C // groups
    npan, width = out.shape[2], out.shape[4]
    OD = (x.shape[2] - 1) // stride[0] + 1
    OH = (x.shape[3] - 1) // stride[1] + 1
    OW = (x.shape[4] - 1) // stride[2] + 1
    P = OD * OH * OW
    dense = stride[0] == 1 and stride[1] == 1 and stride[2] == 1
    for item in prange(n * C):
        b = item // C
        ch = item % C
        c = ch % cg
        dst = out[b, ch // cg]
        row = np.zeros(npan * width, np.float32)
        if dense:
            row[:P] = x[b, ch].ravel()
        else:
            _subsample(x[b, ch], stride, OD, OH, OW, row)
        for j in range(npan):
            d = dst[j, c]
            src = row[j * width:(j + 1) * width]
            for lane in range(width):  # not a slice assignment: that checks for overlap
                d[lane] = src[lane]


@njit(**JIT)
def _store_rows(yb, kmap, kbase, k0, kg, p0, P, acc, width):
    """yb[kmap[kbase + k0 + r], p0 + l] = acc[r*width + l] for the real channels and pixels."""
    m = min(width, P - p0)
    for r in range(min(PB, kg - k0)):
        dst = yb[kmap[kbase + k0 + r], p0:p0 + m]
        src = acc[r * width:r * width + m]
        for l in range(m):  # an explicit loop: slice assignment checks for overlap, 5x slower
            dst[l] = src[l]


@njit(**PAR)
def conv_pointwise(panels, w, y, kmap, kchunks, pchunks):
    """y[b, kmap[g*kg + k], p] = sum_c w[g*kg + k, c] * panels[b, g, p // width, c, p % width];
    a work item is one chunk of 6-channel blocks x one chunk of panels."""
    n, groups, npan, cg, width = panels.shape
    K = w.shape[0]
    kg = K // groups
    P = y.shape[2]
    nkb = (kg + PB - 1) // PB
    kper = (nkb + kchunks - 1) // kchunks
    pper = (npan + pchunks - 1) // pchunks
    wf = w.ravel()
    for item in prange(n * groups * pchunks * kchunks):
        b, g, _, pc, kc = split_item(item, kchunks, pchunks, 1, groups)
        buf = panels[b, g].ravel()
        yb = y[b]
        acc = np.empty(PB * width, np.float32)
        rows = np.empty(PB, np.int64)
        for kb in range(kc * kper, min(nkb, (kc + 1) * kper)):
            lane_rows(rows, g * kg * cg, kb * PB, kg, cg)
            for j in range(pc * pper, min(npan, (pc + 1) * pper)):
                lane_block(buf, j * cg * width, width, wf, rows, cg, acc)
                _store_rows(yb, kmap, g * kg, kb * PB, kg, j * width, P, acc, width)


@dataclass(frozen=True)
class PackedPointwise:
    """The weight-only part of a pointwise call: the weights as (k, c/g) rows, unpacked."""
    w: np.ndarray       # float32 (k, c/g), C-contiguous
    kmap: np.ndarray    # output channel of each grouped channel (int64)


def prepare_pointwise(spec: ConvSpec, w: np.ndarray,
                      kmap: np.ndarray | None = None) -> PackedPointwise:
    """Keep the 1x1 kernel w[k, c/g, 1, ...] as (k, c/g) rows: the GEMM reads them as they are."""
    rows = np.ascontiguousarray(w, dtype=np.float32).reshape(w.shape[0], w.shape[1])
    kmap = np.arange(spec.k) if kmap is None else kmap.astype(np.int64)
    return PackedPointwise(rows, kmap)


def split_work(groups_n: int, kg: int, npan: int, panel_bytes: int) -> tuple[int, int]:
    """(output-channel chunks, panel chunks) per group and image: panel chunks that fit
    L2, then channel chunks until every thread has ITEMS_PER_THREAD items."""
    pchunks = max(1, min(npan, math.ceil(npan * panel_bytes / PANELS_BYTES)))
    want = ITEMS_PER_THREAD * numba.get_num_threads()
    nkb = -(-kg // PB)
    kchunks = max(1, min(nkb, math.ceil(want / (groups_n * pchunks))))
    if groups_n * pchunks * kchunks < want:  # few channel blocks: split the panels further
        pchunks = max(1, min(npan, math.ceil(want / (groups_n * kchunks))))
    return kchunks, pchunks


def execute_pointwise(spec: ConvSpec, x: np.ndarray, packed: PackedPointwise) -> np.ndarray:
    nd = spec.ndim
    stride = (1,) * (3 - nd) + spec.stride
    cg = spec.c // spec.groups
    P = math.prod(spec.out_size)
    width = lane_width(P)
    npan = -(-P // width)
    panels = np.empty((spec.n, spec.groups, npan, cg, width), np.float32)
    pack_pixel_panels(as_3d(x, nd), spec.groups, stride, panels)
    y = new_output(spec.output_shape)
    kchunks, pchunks = split_work(spec.n * spec.groups, spec.k // spec.groups, npan,
                                  cg * width * 4)
    conv_pointwise(panels, packed.w, y.reshape(spec.n, spec.k, P), packed.kmap, kchunks,
                   pchunks)
    return y


def run_pointwise(spec: ConvSpec, x: np.ndarray, w: np.ndarray,
                  kmap: np.ndarray | None = None) -> np.ndarray:
    return execute_pointwise(spec, x, prepare_pointwise(spec, w, kmap))
