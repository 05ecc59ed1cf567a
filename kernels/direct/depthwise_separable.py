"""depthwise_separable's direct cell: fused (fused.py) or the two stages in turn, measured.

Fusing keeps each band's depthwise outputs in L2 for the pointwise GEMM; the composite
runs depthwise.py, then pointwise.py on the whole middle tensor. Which is faster is a
property of the CPU, not of the shape alone: fused was 3-20% faster on MobileNetV1's
blocks on the AMD machine it was tuned on, and 2.3x slower than the composite on an
Intel Xeon (Ice Lake server) for 128 channels at 14x14. So the cell times both on the
first call of each problem (`kernels.measured`) and keeps the winner. The fused form
is listed first: it is the choice under CONVBENCH_MEASURE=first.

The state builds a form only when a call needs it: a `run` (call mode) prepares only the
form already chosen for its problem; a plan prepares both, so either can serve it.
"""

from __future__ import annotations

import numba

from .. import measured
from ..spec import ConvSpec
from ..types import separable_stages
from .depthwise import execute_depthwise, prepare_depthwise
from .fused import execute_fused, prepare_fused
from .pointwise import execute_pointwise, prepare_pointwise

FORMS = ("fused", "composite")


class SeparableState:
    """The raw weights and the forms prepared from them so far (each built once)."""

    __slots__ = ("spec", "weights", "_forms")

    def __init__(self, spec: ConvSpec, weights: tuple):
        self.spec, self.weights, self._forms = spec, weights, {}

    def form(self, name: str):
        state = self._forms.get(name)
        if state is None:
            state = self._forms[name] = _PREPARE[name](self.spec, self.weights)
        return state


def _prepare_composite(spec: ConvSpec, weights: tuple) -> tuple:
    dw_spec, pw_spec = separable_stages(spec)
    return prepare_depthwise(dw_spec, weights[0]), prepare_pointwise(pw_spec, weights[1])


def _execute_composite(spec: ConvSpec, x, state: tuple):
    dw_spec, pw_spec = separable_stages(spec)
    return execute_pointwise(pw_spec, execute_depthwise(dw_spec, x, state[0]), state[1])


_PREPARE = {"fused": prepare_fused, "composite": _prepare_composite}
_EXECUTE = {"fused": execute_fused, "composite": _execute_composite}


def prepare_separable(spec: ConvSpec, weights: tuple) -> SeparableState:
    return SeparableState(spec, weights)


def prepare_separable_plan(spec: ConvSpec, weights: tuple) -> SeparableState:
    state = SeparableState(spec, weights)
    for name in FORMS:
        state.form(name)
    return state


def problem(spec: ConvSpec) -> tuple:
    """The key of the measured choice: the problem and the thread count it runs on."""
    return ("depthwise_separable/direct", spec, numba.get_num_threads())


def execute_separable(spec: ConvSpec, x, state: SeparableState):
    key = problem(spec)
    name = measured.chosen_name(key)
    if name is None:
        name = measured.choose(key, {f: (lambda f=f: _EXECUTE[f](spec, x, state.form(f)))
                                     for f in FORMS})
    return _EXECUTE[name](spec, x, state.form(name))
