"""Which algorithm runs which type: the (type, algorithm) cells and the public entry points.

Algorithm packages declare themselves with `declare_algorithm(name, summary=...,
accuracy=Bound(...))` (ALGORITHMS is the list of declared names) and register their
cells with `@cell(type, algorithm)`; a
module can also register the reason a cell does not apply with
`not_applicable(type, algorithm, reason)`. A cell nobody registered reports
itself as not implemented, so `convbench list` shows the whole matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import memory
from .accuracy import Bound
from .counts import direct_multiplications
from .spec import ConvSpec
from .types import CONV_TYPES, check_inputs, check_spec

ALGORITHMS: tuple[str, ...] = ()  # in declaration order; complete once `import kernels` returns


@dataclass(frozen=True)
class Algorithm:
    name: str
    summary: str
    accuracy: Bound


_ALGORITHMS: dict[str, Algorithm] = {}


def declare_algorithm(name: str, *, summary: str, accuracy: Bound) -> None:
    """Declare an algorithm (its one-line summary and its accuracy.Bound) before its
    cells register; ALGORITHMS lists the declared names in declaration order.

    Declaring a name again with the same summary and bound does nothing; with
    others it is an error (two packages claiming one name)."""
    global ALGORITHMS
    if not name or not name.isidentifier():
        raise ValueError(f"name: an algorithm name is an identifier, got {name!r}")
    if not isinstance(accuracy, Bound):
        raise ValueError(f"accuracy: must be a kernels.accuracy.Bound, got {accuracy!r}")
    new = Algorithm(name, summary, accuracy)
    old = _ALGORITHMS.get(name)
    if old is not None and old != new:
        raise ValueError(f"name: algorithm {name!r} is already declared as {old}")
    _ALGORITHMS[name] = new
    ALGORITHMS = tuple(_ALGORITHMS)


def algorithm(name: str) -> Algorithm:
    """The declaration of `name` (ValueError naming the declared ones if there is none)."""
    try:
        return _ALGORITHMS[name]
    except KeyError:
        raise ValueError(
            f"algorithm: unknown algorithm {name!r}; known: {', '.join(ALGORITHMS)} "
            f"(an algorithm package declares itself with declare_algorithm)") from None


def algorithm_bound(name: str) -> Bound:
    """The accuracy.Bound `name` declared."""
    return algorithm(name).accuracy


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
    algorithm_bound(algorithm)  # raises for a name nobody declared


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


def cells() -> tuple[tuple[str, str], ...]:
    """Every registered (type, algorithm) cell, in type then algorithm order."""
    return tuple((t, a) for t in CONV_TYPES for a in ALGORITHMS if (t, a) in _CELLS)


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


def plan(conv_type: str, algorithm: str, spec: ConvSpec, weights):
    """A callable `plan(x) -> y` equal to `run(conv_type, algorithm, spec, x, weights)`,
    with the weight-only work done once (the `prepared` timing mode).

    (Skeleton of the contract: prepares nothing yet.)"""
    def call(x):
        return run(conv_type, algorithm, spec, x, weights)

    return call


def multiplications(conv_type: str, algorithm: str, spec: ConvSpec) -> int:
    """Multiplications `algorithm` performs on `spec`, padded taps included (arithmetic
    only: not subject to the memory limit)."""
    why = _shape_reason(conv_type, algorithm, spec)
    if why:
        raise ValueError(f"algorithm: {algorithm} cannot run {conv_type} on {spec}: {why}")
    return int(_CELLS[(conv_type, algorithm)].multiplications(spec))
