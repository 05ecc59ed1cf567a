"""Winograd / Cook–Toom transform matrices for F(m, r), generated in exact rationals.

F(m, r) computes m outputs of an r-tap correlation with alpha = m + r - 1
multiplications: y = A^T [(G g) ⊙ (B^T d)], d the alpha inputs, g the taps.
It is the transpose (Winograd's "transposition principle") of the Toom–Cook
product of an (m-1)-degree and an (r-1)-degree polynomial, evaluated at
alpha - 1 finite points p_j and at infinity (the leading coefficient):

- A^T[i, j] = p_j^i, and the infinity column picks the last output (i = m-1);
- G[j, k] = p_j^k / N_j with N_j = prod_{l != j} (p_j - p_l); infinity row picks g_{r-1};
- B^T[j, :] = coefficients of M(x) / (x - p_j), M(x) = prod_l (x - p_l);
  the infinity row holds the coefficients of M(x) itself.

The 1/N_j of the Lagrange basis is moved from B^T into G, which keeps the
input transform integral for integer points (only the filter transform,
computed once per call, divides). Everything is `fractions.Fraction`, so the
identity is checked exactly; the kernels cast the result to float32 once.

Range (`SCALE`): for any diagonal D_A D_G D_B = I, (A^T D_A, D_G G, D_B B^T) is the
same algorithm. Lavin's F(4x4,3x3) scaling makes V = B^T d B up to 32x max |y|
(rows of B^T sum to 10 in absolute value, squared by the 2-D transform) and
M[inf, inf] 12x max |y|, so float32 overflowed at an output peak of ~1e37
instead of ~3e38. SCALE moves powers of two between the three: B^T rows /8 or /4,
A^T's +-1 columns x2, +-2 columns /2 and infinity column x4, G the inverse, which
keeps every intermediate (t1, V, M, A^T M) within 1.7x max |y| (measured by
`python -m harness.checks.numeric_range`). Powers of two are exact, so in the
normal float32 range every rounding, and so every output bit, is unchanged; the
kernels do the same work (same zeros, G's +-1 entries stay +-1: the infinity row).
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache

import numpy as np

# Interpolation points per output tile size m for r = 3 (Lavin & Gray; +-1/2 for F(6,3)
# keeps the entries of G and A^T near 1, which is what keeps float32 error down).
POINTS: dict[int, tuple[Fraction, ...]] = {
    2: (Fraction(0), Fraction(1), Fraction(-1)),
    4: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2)),
    6: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2),
        Fraction(1, 2), Fraction(-1, 2)),
}

# Power-of-two exponents (s_B, s_A) per point of POINTS[m], then infinity: row j of B^T is
# scaled by 2**s_B, column j of A^T by 2**s_A and row j of G by 2**-(s_B + s_A).
SCALE: dict[int, tuple[tuple[int, int], ...]] = {
    4: ((-3, 0), (-3, 1), (-3, 1), (-2, -1), (-2, -1), (-2, 2)),
}


def _poly_mul(a: list[Fraction], b: list[Fraction]) -> list[Fraction]:
    out = [Fraction(0)] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i + j] += x * y
    return out


def cook_toom(m: int, r: int, points=None, scale=None) -> tuple[list[list[Fraction]], ...]:
    """(A^T, G, B^T) of F(m, r) as nested lists of Fractions: m x alpha, alpha x r,
    alpha x alpha. `scale`: (s_B, s_A) per point, as in SCALE (the default for the
    default points); () for Lavin's unscaled matrices."""
    alpha = m + r - 1
    pts = tuple(Fraction(p) for p in (points if points is not None else POINTS[m]))
    if len(pts) != alpha - 1 or len(set(pts)) != len(pts):
        raise ValueError(f"points: F({m},{r}) needs {alpha - 1} distinct finite points, "
                         f"got {pts}")
    AT = [[p ** i for p in pts] + [Fraction(int(i == m - 1))] for i in range(m)]
    G = []
    for j, p in enumerate(pts):
        N = Fraction(1)
        for q_i, q in enumerate(pts):
            if q_i != j:
                N *= p - q
        G.append([p ** k / N for k in range(r)])
    G.append([Fraction(int(k == r - 1)) for k in range(r)])
    BT = []
    for j in range(len(pts)):
        poly = [Fraction(1)]
        for q_i, q in enumerate(pts):
            if q_i != j:
                poly = _poly_mul(poly, [-q, Fraction(1)])
        BT.append(poly + [Fraction(0)])  # degree alpha-2, padded to alpha coefficients
    full = [Fraction(1)]
    for q in pts:
        full = _poly_mul(full, [-q, Fraction(1)])
    BT.append(full)
    if scale is None:
        scale = SCALE.get(m, ()) if points is None else ()
    for j, (sb, sa) in enumerate(scale):
        b, a = Fraction(2) ** sb, Fraction(2) ** sa
        BT[j] = [v * b for v in BT[j]]
        G[j] = [v / (a * b) for v in G[j]]
        for row in AT:
            row[j] *= a
    return AT, G, BT


@cache
def float_matrices(m: int, r: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T, G, B^T) cast to C-contiguous float32 arrays (rounded once from the exact values)."""
    return tuple(np.ascontiguousarray(np.array([[float(v) for v in row] for row in mat],
                                               dtype=np.float32))
                 for mat in cook_toom(m, r))


def correlate_exact(d, g) -> list[Fraction]:
    """The valid 1-D correlation y_i = sum_k g_k d_{i+k}, exact (the identity's right side)."""
    m = len(d) - len(g) + 1
    return [sum((Fraction(g[k]) * Fraction(d[i + k]) for k in range(len(g))), Fraction(0))
            for i in range(m)]


def winograd_exact(m: int, r: int, d, g) -> list[Fraction]:
    """A^T [(G g) ⊙ (B^T d)] in Fractions."""
    AT, G, BT = cook_toom(m, r)
    Gg = [sum((row[k] * Fraction(g[k]) for k in range(r)), Fraction(0)) for row in G]
    Bd = [sum((row[i] * Fraction(d[i]) for i in range(len(d))), Fraction(0)) for row in BT]
    prod = [a * b for a, b in zip(Gg, Bd)]
    return [sum((row[j] * prod[j] for j in range(len(prod))), Fraction(0)) for row in AT]
