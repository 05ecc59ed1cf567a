"""kernels.plan: the weight-only work done once, then `plan(x)` equal to `kernels.run`.

Driven by the registry like the conformance test: every registered cell, on specs
drawn from its type's properties. Outputs start as NaN (conftest), and equality is
bit for bit, so an element a prepared path leaves unwritten or sums in another
order fails.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import kernels
from kernels import registry

from .conftest import temporary_algorithm
from .strategies import on_supported_specs

EXAMPLES = 4  # per cell: the conformance test covers accuracy, this only the plan/run split


def _three_calls(conv_type, algorithm, spec, seed):
    """Plan once, call it on two inputs and on the first again; each equals `run`."""
    x1, w = kernels.make_inputs(conv_type, spec, seed=seed)
    x2, _ = kernels.make_inputs(conv_type, spec, seed=seed + 1)
    p = kernels.plan(conv_type, algorithm, spec, w)
    y1, y2, y1_again = p(x1), p(x2), p(x1)
    for x, y in ((x1, y1), (x2, y2), (x1, y1_again)):
        np.testing.assert_array_equal(y, kernels.run(conv_type, algorithm, spec, x, w))
    assert not np.array_equal(y1, y2)


@pytest.mark.parametrize("conv_type, algorithm", registry.cells())
def test_plan_equals_run(conv_type, algorithm):
    ran = on_supported_specs(conv_type, algorithm, lambda spec, seed: _three_calls(
        conv_type, algorithm, spec, seed), EXAMPLES)
    assert ran, "no supported spec ran"


SPEC = kernels.ConvSpec(n=1, c=4, k=6, size=9, kernel=3, padding=1)


@pytest.mark.parametrize("conv_type, algorithm",
                         [("conv2d", a) for a in kernels.ALGORITHMS
                          if kernels.supports("conv2d", a, SPEC) is None]
                         + [("depthwise_separable", "separable"),
                            ("flattened", "separable")])
def test_plan_is_a_snapshot_of_the_weights(conv_type, algorithm):
    """Changing the caller's weights after planning changes nothing (the plan copies)."""
    x, w = kernels.make_inputs(conv_type, SPEC, seed=3)
    before = kernels.run(conv_type, algorithm, SPEC, x, w)
    p = kernels.plan(conv_type, algorithm, SPEC, w)
    for a in w:
        a *= -2
    np.testing.assert_array_equal(p(x), before)
    assert not np.array_equal(kernels.run(conv_type, algorithm, SPEC, x, w), before)


def test_plan_repr_names_the_cell_and_the_spec():
    _, w = kernels.make_inputs("conv2d", SPEC)
    text = repr(kernels.plan("conv2d", "im2col", SPEC, w))
    assert "conv2d/im2col" in text and str(SPEC) in text


@pytest.mark.parametrize("bad, field", [
    (np.zeros((1, 4, 9, 8), np.float32), "x: shape"),
    (np.zeros((1, 4, 9, 9), np.float64), "x: dtype"),
    ([[0.0]], "x: expected a numpy array"),
])
def test_a_plan_refuses_a_bad_input(bad, field):
    _, w = kernels.make_inputs("conv2d", SPEC)
    p = kernels.plan("conv2d", "direct", SPEC, w)
    with pytest.raises(ValueError, match=field):
        p(bad)


def test_plan_refuses_what_run_refuses():
    x, w = kernels.make_inputs("conv2d", SPEC)
    one = SPEC.replace(kernel=1, padding=0)
    x1, w1 = kernels.make_inputs("pointwise", one)
    cases = [  # (plan's arguments, the input run gets, the error)
        (("conv2d", "direct", SPEC, (w[0][:, :2],)), x, "weights\\[w\\]: shape"),
        (("conv2d", "direct", SPEC, (w[0].astype(np.float64),)), x, "weights\\[w\\]: dtype"),
        (("conv2d", "direct", SPEC, w + w), x, "weights: conv2d takes 1"),
        (("conv2d", "winograd_f4", SPEC.replace(stride=2), w), x[..., :9, :9], "algorithm: "),
        (("pointwise", "separable", one, w1), x1, "algorithm: "),
        (("conv9d", "direct", SPEC, w), x, "conv_type: "),
        (("conv2d", "no_such_algorithm", SPEC, w), x, "algorithm: "),
    ]
    for args, x_run, match in cases:
        with pytest.raises(ValueError, match=match):
            kernels.plan(*args)
        with pytest.raises(ValueError, match=match):
            kernels.run(*args[:3], x_run, args[3])


