"""Which algorithm runs which type: the (type, algorithm) cells and the public entry points.

Algorithm packages declare themselves with `declare_algorithm(name, summary=...,
accuracy=Bound(...))` (ALGORITHMS is the list of declared names) and register their
cells with `@cell(type, algorithm, prepare=...)`: a cell is a prepare step (weights ->
state: packing, filter transforms, factorisations) and an execute step (the data
path), so `plan` can do the first once and `run` is both in turn; a
module can also register the reason a cell does not apply with
`not_applicable(type, algorithm, reason)`. A cell nobody registered reports
itself as not implemented, so `convbench list` shows the whole matrix.

Every cell runs every layout of kernels.layout (the layout is an axis of every problem).
A cell registers its NCHW form with `@cell`; a cell whose kernel works channels-last
inside registers that form too, `@native_layout(type, algorithm, "nhwc", ...)`, and
runs NHWC input with no transpose at all. Any other cell runs NHWC through its NCHW
form between two transposes, written once here (`Cell.form`), and the memory guard
counts their buffers (`memory_estimate`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import memory
from .accuracy import Bound
from .counts import direct_multiplications
from .layout import NCHW, check_layout, input_shape, to_nchw, to_nhwc, transpose_bytes
from .spec import ConvSpec
from .types import CONV_TYPES, check_inputs, check_spec, check_weights, check_x

ALGORITHMS: tuple[str, ...] = ()  # in declaration order; complete once `import kernels` returns


@dataclass(frozen=True)
class Algorithm:
    name: str
    summary: str
    accuracy: Bound
    package: str = ""  # the module that declared it (ALGORITHMS follows the package list)


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
    new = Algorithm(name, summary, accuracy, sys._getframe(1).f_globals.get("__name__", ""))
    old = _ALGORITHMS.get(name)
    if old is not None:
        if (old.summary, old.accuracy) != (summary, accuracy):
            raise ValueError(f"name: algorithm {name!r} is already declared as {old}")
        return
    _ALGORITHMS[name] = new
    ALGORITHMS = tuple(_ALGORITHMS)


def order_algorithms(packages, parent: str) -> None:
    """Put ALGORITHMS in the order of `packages` (the algorithm package list), declaration
    order within a package: a package that imports another (winograd's pipeline imports
    the fft codelets) must not move that one's algorithms ahead of the list."""
    global ALGORITHMS
    rank = {f"{parent}.{p}": i for i, p in enumerate(packages)}

    def position(a: Algorithm) -> int:
        pkg = a.package if a.package in rank else a.package.rpartition(".")[0]
        return rank.get(pkg, len(rank))

    ALGORITHMS = tuple(a.name for a in sorted(_ALGORITHMS.values(), key=position))


