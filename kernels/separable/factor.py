"""How separable a kernel is, and its split into rank-1 terms (SVD).

A 2-D kernel slice K (kh x kw) is a sum of r rank-1 terms
K = sum_s sigma_s u_s v_s^T; each term is a vertical filter u_s and a
horizontal filter v_s, so correlating with K is r (vertical, horizontal)
pass pairs. Sobel, box and Gaussian kernels have rank 1; a random or
learned kernel almost always has the full rank min(kh, kw), which costs more
multiplications than the direct window (r * (kh + kw) > kh * kw for r = 3,
kh = kw = 3).

Numerical rank: the number of singular values above
`RANK_RTOL * max(kh, kw) * sigma_max`, with RANK_RTOL the float32 machine
epsilon (numpy's `matrix_rank` rule at the precision of the weights). The
dropped terms are below the rounding error of the float32 weights
themselves, so the factored convolution stays exact to float32 accuracy.
"""

from __future__ import annotations

import numpy as np

RANK_RTOL = float(np.finfo(np.float32).eps)


def require_finite(w: np.ndarray) -> np.ndarray:
    """`w` unchanged if every entry is finite, else ValueError naming `weights`.

    An SVD or eigendecomposition of a matrix with an Inf or NaN is undefined: LAPACK's
    dgesdd never returns on an Inf (uninterruptibly), and what it returns otherwise is
    finite garbage or a LinAlgError, so the separable paths refuse such weights in
    their prepare step (one vectorised pass, outside any plan's data path)."""
    if not np.isfinite(w).all():
        bad = int(np.count_nonzero(~np.isfinite(w)))
        raise ValueError(
            f"weights: must be finite for the separable algorithm, whose SVD factorisation "
            f"of the kernel is undefined for Inf or NaN (got {bad} non-finite of {w.size} values)")
    return w


def _svd(kernels2d: np.ndarray):
    k = require_finite(np.asarray(kernels2d, np.float64))
    if k.ndim < 2:
        raise ValueError(f"kernel: expected at least 2 dimensions, got shape {k.shape}")
    return np.linalg.svd(k, full_matrices=False)


def singular_values(kernels2d) -> np.ndarray:
    """Singular values of each 2-D slice (the last two axes), largest first."""
    return np.linalg.svd(require_finite(np.asarray(kernels2d, np.float64)), compute_uv=False)


def rank_tolerance(shape) -> float:
    """Relative threshold (to the largest singular value) below which a term is dropped."""
    return RANK_RTOL * max(shape[-2], shape[-1])


def numerical_rank(kernels2d, rtol: float | None = None):
    """Numerical rank of a 2-D kernel (an int) or of each slice of a stack (an int array).

    A singular value counts if it exceeds `rtol * sigma_max` (default
    `rank_tolerance`); an all-zero kernel has rank 0.
    """
    s = singular_values(kernels2d)
    tol = rank_tolerance(np.shape(kernels2d)) if rtol is None else rtol
    r = np.sum(s > tol * s[..., :1], axis=-1)
    return int(r) if np.ndim(r) == 0 else r


def rank_error(kernels2d, r: int):
    """Relative Frobenius error ||K - K_r|| / ||K|| of the best rank-r approximation K_r.

    0 means the kernel is exactly a sum of r separable terms; for a stack of
    kernels (last two axes) returns one value per kernel. A zero kernel has
    error 0.
    """
    if r < 0:
        raise ValueError(f"r: must be non-negative, got {r}")
    s = singular_values(kernels2d) ** 2
    total = s.sum(axis=-1)
    rest = s[..., r:].sum(axis=-1)
    err = np.sqrt(np.divide(rest, total, out=np.zeros_like(total), where=total > 0))
    return float(err) if np.ndim(err) == 0 else err


def rank1_terms(kernels2d: np.ndarray, rtol: float | None = None):
    """Split every slice of w[..., kh, kw] into its rank-1 terms.

    Returns (index, U, V): index[t] is the position of term t's slice in the
    leading axes (a tuple of int arrays, as from np.nonzero), U[t] (kh) and
    V[t] (kw) its float32 vertical and horizontal filters with sqrt(sigma)
    folded into each, so that w[index] = sum over its terms of outer(U, V).
    Terms come in slice order, largest first within a slice.
    """
    u, s, vt = _svd(kernels2d)
    tol = rank_tolerance(kernels2d.shape) if rtol is None else rtol
    keep = s > tol * s[..., :1]
    idx = np.nonzero(keep)
    root = np.sqrt(s[idx])
    U = np.moveaxis(u, -1, -2)[idx] * root[:, None]
    V = vt[idx] * root[:, None]
    return idx[:-1], U.astype(np.float32), V.astype(np.float32)
