"""Real FFT convolution of one tile as a bilinear algorithm y = A^T [(G g) ⊙ (B^T d)].

The valid part of an r-tap correlation of a tile of t inputs, y_i = sum_k g_k d_{i+k}
for i < m = t - r + 1, equals the first m outputs of the circular correlation of size
t (no index wraps for i + k <= t - 1), which the real DFT computes frequency by frequency:
C_f = conj(Ĝ_f) D̂_f, y = irfft(C). Real inputs need only the frequencies 0..t/2:

- f = 0 (and f = t/2 for even t) are real: one real product each;
- every other f is complex. (a + ib)(c + id) in Gauss's three-multiplication form,
  k1 = c(a + b), k2 = a(d - c), k3 = b(c + d), Re = k1 - k3, Im = k1 + k2, makes it
  three real products, so B^T maps the tile to (a + b, a, b) with a + ib = rfft(d)_f,
  G maps the taps to (c, d - c, c + d) with c + id = conj(rfft(g)_f), and A^T
  recombines Re and Im into the inverse real DFT.

alpha = 1 + [t even] + 3 * (ceil(t/2) - 1) points: 11 for t = 8, 23 for t = 16.
The inverse DFT's 1/t (2/t for the complex frequencies, which stand for f and t - f)
stays in A^T: with it in G (where Winograd puts its 1/N_j) the products sit t/2 below
the output and subnormal outputs (~4e-40) lost 2.4e-4 of their value (kernels.numerics;
1.7e-5 this way), while the overflow headroom stays at an output peak of ~4e37. B^T
keeps entries in [-sqrt 2, sqrt 2], G in [-sqrt 2 r, sqrt 2 r].
Entries that are zero or +-1 in exact arithmetic (cos and sin at multiples of pi/2)
are set exactly, so the kernels skip the zeros (`kernels.tiled.pipeline._comb_any`).

Points are ordered by frequency: f = 0, then (a+b, a, b) of f = 1, 2, ..., then f = t/2.
"""

from __future__ import annotations

from functools import cache

import numpy as np


def alpha(t: int) -> int:
    """Real points (products per channel pair) of a tile of t inputs."""
    return 1 + (t % 2 == 0) + 3 * ((t + 1) // 2 - 1)


def _cos_sin(t: int, f: int, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of 2 pi f j / t, exact at multiples of pi/2 (quarter turns)."""
    q = (4 * f * j) % (4 * t)  # the angle in quarter turns times t
    theta = 2 * np.pi * ((f * j) % t) / t
    c, s = np.cos(theta), np.sin(theta)
    quarter = q % t == 0
    turns = (q // t) % 4
    c = np.where(quarter, np.choose(turns, [1.0, 0.0, -1.0, 0.0]), c)
    s = np.where(quarter, np.choose(turns, [0.0, 1.0, 0.0, -1.0]), s)
    return c, s


def rfft_bilinear(t: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T, G, B^T) in float64: m x alpha, alpha x r, alpha x t with m = t - r + 1."""
    if t < 1 or not 1 <= r <= t:
        raise ValueError(f"r: the taps must fit the tile, 1 <= r <= t (got r={r}, t={t})")
    m = t - r + 1
    j, k, i = np.arange(t), np.arange(r), np.arange(m)
    BT, G, AT = [], [], []
    for f in range(t // 2 + 1):
        cd, sd = _cos_sin(t, f, j)  # data:   a + ib = sum d_j e^{-2 pi i f j / t}
        cg, sg = _cos_sin(t, f, k)  # taps:   c + id = sum g_k e^{+2 pi i f k / t}
        co, so = _cos_sin(t, f, i)  # output: y_i += Re(C_f e^{+2 pi i f i / t})
        if f == 0 or 2 * f == t:  # real frequency: C_f = c a
            BT.append(cd)
            G.append(cg)
            AT.append(co / t)
            continue
        a, b = cd, -sd
        BT += [a + b, a, b]
        w = 2.0 / t  # f and t - f contribute conjugate terms
        G += [cg, sg - cg, cg + sg]
        # y_i += Re C cos - Im C sin, Re C = k1 - k3, Im C = k1 + k2
        AT += [w * (co - so), -w * so, -w * co]
    return np.array(AT).T.copy(), np.array(G), np.array(BT)


@cache
def float_matrices(t: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T, G, B^T) rounded once to C-contiguous float32 (what the kernels use)."""
    return tuple(np.ascontiguousarray(mat, dtype=np.float32) for mat in rfft_bilinear(t, r))


def bilinear_correlate(t: int, r: int, d: np.ndarray, g: np.ndarray) -> np.ndarray:
    """A^T [(G g) ⊙ (B^T d)] in float64 (the identity's left side)."""
    AT, G, BT = rfft_bilinear(t, r)
    return AT @ ((G @ np.asarray(g, np.float64)) * (BT @ np.asarray(d, np.float64)))
