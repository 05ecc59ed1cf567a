"""The channels-in-lanes depthwise nest and the fused depthwise -> pointwise kernel of the
direct algorithm: the register transposes, the shapes that take each path (odd and even
sizes, strides 1-2, padding, kernels 3 and 5, flip, batch > 1, channel counts that are
not whole vectors), bands and channel chunks forced small, and plan == run."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from kernels import ConvSpec

from .conftest import assert_conforms
from .strategies import specs

depthwise = importlib.import_module("kernels.direct.depthwise")
fused = importlib.import_module("kernels.direct.fused")
lane_block = importlib.import_module("kernels.direct.lane_block")
CL = lane_block.CL


@pytest.fixture(autouse=True)
def fused_form(monkeypatch):
    """depthwise_separable's direct cell times fused against the two stages and keeps the
    faster (kernels.direct.depthwise_separable): these tests are of the fused form."""
    from kernels import measured

    monkeypatch.setattr(measured, "_chosen", {})
    monkeypatch.setenv(measured.ENV, "first")


def _lanes_specs(conv_type: str):
    """Small specs (so the depthwise nest is channels in lanes) with up to three channel
    blocks of the target's vector width, strides 1-2, kernels 3 and 5."""
    return specs(conv_type, max_size=11, max_channels=2 * CL + 3, kernel_sizes=(3, 5),
                 strides=(1, 2), dilations=(1, 1, 2)).filter(
        lambda s: s.n * s.k * s.out_size[0] * s.out_size[1] >= 8)


def _assert_plan_equals_run(conv_type: str, spec: ConvSpec, seed: int = 0) -> None:
    x, w = kernels.make_inputs(conv_type, spec, seed=seed)
    np.testing.assert_array_equal(kernels.plan(conv_type, "direct", spec, w)(x),
                                  kernels.run(conv_type, "direct", spec, x, w))


def test_lanes_in_and_out_are_transposes():
    """lanes_in puts CL pixels of nl channels into lanes (zeros past nl) at the places a
    table names; lanes_out takes them back; both against NumPy transposes."""
    from numba import njit

    @njit
    def round_trip(x, src, cstride, nl, dst, base):
        xin = np.full(base + (CL + 2) * CL, np.float32(-1))
        lane_block.lanes_in(x, src, cstride, nl, xin, base, dst, 0)
        back = np.full(CL * cstride, np.float32(-1))
        lane_block.lanes_out(xin, base + dst[0], back, 0, cstride, nl)
        return xin, back

    rng = np.random.default_rng(0)
    cstride = CL + 3
    x = rng.standard_normal(CL * cstride + 5).astype(np.float32)
    dst = np.arange(CL, dtype=np.int64) * CL  # pixel q at q*CL: a contiguous run
    for nl in (CL, CL - 1, 1):
        xin, back = round_trip(x, 2, cstride, nl, dst, 7)
        got = xin[7:7 + CL * CL].reshape(CL, CL)  # [pixel, lane]
        want = np.zeros((CL, CL), np.float32)
        want[:, :nl] = np.stack([x[2 + l * cstride:2 + l * cstride + CL] for l in range(nl)], 1)
        np.testing.assert_array_equal(got, want)
        assert (xin[:7] == -1).all() and (xin[7 + CL * CL:] == -1).all()
        b = back.reshape(CL, cstride)
        np.testing.assert_array_equal(b[:nl, :CL], want[:, :nl].T)
        assert (b[nl:] == -1).all() and (b[:, CL:] == -1).all()


def test_one_rule_picks_the_nest():
    big = ConvSpec(c=32, k=32, groups=32, size=112, kernel=3, padding=1)
    assert depthwise.uses_planes(big)
    assert not depthwise.uses_planes(big.replace(stride=2))  # strided: lanes
    assert not depthwise.uses_planes(big.replace(size=28))  # small plane: lanes


@settings(max_examples=20)
@given(spec=_lanes_specs("depthwise"), seed=st.integers(0, 9))
def test_depthwise_lanes_matches_reference(spec, seed):
    assert not depthwise.uses_planes(spec)
    assert_conforms("depthwise", "direct", spec, seed=seed)


@settings(max_examples=20)
@given(spec=_lanes_specs("depthwise_separable"), seed=st.integers(0, 9))
def test_fused_separable_matches_reference(spec, seed):
    assert_conforms("depthwise_separable", "direct", spec, seed=seed)


# bands and chunks forced small, so that small problems cross every edge: the last band,
# pixel blocks that straddle rows, a channel chunk of one group of PT output channels
EDGES = [
    ConvSpec(n=2, c=CL + 3, k=13, size=(13, 10), kernel=3, padding=1),
    ConvSpec(n=1, c=2 * CL, k=7, size=(12, 9), kernel=3, stride=2, padding=1, flip=True),
    ConvSpec(n=2, c=5, k=20, size=(9, 14), kernel=5, stride=(1, 2), padding=2),
    ConvSpec(n=1, c=3, k=2, size=(3, 4), kernel=3, padding=1),  # fewer pixels than a vector
]


@pytest.mark.parametrize("spec", EDGES, ids=str)
def test_fused_bands_and_chunks(spec, monkeypatch):
    monkeypatch.setattr(fused, "split_work", lambda P, cp, k, threads: (fused.WIDTH, 2))
    assert_conforms("depthwise_separable", "direct", spec)
    _assert_plan_equals_run("depthwise_separable", spec)


@pytest.mark.parametrize("spec", [s.replace(k=s.c, groups=s.c) for s in EDGES], ids=str)
def test_depthwise_lanes_bands(spec, monkeypatch):
    monkeypatch.setattr(depthwise, "BAND_BYTES", 1)  # one output row per band
    assert_conforms("depthwise", "direct", spec)
    _assert_plan_equals_run("depthwise", spec)


@pytest.mark.parametrize("P, cp, k, threads, want", [
    (12544, 32, 64, 2, (1568, 1)),  # MobileNetV1 conv2_1: 8 even bands, not 7
    (196, 512, 512, 2, (224, 2)),  # conv5_1: 7 blocks split unevenly; one band, k halves
    (49, 1024, 1024, 1, (64, 1)),  # one thread: nothing to balance
    (784, 16, 6, 2, (416, 1)),  # few output channels: recomputing would cost more
])
def test_split_work(P, cp, k, threads, want):
    assert fused.WIDTH in (8, 16, 32)
    band, chunks = fused.split_work(P, cp, k, threads)
    if fused.WIDTH == 32:
        assert (band, chunks) == want
    assert band % fused.WIDTH == 0 and chunks >= 1


def test_plan_is_a_snapshot_of_the_pointwise_weights():
    spec = EDGES[0]
    x, (dw, pw) = kernels.make_inputs("depthwise_separable", spec)
    p = kernels.plan("depthwise_separable", "direct", spec, (dw, pw))
    y = p(x)
    pw[:] = 0
    dw[:] = 0
    np.testing.assert_array_equal(p(x), y)
    assert np.abs(y).max() > 0
