"""The accuracy contract (kernels.accuracy), the queryable catalogue (kernels.types.select)
and the algorithm declarations (kernels.registry)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import kernels
from kernels import ConvSpec, accuracy, registry, types
from kernels.accuracy_table import measure


# ------------------------------------------------------------------ the error metric
def test_error_is_relative_to_the_output_scale():
    ref = np.array([2.0, -4.0])
    assert accuracy.error(np.float32([2, -4.004]), ref) == pytest.approx(1e-3, rel=1e-4)
    # scale-free: the same data 1e-20 smaller reads the same error
    tiny = accuracy.error(np.float32([2e-20, -4.004e-20]), ref * 1e-20)
    assert tiny == pytest.approx(1e-3, rel=1e-4)


def test_error_on_an_all_zero_reference_is_absolute():
    assert accuracy.error(np.float32([0, 0]), np.zeros(2)) == 0.0
    assert accuracy.error(np.float32([0, 3e-7]), np.zeros(2)) == pytest.approx(3e-7, rel=1e-4)


def test_error_of_non_finite_outputs():
    ref = np.array([1.0, 2.0])
    assert accuracy.error(np.float32([1, np.nan]), ref) == math.inf
    assert accuracy.error(np.float32([np.inf, 2]), ref) == math.inf
    # where the reference is not finite, the same value is right and another is not
    assert accuracy.error(np.float32([np.nan, 2]), np.array([np.nan, 2.0])) == 0.0
    assert accuracy.error(np.float32([np.inf, 2]), np.array([-np.inf, 2.0])) == math.inf


def test_bound_grows_with_sqrt_l_above_its_floor():
    b = accuracy.Bound(scale=8, floor=2e-6)
    assert b(1) == b(4) == 2e-6  # 8 eps sqrt(4) = 1.9e-6
    assert b(10_000) == pytest.approx(8 * accuracy.EPS32 * 100)
    assert b(40_000) == pytest.approx(2 * b(10_000))


def test_reduction_length():
    assert accuracy.reduction_length("conv2d", ConvSpec(c=64, k=8, size=9, kernel=3)) == 576
    assert accuracy.reduction_length(
        "depthwise", ConvSpec(c=8, k=8, groups=8, size=9, kernel=3)) == 9
    assert accuracy.reduction_length(
        "conv3d", ConvSpec(c=512, k=4, size=(4, 4, 4), kernel=3)) == 13_824


# ------------------------------------------------- the bounds: margin and a wrong tap
REALISTIC = ConvSpec(n=2, c=512, k=32, size=7, kernel=3, padding=1)  # L = 4608


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "winograd_f2", "winograd_f4",
                                       "separable"])
def test_bound_has_margin_and_catches_a_wrong_tap(algorithm):
    m = measure(algorithm, "conv2d", REALISTIC, seeds=(0,))
    assert m["worst"] * 5 <= m["bound"] < m["wrong_tap"]


def test_every_algorithm_declared_a_bound():
    for algorithm in kernels.ALGORITHMS:
        assert isinstance(registry.algorithm_bound(algorithm), accuracy.Bound)
        assert registry.algorithm(algorithm).summary


# ------------------------------------------------------------- declarations
def test_algorithms_is_the_declaration_order():
    assert isinstance(kernels.ALGORITHMS, tuple)
    assert kernels.ALGORITHMS == registry.ALGORITHMS
    assert kernels.ALGORITHMS[:2] == ("direct", "im2col")


def test_declaring_a_name_twice():
    direct = registry.algorithm("direct")
    registry.declare_algorithm("direct", summary=direct.summary, accuracy=direct.accuracy)
    with pytest.raises(ValueError, match=r"^name: algorithm 'direct' is already declared"):
        registry.declare_algorithm("direct", summary="other", accuracy=direct.accuracy)
    with pytest.raises(ValueError, match=r"^accuracy: must be a kernels.accuracy.Bound"):
        registry.declare_algorithm("no_such_algorithm", summary="x", accuracy=1e-5)


def test_an_undeclared_algorithm_cannot_register_cells():
    with pytest.raises(ValueError, match=r"^algorithm: unknown algorithm 'no_such_algorithm'"):
        registry.cell("conv2d", "no_such_algorithm")
    with pytest.raises(ValueError, match=r"^algorithm: unknown"):
        accuracy.bound("no_such_algorithm", "conv2d", REALISTIC)


# ------------------------------------------------------------------ the catalogue
def test_select_by_properties():
    assert types.select(ndim=3) == ("conv3d",)
    assert types.select(kernel="1x1") == ("pointwise", "pointwise_grouped")
    assert types.select(transposed=True) == ("transposed2d",)
    assert types.select(shuffle=True) == ("shuffled_grouped",)
    assert types.select(composition="product") == ("spatially_separable", "flattened")
    assert types.select(composition="stages") == ("depthwise_separable",)
    assert set(types.select(grouping=("many", "depthwise"))) == {
        "depthwise", "grouped", "shuffled_grouped", "pointwise_grouped"}
    assert types.select() == kernels.CONV_TYPES
    with pytest.raises(ValueError, match=r"^properties: 'colour' is not a type property"):
        types.select(colour="red")


def test_properties_drive_the_rules_and_weight_names():
    t = types.conv_type("flattened")
    assert t.weight_names == ("lat", "ver", "hor")
    assert types.conv_type("depthwise_separable").weight_names == ("dw", "pw")
    assert types.conv_type("conv2d").weight_names == ("w",)
    with pytest.raises(ValueError, match=r"^groups: must be at least 2"):
        types.check_spec("grouped", ConvSpec(c=4, k=4, size=5, kernel=3))
    with pytest.raises(ValueError, match=r"^grouping: must be one of"):
        types.ConvType("x", "0", "x", lambda s: (), grouping="some")
    with pytest.raises(ValueError, match=r"^factors: "):
        types.ConvType("x", "0", "x", lambda s: (), composition="product")


@pytest.mark.parametrize("conv_type", types.select(composition="product"))
def test_product_types_multiply_out_their_factors(conv_type):
    spec = ConvSpec(c=2, k=3, size=6, kernel=(2, 3))
    _, w = kernels.make_inputs(conv_type, spec)
    full = types.full_kernel(conv_type, spec, w)
    assert full.shape == (3, 2, 2, 3)
    if conv_type == "spatially_separable":
        np.testing.assert_allclose(full[1, 0], np.outer(w[0][1, 0], w[1][1, 0]), rtol=1e-6)


def test_algorithms_follow_the_package_list():
    """ALGORITHMS is in the order of kernels.ALGORITHM_PACKAGES (the public order), even
    though the Winograd pipeline imports the fft package first."""
    assert kernels.ALGORITHMS == ("direct", "im2col", "winograd_f2", "winograd_f4", "separable",
                                  "fft", "auto")
