"""Grouped convolution with the groups in the vector lanes (ResNeXt's 32 groups of 4..32
channels): the weight layout, the rule that picks it and the call of `lane_nest`'s
nest for the `direct` cell of grouped / shuffled_grouped.

Why: `dense.conv_lanes` puts pixels in the lanes and runs group by group; a stride-2
layer first copies the whole input into stride phases, and a 7x7 image fills 49 of 64
lanes. With one group per lane every vector is full (when the groups fill a block),
strides cost nothing, and each input vector gathered into lanes feeds all kg outputs
of its group.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from ..blocks import PAR, new_output
from ..spec import ConvSpec
from ..target import l2_share
from ..types import flip_spatial
from .lane_block import CL, KB_CHOICES
from .lane_nest import (
    band_rows,
    conv_group_lanes,
    gather_lanes,
    item_band,
    lane_tables,
    tap_offsets,
    window_span,
)

CHUNK = 4  # pixels per pass over the output channels (8, 16 or all measured the same)
# Work items: large bands, as few as give every thread one. Each band gathers its own
# window rows again, and a 7-pixel row leaves a register block an eighth empty and its
# store scalar: against 256 KB bands and 4 items per thread, 2 threads measured 1.2x on
# ResNeXt's 7x7 and 14x14 layers (conv5_x 0.140 -> 0.115 ms), the same elsewhere.
ITEMS_PER_THREAD = 1
BAND_BYTES = l2_share(512 << 10)  # the gathered input and outputs of one work item (in L2)
L2_BYTES = l2_share(1 << 20)  # one output row's gathered input must fit L2


def lane_fill(groups: int) -> float:
    """The fraction of the lanes of its vector blocks that `groups` groups fill."""
    return groups / (-(-groups // CL) * CL)


def row_bytes(spec: ConvSpec) -> int:
    """Bytes of a work item's buffers per output row: the gathered input (cg planes of
    stride-many padded rows) and the outputs in lanes (kg channels)."""
    Wp = spec.size[1] + 2 * spec.padding[1]
    cg, kg = spec.c // spec.groups, spec.k // spec.groups
    return (cg * spec.stride[0] * Wp + kg * spec.out_size[1]) * CL * 4


def max_group_channels(spec: ConvSpec) -> int:
    """The most input channels per group the lanes win at (1 thread, call mode, against
    conv_lanes / conv_dense; old/new time). At least 3/4 of the lanes filled: 32 (AVX-512:
    g32 cg4..16 1.4-2.7x; g32 cg32 7x7 1.2-1.3x, s2 1.15-1.2x; g16 cg32 14x14 0.94-1.04x;
    AVX2: g32 cg32 7x7 1.3x, g16 cg32 14x14 1.1x). Half of them filled: 8 (AVX-512 g8 cg8
    28x28 1.2x, s2 1.6x; g8 cg16 0.7x). Fewer: none (ShuffleNet's g3: 0.2-0.6x)."""
    fill = lane_fill(spec.groups)
    if fill >= 0.75:
        return 32
    return 8 if fill >= 0.5 else 0


def takes_group_lanes(spec: ConvSpec) -> bool:
    """Whether a grouped 2-D convolution runs with its groups in lanes: a window of more
    than one tap (1x1 layers: conv_lanes needs no transposes, 0.8x), groups that fill
    the lane blocks and few channels per group (max_group_channels), and the input rows
    of one output row small enough for L2."""
    if spec.ndim != 2 or spec.groups < 2 or math.prod(spec.kernel) == 1:
        return False
    cg = spec.c // spec.groups
    Wp = spec.size[1] + 2 * spec.padding[1]
    return cg <= max_group_channels(spec) and cg * window_span(spec) * Wp * CL * 4 <= L2_BYTES


def workspace_bytes(spec: ConvSpec) -> int:
    """Scratch of one work item: its gathered input (band) and its outputs in lanes."""
    OH, OW = spec.out_size
    band = band_rows(OH, row_bytes(spec), BAND_BYTES)
    Wp = spec.size[1] + 2 * spec.padding[1]
    rows = (band - 1) * spec.stride[0] + window_span(spec)
    cg, kg = spec.c // spec.groups, spec.k // spec.groups
    return 4 * CL * (cg * rows * Wp + kg * (band * OW + 1))


@dataclass(frozen=True)
class GroupLanes:
    """The weight-only part of a groups-in-lanes call."""
    wl: np.ndarray         # [group blocks, kg/kb * cg*taps * kb * CL] (lane_nest's layout)
    kb: int                # output channels per register block
    kmap0: np.ndarray      # output channel of group 0's channel kk (int64)
    kstep: int             # kmap0[kk] + g*kstep: the channel of group g's channel kk
    taps: np.ndarray       # each tap's offset in one gathered plane
    pixels_in: np.ndarray  # see lane_nest.lane_tables
    windows: np.ndarray
    Wp: int                # padded width of a gathered plane


def block_outputs(kg: int) -> int:
    """Output channels per register block: the widest the ISA holds that divides kg (the
    blocks then need no padding channels)."""
    return max(kb for kb in KB_CHOICES if kg % kb == 0)


@njit(**PAR)
def _to_lanes(w3, wl):
    """wl[gb, i, t, k, l] = w3[gb*CL + l, i*kb + k, t] for the groups there are: per
    (gb, i, k) a CL x taps transpose, CL x CL in registers (lane_nest.gather_lanes; a
    plain copy of 1.2 MB, numpy's or a loop's, took 0.1 to 0.15 ms)."""
    G, kg, L = w3.shape
    ngb, nkb, kb = wl.shape[0], wl.shape[1], wl.shape[3]
    steps = np.arange(L) * (kb * CL)
    src, dst = w3.reshape(-1), wl.reshape(-1)
    for item in prange(ngb * nkb):  # in call mode the copy is on every call's path
        gb, i = item // nkb, item % nkb
        for k in range(kb):
            gather_lanes(src, (gb * CL * kg + i * kb + k) * L, kg * L, min(CL, G - gb * CL), L,
                         dst, ((gb * nkb + i) * L * kb + k) * CL, steps)


def lane_layout(w: np.ndarray, groups: int, kb: int) -> np.ndarray:
    """w[k, cg, KH, KW] -> wl[group blocks, kg/kb, cg*taps, kb, CL] (flat per block): for
    group g = block*CL + l and its output channel kk = i*kb + k, lane l of row
    [block, i, window step, k]; zero past the last group."""
    kg = w.shape[0] // groups
    ngb = -(-groups // CL)
    alloc = np.empty if groups % CL == 0 else np.zeros
    wl = alloc((ngb, kg // kb, w[0].size, kb, CL), np.float32)
    _to_lanes(np.ascontiguousarray(w, np.float32).reshape(groups, kg, -1), wl)
    return wl.reshape(ngb, -1)


def group_channel_map(kmap: np.ndarray, groups: int) -> tuple[np.ndarray, int]:
    """(kmap0, kstep) with kmap[g*kg + kk] = kmap0[kk] + g*kstep: one channel stride for
    the lanes of every output channel (identity: kg; ShuffleNet's shuffle: 1)."""
    kg = kmap.shape[0] // groups
    kmap0 = np.ascontiguousarray(kmap[:kg], dtype=np.int64)
    kstep = int(kmap[kg] - kmap[0]) if groups > 1 else 0
    if not np.array_equal(kmap.reshape(groups, kg),
                          kmap0 + kstep * np.arange(groups).reshape(-1, 1)):
        raise ValueError("kmap: the groups in lanes need one channel stride between groups")
    return kmap0, kstep


@functools.lru_cache(maxsize=256)  # per layer shape: the tables cost 5 us of a 0.15 ms call
def _plane_tables(size: tuple, stride: tuple, padding: tuple, kernel: tuple,
                  dilation: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(taps, pixels_in, windows, Wp) of lane_nest for one layer shape."""
    spec = ConvSpec(c=1, k=1, size=size, kernel=kernel, stride=stride, padding=padding,
                    dilation=dilation)
    Wp = size[1] + 2 * padding[1]
    # shared by every call of the shape and never written, yet left writable: read-only
    # arrays would compile conv_group_lanes once more besides depthwise's signature
    return (tap_offsets(spec, Wp), *lane_tables(spec, Wp), Wp)


@functools.lru_cache(maxsize=256)
def _identity_map(k: int, groups: int) -> tuple[np.ndarray, int]:
    return np.arange(k // groups), k // groups  # shared, writable: see _plane_tables


def prepare_group_lanes(spec: ConvSpec, w: np.ndarray,
                        kmap: np.ndarray | None = None) -> GroupLanes:
    """Orient w[k, c/g, KH, KW] (flip) and lay it out for the groups-in-lanes nest."""
    w = flip_spatial(w, 2) if spec.flip else w
    kb = block_outputs(spec.k // spec.groups)
    kmap0, kstep = (_identity_map(spec.k, spec.groups) if kmap is None
                    else group_channel_map(kmap, spec.groups))
    tables = _plane_tables(spec.size, spec.stride, spec.padding, spec.kernel, spec.dilation)
    return GroupLanes(lane_layout(w, spec.groups, kb), kb, kmap0, kstep, *tables)


def execute_group_lanes(spec: ConvSpec, x: np.ndarray, state: GroupLanes) -> np.ndarray:
    y = new_output(spec.output_shape)
    OH = spec.out_size[0]
    band = item_band(OH, band_rows(OH, row_bytes(spec), BAND_BYTES),
                     spec.n * state.wl.shape[0], numba.get_num_threads(), ITEMS_PER_THREAD)
    conv_group_lanes(x, state.wl, state.taps, state.pixels_in, state.windows, y, state.kmap0,
                     state.kstep, spec.stride, spec.padding, state.Wp, window_span(spec), band,
                     state.kb, CHUNK)
    return y