def algorithm(name: str) -> Algorithm:
    """The declaration of `name` (ValueError naming the declared ones if there is none)."""
    try:
        return _ALGORITHMS[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name, e.g. a list
        raise ValueError(
            f"algorithm: unknown algorithm {name!r}; known: {', '.join(ALGORITHMS)} "
            f"(an algorithm package declares itself with declare_algorithm)") from None


def algorithm_bound(name: str) -> Bound:
    """The accuracy.Bound `name` declared."""
    return algorithm(name).accuracy


Preparer = Callable[[ConvSpec, tuple], object]
Executor = Callable[[ConvSpec, np.ndarray, object], np.ndarray]


def _raw_weights(spec: ConvSpec, weights: tuple) -> tuple:
    """The prepare step of a cell that registers none: its state is the weights."""
    return weights


def _always(spec: ConvSpec) -> bool:
    return True


def _nothing_extra(spec: ConvSpec) -> int:
    return 0


@dataclass(frozen=True)
class Form:
    """How a cell runs one layout: prepare (weights -> state), prepare_for_plan and
    execute (spec, x, state) -> y, with x and y in that layout. A native form runs the
    specs `takes` accepts (the others go through the transposes) and holds
    `extra_bytes(spec)` besides what kernels.memory estimates for the cell."""

    prepare: Preparer
    prepare_for_plan: Preparer
    execute: Executor
    takes: Callable[[ConvSpec], bool] = _always
    extra_bytes: Callable[[ConvSpec], int] = _nothing_extra


@dataclass(frozen=True, eq=False)  # identity: a cell is a cache key (see _accepted)
class Cell:
    prepare: Preparer   # weights -> state: every weight-only step (run: once per call)
    prepare_for_plan: Preparer  # the same for a state that serves many calls (a plan)
    execute: Executor   # (spec, x, state) -> y: the data path, NCHW
    supports: Callable[[ConvSpec], str | None]
    multiplications: Callable[[ConvSpec], int]
    native: dict = dataclasses.field(default_factory=dict)  # layout -> Form (channels-last)

    def run(self, spec: ConvSpec, x: np.ndarray, weights: tuple) -> np.ndarray:
        return self.execute(spec, x, self.prepare(spec, weights))

    @functools.cached_property
    def nchw(self) -> Form:
        return Form(self.prepare, self.prepare_for_plan, self.execute)

    @functools.cached_property
    def transposing(self) -> Form:
        """The NCHW form between two transposes: how a layout without a native form runs."""
        execute = self.execute

        def execute_transposed(spec: ConvSpec, x: np.ndarray, state) -> np.ndarray:
            return to_nhwc(execute(spec, to_nchw(x), state))

        return Form(self.prepare, self.prepare_for_plan, execute_transposed,
                    extra_bytes=transpose_bytes)

    def form(self, layout: str, spec: ConvSpec) -> Form:
        """The form that runs `spec` in `layout` (a checked layout name)."""
        if layout == NCHW:
            return self.nchw
        native = self.native.get(layout)
        return native if native is not None and native.takes(spec) else self.transposing

    def runs_natively(self, layout: str, spec: ConvSpec) -> bool:
        """True if `spec` in `layout` runs with no transpose around the NCHW form."""
        return self.form(layout, spec) is not self.transposing


_CELLS: dict[tuple[str, str], Cell] = {}
_REASONS: dict[tuple[str, str], str] = {}


def _check_names(conv_type: str, algorithm: str) -> None:
    if conv_type not in CONV_TYPES:
        raise ValueError(f"conv_type: unknown type {conv_type!r}; known: {', '.join(CONV_TYPES)}")
    algorithm_bound(algorithm)  # raises for a name nobody declared


def cell(conv_type: str, algorithm: str, *, prepare: Preparer | None = None,
         prepare_for_plan: Preparer | None = None, supports=None, multiplications=None):
    """Register `execute(spec, x, state) -> y` as the implementation of one cell.

    `prepare(spec, weights) -> state` does the weight-only work (packing, filter
    transforms, factorisations); `kernels.plan` calls it once, `kernels.run` on
    every call. Without `prepare` the state is the weights tuple itself, so a
    cell registered as `execute(spec, x, weights)` works unchanged.
    `prepare_for_plan` (default: `prepare`) is what `kernels.plan` calls instead,
    for a cell whose state should hold more when it serves many calls than one
    call needs (Winograd's transformed filter, which a single call computes chunk
    by chunk inside its product stage); `execute` takes either state and
    returns the same result. All receive validated C-contiguous float32 arrays
    and a spec that fits the type and passed `supports`; a state is valid under
    any thread count (choices that depend on it belong in `execute`).
    """
    _check_names(conv_type, algorithm)

    def register(execute: Executor) -> Executor:
        _CELLS[(conv_type, algorithm)] = Cell(
            prepare=prepare or _raw_weights,
            prepare_for_plan=prepare_for_plan or prepare or _raw_weights,
            execute=execute,
            supports=supports or (lambda spec: None),
            multiplications=multiplications or (lambda spec: direct_multiplications(
                conv_type, spec)),
        )
        return execute

    return register


def native_layout(conv_type: str, algorithm: str, layout: str, *,
                  prepare: Preparer | None = None, prepare_for_plan: Preparer | None = None,
                  takes: Callable[[ConvSpec], bool] | None = None,
                  extra_bytes: Callable[[ConvSpec], int] | None = None):
    """Register `execute(spec, x, state) -> y`, x and y in `layout` (not NCHW), as the
    native form of the cell (registered before with `@cell`) for the specs `takes`
    accepts (default all; the others run through the transposes). `prepare` and
    `prepare_for_plan` are as for `cell` (default: the NCHW form's; the weights keep
    their documented shapes in every layout). `extra_bytes(spec)`: what the form holds
    besides kernels.memory's estimate of the cell (default nothing)."""
    check_layout(layout)
    if layout == NCHW:
        raise ValueError("layout: NCHW is the form `cell` registers; native_layout adds others")
    key = (conv_type, algorithm)
    if key not in _CELLS:
        raise ValueError(f"algorithm: register the {conv_type}/{algorithm} cell before its "
                         f"native {layout} form")

    def register(execute: Executor) -> Executor:
        old = _CELLS[key]
        own_prepare = prepare or old.prepare
        form = Form(own_prepare, prepare_for_plan or prepare or old.prepare_for_plan, execute,
                    takes or _always, extra_bytes or _nothing_extra)
        _CELLS[key] = dataclasses.replace(old, native={**old.native, layout: form})
        return execute

    return register


def native_cells(layout: str) -> tuple[tuple[str, str], ...]:
    """The cells with a native form for `layout` (every cell runs every layout; these do
    without transposes, for the specs their form takes)."""
    check_layout(layout)
    return tuple(key for key in cells() if layout == NCHW or layout in _CELLS[key].native)


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


def supports(conv_type: str, algorithm: str, spec: ConvSpec, layout: str = NCHW) -> str | None:
    """None if `algorithm` can run `conv_type` on `spec` in `layout`, else a one-line reason.

    Besides the cell's own rules, a spec whose memory estimate (`memory_estimate`, the
    layout's transposes included) exceeds the memory limit is refused with the estimate
    and the limit.
    """
    check_layout(layout)
    return _shape_reason(conv_type, algorithm, spec) or _memory_reason(
        conv_type, algorithm, spec, layout)


def layout_extra_bytes(conv_type: str, algorithm: str, spec: ConvSpec, layout: str) -> int:
    """What running `spec` in `layout` holds besides kernels.memory's NCHW estimate: the
    transposes' buffers (kernels.layout.transpose_bytes) where the cell has no native form
    for it, a native form's own extra buffers, the oracle's float64 output transposed."""
    if layout == NCHW:
        return 0
    if algorithm == "reference":  # the float64 output's channels-last copy
        return 8 * spec.n * spec.k * math.prod(spec.out_size)
    cell_ = _CELLS.get((conv_type, algorithm))
    return 0 if cell_ is None else int(cell_.form(layout, spec).extra_bytes(spec))


def memory_estimate(conv_type: str, algorithm: str, spec: ConvSpec,
                    layout: str = NCHW, mode: str = "call") -> dict:
    """kernels.memory.estimate for `spec` in `layout` (`mode` "call" or "plan": a plan
    also holds its weight copy and prepared state): a layout's extra buffers
    (`layout_extra_bytes`) are part of its workspace and total."""
    check_layout(layout)
    parts = memory.estimate(conv_type, algorithm, spec, mode)
    extra = layout_extra_bytes(conv_type, algorithm, spec, layout)
    if extra:
        parts["workspace"] += extra
        parts["total"] += extra
    return parts


def _memory_reason(conv_type: str, algorithm: str, spec: ConvSpec, layout: str,
                   mode: str = "call") -> str | None:
    """memory.reason, the layout's extra buffers counted (NCHW: exactly memory.reason)."""
    why = memory.reason(conv_type, algorithm, spec, mode)
    if why or layout == NCHW:
        return why
    extra = layout_extra_bytes(conv_type, algorithm, spec, layout)
    limit = memory.memory_limit()
    est = memory_estimate(conv_type, algorithm, spec, layout, mode)
    if not extra or est["total"] <= limit:
        return None
    what = "the reference" if algorithm == "reference" else algorithm
    return (f"size: {what} would need an estimated {memory.fmt(est['total'])} for {conv_type} "
            f"in layout {layout} ({memory.fmt(extra)} of it the NCHW copies of input and "
            f"output), over the memory limit of {memory.fmt(limit)}")


def check_memory(conv_type: str, algorithm: str, spec: ConvSpec, layout: str = NCHW,
                 mode: str = "call") -> None:
    """Raise ValueError if the estimate for `spec` in `layout` (a call, or a plan and its
    call) exceeds the memory limit."""
    why = _memory_reason(conv_type, algorithm, spec, layout, mode)
    if why:
        raise ValueError(why)


def _runnable_form(conv_type: str, algorithm: str, spec: ConvSpec, layout: str) -> Form:
    """The cell's form for `layout`, after its shape rules and the memory limit accepted
    `spec`."""
    try:
        cell_ = _CELLS.get((conv_type, algorithm))
    except TypeError:  # an unhashable name: _refuse says which
        cell_ = None
    if cell_ is None or not isinstance(spec, ConvSpec):
        _refuse(conv_type, algorithm, spec, layout)  # raises: no such cell, or not a spec
    return _accepted(cell_, conv_type, algorithm, spec, memory.memory_limit(), layout)


@functools.lru_cache(maxsize=4096)
def _accepted(cell_: Cell, conv_type: str, algorithm: str, spec: ConvSpec, limit: int,
              layout: str) -> Form:
    """`cell_`'s form for `layout` once it accepted `spec` under memory limit `limit`.
    Cached (a refusal raises and is not): on a tiny layer these checks were a third of
    the call. The cell is part of the key, so a cell registered anew is checked anew."""
    _refuse(conv_type, algorithm, spec, layout)
    return cell_.form(layout, spec)


def _refuse(conv_type: str, algorithm: str, spec: ConvSpec, layout: str) -> None:
    """Raise ValueError if the cell cannot run `spec` (its shape rules, the memory limit)."""
    why = _shape_reason(conv_type, algorithm, spec)
    if why:
        raise ValueError(f"algorithm: {algorithm} cannot run {conv_type} on {spec}: {why}")
    check_memory(conv_type, algorithm, spec, layout)


def run(conv_type: str, algorithm: str, spec: ConvSpec, x, weights,
        layout: str = NCHW) -> np.ndarray:
    """y = conv_type(x, weights) computed by `algorithm`; float32 in and out, x and y in
    `layout` (kernels.layout: "nchw", or "nhwc" channels-last).

    The cell's weight-only work (packing, transforms, factorisations) happens
    inside the call: `run` is `plan(...)(x)` in one step. Refused (ValueError)
    before anything is allocated when the memory estimate exceeds the limit (see
    kernels.memory)."""
    x, weights = check_inputs(conv_type, spec, x, weights, layout)
    form = _runnable_form(conv_type, algorithm, spec, layout)
    return form.execute(spec, x, form.prepare(spec, weights))


class Plan:
    """One cell prepared for one spec, one layout and one set of weights: `plan(x)` runs
    the data path.

    Built by `plan(...)`; holds the cell's state (packed or transformed weights),
    never the caller's arrays, so changing those after planning changes nothing.
    """

    __slots__ = ("conv_type", "algorithm", "spec", "layout", "_execute", "_state", "_x_shape")

    def __init__(self, conv_type: str, algorithm: str, spec: ConvSpec, form: Form, state,
                 layout: str = NCHW):
        self.conv_type, self.algorithm, self.spec = conv_type, algorithm, spec
        self.layout = layout
        self._execute = form.execute
        self._state = state
        self._x_shape = input_shape(spec, layout)

    def __call__(self, x) -> np.ndarray:
        return self._execute(self.spec, check_x(self.spec, x, self.layout, self._x_shape),
                             self._state)

    def __repr__(self) -> str:
        return f"Plan({self.conv_type}/{self.algorithm}, {self.spec}, {self.layout})"


def plan(conv_type: str, algorithm: str, spec: ConvSpec, weights, layout: str = NCHW) -> Plan:
    """A callable `plan(x) -> y` equal to `run(conv_type, algorithm, spec, x, weights,
    layout)`, with the weight-only work done once, here (the `prepared` timing mode).

    Refuses (ValueError) what `run` refuses: bad weights, a spec the cell cannot
    run, a memory estimate over the limit, an unknown layout. The weights are copied
    before the cell prepares them: a plan is a snapshot of the weights it was given."""
    check_layout(layout)
    weights = check_weights(conv_type, spec, weights)
    form = _runnable_form(conv_type, algorithm, spec, layout)
    check_memory(conv_type, algorithm, spec, layout, mode="plan")  # its copies and state too
    weights = tuple(w.copy() for w in weights)
    return Plan(conv_type, algorithm, spec, form, form.prepare_for_plan(spec, weights), layout)


def multiplications(conv_type: str, algorithm: str, spec: ConvSpec) -> int:
    """Multiplications `algorithm` performs on `spec`, padded taps included (arithmetic
    only: not subject to the memory limit)."""
    why = _shape_reason(conv_type, algorithm, spec)
    if why:
        raise ValueError(f"algorithm: {algorithm} cannot run {conv_type} on {spec}: {why}")
    return int(_CELLS[(conv_type, algorithm)].multiplications(spec))
