"""The generated fft codelets (kernels.fft.codelets): each program is exactly the matrix it
replaces (float64), the compiled codelet applies it to float32 data (whole vectors and the
one-column tail, A^T's rows clipped), and it runs fewer operations than the dense rows."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from kernels.fft import codelets
from kernels.fft.matrices import float_matrices

CASES = [(kind, t) for kind in codelets.KINDS for t in codelets.TILES]


@pytest.mark.parametrize("kind,t", CASES)
def test_program_is_the_matrix(kind, t):
    prog, M = codelets.program(kind, t), codelets.matrix(kind, t)
    np.testing.assert_allclose(prog.evaluate(np.eye(M.shape[1])), M, rtol=0, atol=1e-14)


@pytest.mark.parametrize("kind,t", CASES)
def test_program_is_cheaper_than_dense_rows(kind, t):
    M = codelets.matrix(kind, t)
    dense = np.count_nonzero(np.abs(M) > 1e-12)
    assert codelets.program(kind, t).arithmetic() < 0.7 * dense


@njit
def _apply(code, dst, do, dst_st, src, so, src_st, n, rows):
    codelets.apply_codelet(code, dst, do, dst_st, src, so, src_st, n, rows)


@pytest.mark.parametrize("kind,t", CASES)
def test_codelet_applies_the_matrix(kind, t):
    """Columns past whole vectors (n = LANES + 3) and, for A^T, only the first rows."""
    M = codelets.matrix(kind, t)
    rows = M.shape[0] - 4 if kind == "output" else M.shape[0]
    n, st, so, do = codelets.LANES + 3, codelets.LANES + 7, 5, 2
    rng = np.random.default_rng(t)
    src = rng.standard_normal(so + M.shape[1] * st).astype(np.float32)
    dst = np.full(do + M.shape[0] * st, np.nan, np.float32)
    code = codelets.codelet_code(kind, t)
    _apply(code, dst, do, st, src, so, st, n, rows)
    x = src[so:].reshape(M.shape[1], st)[:, :n].astype(np.float64)
    want = M[:rows] @ x
    got = dst[do:].reshape(M.shape[0], st)
    np.testing.assert_allclose(got[:rows, :n], want, rtol=0, atol=1e-6 * np.abs(want).max())
    assert np.isnan(got[rows:]).all() and np.isnan(got[:, n:]).all()  # nothing else written
    assert np.array_equal(codelets.matrix_of(code), M)


@pytest.mark.parametrize("t", codelets.TILES)
def test_codes_follow_the_matrix_shapes(t):
    AT, _, BT = float_matrices(t, 3)
    assert codelets.codelet_for(BT, False) == codelets.codelet_code("input", t)
    assert codelets.codelet_for(AT, True) == codelets.codelet_code("output", t)
    assert codelets.codelet_for(np.ones((1, 1), np.float32), False) == 0


def test_bad_kind_or_tile_raises():
    with pytest.raises(ValueError, match="kind"):
        codelets.codelet_code("filter", 8)
    with pytest.raises(ValueError, match="t"):
        codelets.program("input", 12)
