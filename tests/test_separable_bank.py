"""The separable algorithm's channel-bank path (kernels/separable/bank.py, tucker.py): the
per-input-channel separable filter bank and its 1x1 channel mix, on the shapes that
take it (wide dense 2-D layers and conv3d)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import kernels
from kernels import ConvSpec
from kernels.separable import cells, separable_multiplications
from kernels.separable import counts as sep_counts
from kernels.separable.bank import BankPlan, execute_bank, prepare_bank
from kernels.separable.tucker import axis_ranks, channel_bank

from .conftest import assert_conforms
from .strategies import MIN_OUTPUTS, specs

BANK_TYPES = ("conv2d", "dilated2d", "grouped", "shuffled_grouped", "conv3d")
C3D_CONV5A = ConvSpec.parse("mb1ic512id2ih7oc512od2oh7kd3kh3pd1ph1")


def _term_count(conv_type):
    return sep_counts.conv3d_count if conv_type == "conv3d" else sep_counts.dense_count


def takes_bank(conv_type: str, spec: ConvSpec) -> bool:
    return cells.uses_bank(spec, _term_count(conv_type))


@st.composite
def bank_specs(draw, conv_type: str):
    """A small spec of `conv_type` with enough outputs per group (8 to 14) that the bank
    path counts fewer multiplications than the terms: odd and even sizes, stride,
    padding, dilation, groups, batch up to 2 and flip, as in tests/strategies.py."""
    spec = draw(specs(conv_type, max_size=8, max_channels=4))
    spec = spec.replace(k=spec.groups * draw(st.integers(8, 14)))
    assume(spec.n * spec.k * math.prod(spec.out_size) >= MIN_OUTPUTS)
    assume(takes_bank(conv_type, spec))
    return spec


def _prepared_state(conv_type, spec, w):
    return kernels.plan(conv_type, "separable", spec, w)._state


@pytest.mark.parametrize("conv_type", BANK_TYPES)
@settings(max_examples=12, suppress_health_check=[HealthCheck.filter_too_much,
                                                  HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 9))
def test_bank_path_matches_reference(conv_type, data, seed):
    spec = data.draw(bank_specs(conv_type))
    x, w, y = assert_conforms(conv_type, "separable", spec, seed=seed)
    p = kernels.plan(conv_type, "separable", spec, w)
    assert isinstance(p._state, BankPlan)
    np.testing.assert_array_equal(p(x), y)  # prepared mode is bit-identical to run


@pytest.mark.parametrize("conv_type, spec", [
    ("conv3d", ConvSpec(n=2, c=6, k=24, size=(4, 7, 6), kernel=3, padding=1)),
    ("conv3d", ConvSpec(n=1, c=4, k=16, size=(5, 8, 9), kernel=(3, 2, 3), stride=(1, 2, 2),
                        dilation=(2, 1, 1), padding=(2, 0, 1), groups=2, flip=True)),
    ("conv2d", ConvSpec(n=2, c=5, k=32, size=(13, 10), kernel=(3, 5), stride=(2, 1),
                        padding=(1, 2), flip=True)),
    ("shuffled_grouped", ConvSpec(n=1, c=6, k=36, size=9, kernel=3, padding=1, groups=3)),
    ("dilated2d", ConvSpec(n=1, c=4, k=16, size=(12, 11), kernel=3, dilation=(2, 3),
                           padding=(2, 3))),
])
def test_bank_path_on_fixed_shapes(conv_type, spec):
    assert takes_bank(conv_type, spec)
    assert_conforms(conv_type, "separable", spec)


def test_conv5a_takes_the_bank_at_near_direct_count():
    """Issue 13: the C3D conv5a layer runs as one GEMM plus ~1% of passes (the
    per-(k, c) terms counted 2.8x direct's multiplications)."""
    assert takes_bank("conv3d", C3D_CONV5A)
    sep = kernels.multiplications("conv3d", "separable", C3D_CONV5A)
    direct = kernels.multiplications("conv3d", "direct", C3D_CONV5A)
    assert sep == sep_counts.bank_count(C3D_CONV5A)
    assert direct < sep < 1.02 * direct
    assert sep_counts.conv3d_count(C3D_CONV5A) > 2.5 * direct


def test_a_narrower_conv5a_conforms():
    spec = C3D_CONV5A.replace(c=48, k=64)
    assert takes_bank("conv3d", spec)
    assert_conforms("conv3d", "separable", spec, seed=2)


def test_depthwise_keeps_the_terms():
    """One output per group: the bank (9 planes per channel for a 3x3) would cost more
    than the 3 rank-1 terms, so the choice keeps the terms."""
    spec = ConvSpec(n=1, c=8, k=8, groups=8, size=9, kernel=3, padding=1)
    assert not takes_bank("depthwise", spec)
    assert kernels.multiplications("depthwise", "separable", spec) == sep_counts.dense_count(spec)
    _, w = kernels.make_inputs("depthwise", spec)
    assert not isinstance(_prepared_state("depthwise", spec, w), BankPlan)


# ------------------------------------------------------------------------ the factoring

def _reassemble(bank, groups, kernel):
    """w[k, c/g, kd, kh, kw] from the bases and core (float64)."""
    A, U, V = (b.astype(np.float64) for b in bank.bases)
    K = bank.core.shape[0]
    C = A.shape[0]
    cg, kg = C // groups, K // groups
    core = bank.core.astype(np.float64).reshape(groups, kg, cg, *bank.ranks)
    core = core.swapaxes(1, 2).reshape(C, kg, *bank.ranks)
    w = np.einsum("ckijl,cai,cbj,cel->ckabe", core, A, U, V)
    return w.reshape(groups, cg, kg, *kernel).swapaxes(1, 2).reshape(K, cg, *kernel)


@pytest.mark.parametrize("groups, kernel", [(1, (3, 3, 3)), (2, (2, 3, 4)), (3, (1, 5, 3))])
def test_bank_is_an_exact_change_of_basis(groups, kernel):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6 * groups, 4, *kernel)).astype(np.float32)
    bank = channel_bank(w, groups)
    assert bank.ranks == axis_ranks(kernel, 6) == kernel
    for b in bank.bases:  # orthogonal columns per channel, |taps| summing to (1/2, 1]
        gram = np.einsum("cai,caj->cij", b, b)
        off = gram - np.einsum("cii->ci", gram)[:, :, None] * np.eye(b.shape[2])
        assert np.abs(off).max() < 1e-6
        l1 = np.abs(b.astype(np.float64)).sum(axis=1)
        assert (l1 <= 1 + 1e-6).all() and (l1 > 0.5).all()
    err = np.abs(_reassemble(bank, groups, kernel) - w).max() / np.abs(w).max()
    assert err < 1e-6


