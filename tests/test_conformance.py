"""Every registered cell against the float64 oracle, held to its algorithm's accuracy bound.

Driven by the registry: a cell is tested by being registered (kernels.registry.cells()),
on specs drawn from its type's catalogue properties (tests/strategies.py) that the
cell supports. Outputs start as NaN (conftest's autouse fixture), so an element a
kernel never writes fails too. Algorithm-specific behaviour (counts, special paths,
workspace budgets, PyTorch) stays in each algorithm's own tests.
"""

from __future__ import annotations

import pytest

import kernels
from kernels import registry

from .conftest import assert_conforms, temporary_algorithm
from .strategies import on_supported_specs

EXAMPLES = 12  # per cell; specs are small, so compile time (once per kernel) dominates
MIN_RUN = 5  # supported specs each cell must actually run on
# channels-last: fewer specs per cell (most cells run it through the transposes around the
# NCHW form the test above covers); a native form gets the full set in tests/test_layouts.py
NHWC_EXAMPLES = 4
NHWC_MIN_RUN = 2


@pytest.mark.parametrize("conv_type, algorithm", registry.cells())
def test_cell_matches_reference(conv_type, algorithm):
    ran = on_supported_specs(conv_type, algorithm, lambda spec, seed: assert_conforms(
        conv_type, algorithm, spec, seed=seed), EXAMPLES)
    assert len(ran) >= MIN_RUN, f"only {len(ran)} supported specs ran"


@pytest.mark.parametrize("conv_type, algorithm", registry.cells())
def test_cell_matches_reference_channels_last(conv_type, algorithm):
    """Every cell in the NHWC layout (NDHWC in 3-D), against the NCHW oracle transposed."""
    ran = on_supported_specs(conv_type, algorithm, lambda spec, seed: assert_conforms(
        conv_type, algorithm, spec, seed=seed, layout="nhwc"), NHWC_EXAMPLES)
    assert len(ran) >= NHWC_MIN_RUN, f"only {len(ran)} supported specs ran"


def test_every_registered_cell_is_collected():
    """The parametrisation above is the registry's list, and it covers the matrix that
    `convbench list` shows as runnable."""
    runnable = [(t, a) for t in kernels.CONV_TYPES for a in kernels.ALGORITHMS
                if kernels.cell_reason(t, a) is None]
    assert list(registry.cells()) == runnable
    assert len(runnable) >= 54


def test_a_wrong_tap_fails_conformance(monkeypatch):
    """The check the cells pass is one a kernel with one weight off by its own magnitude
    fails, at a realistic reduction length (L = 576)."""
    @temporary_algorithm(monkeypatch, "one_tap_off", "direct with one weight doubled")
    def wrong(spec, x, weights):
        w = weights[0].copy()
        w[0, 0, 1, 1] *= 2
        return kernels.run("conv2d", "direct", spec, x, (w,))

    spec = kernels.ConvSpec(c=64, k=8, size=8, kernel=3, padding=1)
    assert_conforms("conv2d", "direct", spec)
    with pytest.raises(AssertionError, match="error .* > bound"):
        assert_conforms("conv2d", "one_tap_off", spec)