def test_plan_checks_the_memory_limit():
    big = kernels.ConvSpec(n=8, c=64, k=64, size=56, kernel=3, padding=1)
    _, w = kernels.make_inputs("conv2d", big.replace(n=1))
    kernels.set_memory_limit("1M")
    try:
        with pytest.raises(ValueError, match="memory"):
            kernels.plan("conv2d", "im2col", big, w)
    finally:
        kernels.set_memory_limit(None)


@pytest.fixture
def scratch_registry(monkeypatch):
    """An algorithm "scratch" the test registers conv2d cells of (prepare steps and all)."""
    temporary_algorithm(monkeypatch, "scratch", "a test cell")


def test_prepare_runs_once_per_plan_and_once_per_run(scratch_registry):
    prepared = []

    def prepare(spec, weights):
        prepared.append(spec)
        return ("packed", weights[0] * 2)

    @registry.cell("conv2d", "scratch", prepare=prepare)
    def execute(spec, x, state):
        tag, w2 = state
        assert tag == "packed"
        return kernels.run("conv2d", "direct", spec, x, (w2,))

    x, w = kernels.make_inputs("conv2d", SPEC)
    p = kernels.plan("conv2d", "scratch", SPEC, w)
    ys = [p(x) for _ in range(3)]
    assert len(prepared) == 1
    expected = kernels.run("conv2d", "direct", SPEC, x, (w[0] * 2,))
    for y in ys:
        np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(kernels.run("conv2d", "scratch", SPEC, x, w), expected)
    assert len(prepared) == 2


def test_a_plan_uses_prepare_for_plan_where_a_cell_has_one(scratch_registry):
    """run prepares for one call, plan for many; the one execute takes either state."""
    calls = []

    def prepare(spec, weights):
        calls.append("prepare")
        return weights

    def prepare_for_plan(spec, weights):
        calls.append("prepare_for_plan")
        return weights

    registry.cell("conv2d", "scratch", prepare=prepare, prepare_for_plan=prepare_for_plan)(
        lambda spec, x, weights: kernels.run("conv2d", "direct", spec, x, weights))
    x, w = kernels.make_inputs("conv2d", SPEC)
    p = kernels.plan("conv2d", "scratch", SPEC, w)
    assert calls == ["prepare_for_plan"]
    np.testing.assert_array_equal(p(x), kernels.run("conv2d", "scratch", SPEC, x, w))
    assert calls == ["prepare_for_plan", "prepare"]


def test_a_cell_without_prepare_gets_the_weights(scratch_registry):
    """Registered the old way, `execute(spec, x, weights)`: its state is the weights tuple."""
    seen = []

    @registry.cell("conv2d", "scratch")
    def execute(spec, x, weights):
        seen.append(weights)
        return kernels.run("conv2d", "direct", spec, x, weights)

    x, w = kernels.make_inputs("conv2d", SPEC)
    y = kernels.plan("conv2d", "scratch", SPEC, w)(x)
    assert isinstance(seen[0], tuple) and len(seen[0]) == 1
    np.testing.assert_array_equal(seen[0][0], w[0])
    np.testing.assert_array_equal(y, kernels.run("conv2d", "direct", SPEC, x, w))


@pytest.mark.parametrize("conv_type, spec", [
    ("conv2d", kernels.ConvSpec(n=1, c=6, k=40, size=9, kernel=3, padding=1)),
    ("conv3d", kernels.ConvSpec(n=1, c=3, k=12, size=(5, 5, 5), kernel=(3, 3, 3),
                                padding=(1, 1, 1))),
])
def test_separable_plan_follows_the_thread_count(conv_type, spec):
    """The term order is chunked per thread count: a plan made under one count and called
    under another re-orders its terms and still equals run."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 Numba threads")
    x, w = kernels.make_inputs(conv_type, spec, seed=1)
    saved = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        p = kernels.plan(conv_type, "separable", spec, w)
        numba.set_num_threads(1)
        np.testing.assert_array_equal(p(x), kernels.run(conv_type, "separable", spec, x, w))
    finally:
        numba.set_num_threads(saved)


@pytest.mark.parametrize("algorithm", ["winograd_f2", "winograd_f4", "fft"])
def test_a_plan_keeps_the_transformed_filter_and_gives_the_same_result(algorithm):
    """A tiled plan reads its filter transform back instead of computing it in the product
    stage (or once per call): same products, so the same bits, with several tile chunks."""
    spec = kernels.ConvSpec(n=2, c=48, k=40, size=(40, 44), kernel=3, padding=1)
    x, w = kernels.make_inputs("conv2d", spec, seed=5)
    p = kernels.plan("conv2d", algorithm, spec, w)
    assert p._state.transformed
    np.testing.assert_array_equal(p(x), kernels.run("conv2d", algorithm, spec, x, w))
