"""The generated fft codelets (kernels.fft.codelets): each program is exactly the matrix it
replaces (float64), the compiled codelet applies it to float32 data (whole vectors and the
one-column tail, A^T's rows clipped), and it runs fewer operations than the dense rows."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from kernels.fft import codelets
from kernels.fft.matrices import float_matrices

CASES = codelets.CODELETS  # (kind, t, r)


@pytest.mark.parametrize("kind,t,r", CASES)
def test_program_is_the_matrix(kind, t, r):
    prog, M = codelets.program(kind, t, r), codelets.matrix(kind, t, r)
    np.testing.assert_allclose(prog.evaluate(np.eye(M.shape[1])), M, rtol=0, atol=1e-14)


@pytest.mark.parametrize("kind,t,r", CASES)
def test_program_is_cheaper_than_dense_rows(kind, t, r):
    M = codelets.matrix(kind, t, r)
    dense = np.count_nonzero(np.abs(M) > 1e-12)
    assert codelets.program(kind, t, r).arithmetic() < 0.8 * dense


@njit
def _apply(code, dst, do, dst_st, src, so, src_st, n, rows, reps, dst_rep, src_rep):
    codelets.apply_codelet(code, dst, do, dst_st, src, so, src_st, n, rows, reps, dst_rep,
                           src_rep)


@pytest.mark.parametrize("kind,t,r", CASES)
def test_codelet_applies_the_matrix(kind, t, r):
    """Columns past whole vectors (n = LANES + 3), two repeats and, for A^T, only the first
    rows; float32 against the matrix in float64."""
    M = codelets.matrix(kind, t, r)
    rows = M.shape[0] - 4 if kind == "output" else M.shape[0]
    n, st, so, do = codelets.LANES + 3, codelets.LANES + 7, 5, 2
    rep_src, rep_dst = M.shape[1] * st, M.shape[0] * st
    rng = np.random.default_rng(t + r)
    src = rng.standard_normal(so + 2 * rep_src).astype(np.float32)
    dst = np.full(do + 2 * rep_dst, np.nan, np.float32)
    code = codelets.codelet_code(kind, t, r)
    _apply(code, dst, do, st, src, so, st, n, rows, 2, rep_dst, rep_src)
    for k in range(2):
        x = src[so + k * rep_src:].reshape(-1, st)[:M.shape[1], :n].astype(np.float64)
        want = M[:rows] @ x
        got = dst[do + k * rep_dst:].reshape(-1, st)[:M.shape[0]]
        np.testing.assert_allclose(got[:rows, :n], want, rtol=0,
                                   atol=1e-6 * np.abs(want).max())
        assert np.isnan(got[rows:]).all() and np.isnan(got[:, n:]).all()  # nothing else
    assert np.array_equal(codelets.matrix_of(code), M)


@pytest.mark.parametrize("t", codelets.TILES)
def test_codes_follow_the_matrix_shapes(t):
    AT, G, BT = float_matrices(t, 3)
    assert codelets.codelet_for(BT, 0) == codelets.codelet_code("input", t)
    assert codelets.codelet_for(AT, 1) == codelets.codelet_code("output", t)
    assert codelets.codelet_for(G, 2) == codelets.codelet_code("filter", t, 3)
    codes = {codelets.codelet_code(*c) for c in CASES}
    assert codes == set(range(1, len(CASES) + 1))  # one code each
    assert codelets.codelet_for(np.ones((1, 1), np.float32), 0) == 0


def test_bad_kind_or_tile_raises():
    with pytest.raises(ValueError, match="kind"):
        codelets.codelet_code("taps", 8)
    with pytest.raises(ValueError, match="t"):
        codelets.program("input", 12)
    with pytest.raises(ValueError, match="r:"):
        codelets.program("filter", 8, 9)
    assert codelets.codelet_code("filter", 8, 1) == 0  # no transform to run
