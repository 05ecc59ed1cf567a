"""Workspace budget and tiling: how many output pixels one work item unfolds at a time.

Every work item unfolds one tile into its own per-thread slot of a workspace
allocated once per call, so the workspace is threads x rows x tile columns x
4 bytes whatever the layer size; the budget caps it (a tile never shrinks
below one column, so the floor is threads x rows x 4 bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba

DEFAULT_BUDGET = 64 << 20
_budget = DEFAULT_BUDGET

# Unfolded tile size per work item. Each tile is a separate GEMM call that re-packs the
# whole weight matrix, so tiles must be wide: on ResNet-50's 3x3 layers (one thread)
# 512 KiB tiles lost 10-15% on res4/res5 against 1 MiB, while 1-16 MiB were within
# the run-to-run noise; 2 MiB also still leaves a 56x56 image two tiles, one per core.
CACHE_TILE_BYTES = 2 << 20
MIN_TILE = 32  # narrower GEMMs waste the 16-wide register tiles of the BLAS kernel


def set_workspace_budget(nbytes: int | None) -> None:
    """Cap the im2col workspace at `nbytes` (None: back to the 64 MiB default)."""
    global _budget
    if nbytes is None:
        nbytes = DEFAULT_BUDGET
    if int(nbytes) < 1:
        raise ValueError(f"nbytes: the workspace budget must be positive, got {nbytes}")
    _budget = int(nbytes)


def workspace_budget() -> int:
    return _budget


@dataclass(frozen=True)
class Tiling:
    tile: int      # columns per tile
    ntiles: int
    mchunks: int   # GEMM row chunks per tile (threads share a small image by output channel)
    slots: int     # per-thread workspace slots
    slot_elems: int

    @property
    def nbytes(self) -> int:
        return 4 * self.slots * self.slot_elems


def plan(rows: int, cols: int, outer: int, extra_per_col: int = 0, mrows: int = 0,
         threads: int | None = None) -> Tiling:
    """Tile `cols` output columns whose unfolded matrix has `rows` rows.

    outer: independent work items besides the tiles (images x groups);
    extra_per_col: further per-thread floats per column (e.g. a fused stage's buffer);
    mrows: GEMM output rows that may be split between threads when there are
    too few tiles to share (0: never split).
    """
    threads = threads or numba.get_num_threads()
    per_col = rows + extra_per_col
    tile = max(MIN_TILE, CACHE_TILE_BYTES // (4 * per_col))
    tile = min(cols, tile)
    mchunks = 1
    if outer * math.ceil(cols / tile) < threads:
        if mrows >= 64 * threads and cols <= 4 * MIN_TILE * threads:
            # a small image: split the GEMM by output rows rather than into slivers
            # of columns, each of which would re-pack the whole weight matrix
            mchunks = threads
            tile = cols
        else:
            tile = min(tile, math.ceil(cols / math.ceil(threads / outer)))
    # the budget wins over everything else
    tile = max(1, min(tile, _budget // (4 * per_col * threads)))
    ntiles = math.ceil(cols / tile)
    tile = math.ceil(cols / ntiles)  # even tiles: no thin last one
    # one slot per thread even when there are fewer items: an item may run on any
    # thread and indexes the workspace by its thread id
    return Tiling(tile, ntiles, mchunks, threads, per_col * tile)
