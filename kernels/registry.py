"""Which algorithm runs which type: the (type, algorithm) cells and the public entry points.

Algorithm modules register their cells with `@cell(type, algorithm)`; a
module can also register the reason a cell does not apply with
`not_applicable(type, algorithm, reason)`. A cell nobody registered reports
itself as not implemented, so `convbench list` shows the whole matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import memory
from .counts import direct_multiplications
from .spec import ConvSpec
from .types import CONV_TYPES, check_inputs, check_spec

ALGORITHMS: tuple[str, ...] = ("direct", "im2col", "winograd_f2", "winograd_f4", "separable", "fft")
_BOUNDS: dict = {}


def declare_algorithm(name: str, *, summary: str, accuracy) -> None:
    """Declare an algorithm (its one-line summary and its accuracy.Bound) before its
    cells register. (Skeleton: the structure work derives ALGORITHMS from these.)"""
    _BOUNDS[name] = (summary, accuracy)


def algorithm_bound(name: str):
    """The accuracy.Bound `name` declared."""
    from .accuracy import Bound

    if name in _BOUNDS:
        return _BOUNDS[name][1]
    return Bound(scale=10.0, floor=1e-4)  # skeleton default until every package declares

Runner = Callable[[ConvSpec, np.ndarray, tuple], np.ndarray]


@dataclass(frozen=True)
class Cell:
    run: Runner
    supports: Callable[[ConvSpec], str | None]
    multiplications: Callable[[ConvSpec], int]


_CELLS: dict[tuple[str, str], Cell] = {}
_REASONS: dict[tuple[str, str], str] = {}


def _check_names(conv_type: str, algorithm: str) -> None:
    if conv_type not in CONV_TYPES:
        raise ValueError(f"conv_type: unknown type {conv_type!r}; known: {', '.join(CONV_TYPES)}")
    if algorithm not in ALGORITHMS:
        raise ValueError(
            f"algorithm: unknown algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")


def cell(conv_type: str, algorithm: str, *, supports=None, multiplications=None):
    """Register `run(spec, x, weights) -> y` as the implementation of one cell.

    `run` receives validated C-contiguous float32 inputs and a spec that fits
    the type and passed `supports`.
    """
    _check_names(conv_type, algorithm)

    def register(run: Runner) -> Runner:
        _CELLS[(conv_type, algorithm)] = Cell(
            run=run,
            supports=supports or (lambda spec: None),
            multiplications=multiplications or (lambda spec: direct_multiplications(
                conv_type, spec)),
        )
        return run

    return register


def not_applicable(conv_type: str, algorithm: str, reason: str) -> None:
    _check_names(conv_type, algorithm)
    _REASONS[(conv_type, algorithm)] = reason


def cell_reason(conv_type: str, algorithm: str) -> str | None:
    """Why a cell does not run for any spec (None if it is implemented)."""
    _check_names(conv_type, algorithm)
    if (conv_type, algorithm) in _CELLS:
        return None
    return _REASONS.get((conv_type, algorithm), f"{algorithm} is not implemented for {conv_type}")


def _shape_reason(conv_type: str, algorithm: str, spec: ConvSpec) -> str | None:
    why = cell_reason(conv_type, algorithm)
    if why:
        return why
    check_spec(conv_type, spec)
    return _CELLS[(conv_type, algorithm)].supports(spec)


def supports(conv_type: str, algorithm: str, spec: ConvSpec) -> str | None:
    """None if `algorithm` can run `conv_type` on `spec`, else a one-line reason.

    Besides the cell's own rules, a spec whose memory estimate (kernels.memory)
    exceeds the memory limit is refused with the estimate and the limit.
    """
    return _shape_reason(conv_type, algorithm, spec) or memory.reason(conv_type, algorithm, spec)


def run(conv_type: str, algorithm: str, spec: ConvSpec, x, weights) -> np.ndarray:
    """y = conv_type(x, weights) computed by `algorithm`; NCHW float32 in and out.

    Refused (ValueError) before anything is allocated when the memory estimate
    exceeds the limit (see kernels.memory)."""
    x, weights = check_inputs(conv_type, spec, x, weights)
    why = _shape_reason(conv_type, algorithm, spec)
    if why:
        raise ValueError(f"algorithm: {algorithm} cannot run {conv_type} on {spec}: {why}")
    memory.check(conv_type, algorithm, spec)
    return _CELLS[(conv_type, algorithm)].run(spec, x, weights)


def multiplications(conv_type: str, algorithm: str, spec: ConvSpec) -> int:
    """Multiplications `algorithm` performs on `spec`, padded taps included (arithmetic
    only: not subject to the memory limit)."""
    why = _shape_reason(conv_type, algorithm, spec)
    if why:
        raise ValueError(f"algorithm: {algorithm} cannot run {conv_type} on {spec}: {why}")
    return int(_CELLS[(conv_type, algorithm)].multiplications(spec))
