"""Verifying a cell before it is timed: one call against the float64 reference.

The error and the bound are the accuracy contract's (`kernels.accuracy.error` and
`kernels.accuracy.bound`), in the benchmark's memory layout (input, output and the
oracle's result all in it). Peers declare no bound of their own: they are held to
`direct`'s, the plain float32 sum that a library convolution also computes. A
`--rtol` given to the sweep replaces the bound for every cell.
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np

from harness.layouts import DEFAULT_LAYOUT
from harness.modes import DEFAULT_MODE
from harness.peers import PEERS
from harness.timed import timed_callable

# the algorithm whose accuracy bound a peer library is held to
PEER_BOUND_OF = "direct"


def cell_bound(conv_type: str, algorithm: str, spec) -> float:
    """The largest error allowed for this cell (a peer: `direct`'s bound)."""
    from kernels.accuracy import bound

    return bound(PEER_BOUND_OF if algorithm in PEERS else algorithm, conv_type, spec)


@functools.lru_cache(maxsize=2)
def _reference(conv_type: str, spec, layout: str) -> np.ndarray:
    """The float64 reference of make_inputs' data (seed 0), for the cells of one layer in
    turn: a sweep verifies up to ~40 of them (algorithms, peers, modes, layouts) one after
    another, and on a large layer the oracle takes longer than the cell. Each cell gets
    its own fresh inputs; only the oracle's answer is shared (read-only)."""
    import kernels

    x, weights = kernels.make_inputs(conv_type, spec, seed=0, layout=layout)
    ref = kernels.reference(conv_type, spec, x, weights, layout=layout)
    ref.setflags(write=False)
    return ref


def check_cell(conv_type: str, algorithm: str, spec, rtol: float | None = None,
               mode: str = DEFAULT_MODE, threads: int | None = None,
               layout: str = DEFAULT_LAYOUT) -> dict:
    """Run a cell once against the float64 reference: max error, tolerance, first-call time.

    The callable run is the one a benchmark of `mode` times (`harness.timed`), built with
    `threads` where a peer takes its thread count when it is built. `rtol` (the sweep's
    --rtol) overrides the accuracy bound. `first_call_s` includes what the mode prepares.
    Input, output and reference are in `layout`.
    """
    import kernels
    from kernels.accuracy import error

    out = dict(max_error=math.nan, tolerance=math.nan, first_call_s=math.nan, ok=False,
               error="")
    try:
        tol = cell_bound(conv_type, algorithm, spec) if rtol is None else rtol
        out["tolerance"] = tol
        x, weights = kernels.make_inputs(conv_type, spec, seed=0, layout=layout)
        t0 = time.perf_counter()
        fn = timed_callable(conv_type, algorithm, spec, x, weights, mode, threads, layout)
        y = fn()
        out["first_call_s"] = time.perf_counter() - t0
        ref = _reference(conv_type, spec, layout)
        y = np.asarray(y)
        if y.shape != ref.shape:
            out["error"] = f"output shape {y.shape} != reference {ref.shape}"
            return out
        if not np.isfinite(y).all():
            out["error"] = "output has non-finite elements"
            out["max_error"] = math.inf
            return out
        err = error(y, ref)
        out["max_error"] = err
        out["ok"] = err <= tol
        if not out["ok"]:
            out["error"] = f"max relative error {err:.3g} > tolerance {tol:.3g}"
    except Exception as exc:  # a broken cell is a result, not a crash of the sweep
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out