def test_low_multilinear_rank_drops_directions():
    """Kernels whose every output channel uses the same separable filter of its input
    channel (times a scale) need one bank plane per channel: ranks (1, 1, 1), and the
    count follows."""
    rng = np.random.default_rng(1)
    spec = ConvSpec(n=1, c=3, k=12, size=(4, 6, 6), kernel=3, padding=1)
    a, u, v = (rng.standard_normal((3, 3)) for _ in range(3))
    scale = rng.standard_normal((12, 3))
    w = np.einsum("kc,ca,cb,ce->kcabe", scale, a, u, v).astype(np.float32)
    assert channel_bank(w, 1).ranks == (1, 1, 1)
    assert takes_bank("conv3d", spec)
    full = kernels.multiplications("conv3d", "separable", spec)
    low = separable_multiplications("conv3d", spec, (w,))
    assert low == sep_counts.bank_count(spec, (1, 1, 1)) and low * 10 < full
    assert_conforms("conv3d", "separable", spec, weights=(w,))


def test_zero_weights_give_zero_output():
    spec = ConvSpec(n=1, c=2, k=10, size=6, kernel=3, padding=1)
    x, _ = kernels.make_inputs("conv2d", spec)
    w = np.zeros((10, 2, 3, 3), np.float32)
    plan = prepare_bank(spec, w)
    assert plan.bank.ranks == (1, 1, 1)
    y = execute_bank(spec, x, plan)
    assert y.shape == spec.output_shape and not y.any()


def test_bad_bank_input_names_the_field():
    with pytest.raises(ValueError, match=r"^w: "):
        channel_bank(np.zeros((4, 2, 3, 3), np.float32), 1)
    with pytest.raises(ValueError, match=r"^groups: "):
        channel_bank(np.zeros((4, 2, 1, 3, 3), np.float32), 3)


# ------------------------------------------------------------------------ counts

def test_bank_count_by_hand():
    spec = ConvSpec(n=2, c=3, k=8, size=(4, 6, 5), kernel=(3, 3, 2), stride=(1, 2, 1),
                    padding=(1, 1, 0))
    OD, OH, OW = spec.out_size
    Hp, Wp = (OH - 1) * 2 + 3, OW + 1
    rd, rh, rw = 3, 3, 2
    per_channel = (rd * 3 * OD * Hp * Wp + rd * rh * 3 * OD * OH * Wp
                   + rd * rh * rw * 2 * OD * OH * OW + 8 * rd * rh * rw * OD * OH * OW)
    assert sep_counts.bank_count(spec) == 2 * 3 * per_channel
    x, w = kernels.make_inputs("conv3d", spec)
    assert separable_multiplications("conv3d", spec, w) == sep_counts.bank_count(spec)


def test_registered_count_is_the_cheaper_path():
    for conv_type, spec in [("conv2d", ConvSpec(c=4, k=32, size=9, kernel=3)),
                            ("conv2d", ConvSpec(c=4, k=2, size=9, kernel=3)),
                            ("conv3d", ConvSpec(c=2, k=2, size=(5, 5, 5), kernel=3))]:
        term = _term_count(conv_type)(spec)
        bank = sep_counts.bank_count(spec)
        assert kernels.multiplications(conv_type, "separable", spec) == min(term, bank)
        assert takes_bank(conv_type, spec) == (bank < term)
