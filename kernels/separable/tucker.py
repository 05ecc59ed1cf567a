"""A grouped kernel as one separable filter bank per input channel plus a channel mix.

For input channel c (of group g), the kg output channels' kernels
w[k, c, :, :, :] (k in g) form a kg x kd x kh x kw tensor W_c. Its Tucker
decomposition with orthonormal per-axis bases A_c (kd x rd), U_c (kh x rh),
V_c (kw x rw), the left singular vectors of W_c's three unfoldings, is

    W_c[k] = sum_{i, j, l} G[k, c, i, j, l] * A_c[:, i] (x) U_c[:, j] (x) V_c[:, l]

with the core G[k, c] = W_c[k] x_1 A_c^T x_2 U_c^T x_3 V_c^T. It is exact when
every basis spans its unfolding's columns (full rank: rd = kd, unless kg*kh*kw
< kd): it is a change of basis of the kernel, not a truncation. So a
convolution is

    z[c, (i, j, l)] = (A_c[:, i] (x) U_c[:, j] (x) V_c[:, l]) * x[c]   (a separable filter bank)
    y[k]            = sum_{c in g, (i, j, l)} G[k, c, i, j, l] * z[c, (i, j, l)]   (a 1x1 conv)

The bank is rd depth passes, rd*rh vertical and rd*rh*rw horizontal passes
per input channel, shared by all kg output channels; the mix is a GEMM. A
direction whose singular value is below `RANK_RTOL * k_axis` of the largest
(float32 rounding of the weights) carries nothing and is dropped; one rank
per axis serves the whole layer (the largest any channel needs), so the bank
and the mix have a fixed shape.

Range: each basis column is scaled by the power of two that brings its sum of
|taps| into (1/2, 1] (exact; the core takes the inverse), so no bank plane is
larger than the input: an orthonormal 3-tap filter sums up to sqrt(3) |taps|,
a 3x3x3 product filter 5.2, and the planes of an input near the float32
maximum would overflow before the output does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .factor import RANK_RTOL, require_finite


@dataclass(frozen=True)
class ChannelBank:
    """bases[a][c] (k_a x r_a) of axis a = depth, height, width per input channel c
    (orthogonal columns, each |taps| summing to at most 1); the
    channel mix core[k, cl * R + (i*rh + j)*rw + l] (R = rd*rh*rw, cl the channel in its
    group), both float32."""
    bases: tuple
    core: np.ndarray

    @property
    def ranks(self) -> tuple[int, int, int]:
        return tuple(b.shape[2] for b in self.bases)


def axis_ranks(kernel, kg: int) -> tuple[int, int, int]:
    """Full ranks of the three unfoldings of a kg x kd x kh x kw tensor."""
    kd, kh, kw = kernel
    return min(kd, kg * kh * kw), min(kh, kg * kd * kw), min(kw, kg * kd * kh)


def channel_bank(w: np.ndarray, groups: int) -> ChannelBank:
    """The bank and channel mix of a grouped kernel w[k, c/g, kd, kh, kw] (already flipped)."""
    if w.ndim != 5:
        raise ValueError(f"w: expected [k, c/g, kd, kh, kw], got shape {w.shape}")
    K, cg, *kernel = w.shape
    if groups < 1 or K % groups:
        raise ValueError(f"groups: must divide the {K} output channels, got {groups}")
    kg = K // groups
    # W_c for every input channel c = g*cg + cl: wc[c, k in group, kd, kh, kw]
    wc = (require_finite(np.asarray(w, np.float64)).reshape(groups, kg, cg, *kernel).swapaxes(1, 2)
          .reshape(groups * cg, kg, *kernel))
    bases = []
    for axis, size in enumerate(kernel):
        # the left singular vectors of the unfolding M are the eigenvectors of M M^T
        # (size x size): far cheaper than its SVD (M is size x kg*taps/size), and in float64
        # the singular values sqrt(eig) stay exact well below the float32 threshold
        unfold = np.moveaxis(wc, 2 + axis, 1).reshape(len(wc), size, -1)
        eig, u = np.linalg.eigh(unfold @ unfold.swapaxes(1, 2))
        s, u = np.sqrt(np.maximum(eig[:, ::-1], 0)), u[:, :, ::-1]  # largest first
        keep = s > RANK_RTOL * size * s[:, :1]
        bases.append(u[:, :, :max(1, int(keep.sum(axis=1).max()))])
    core = np.einsum("ckabe,cai,cbj,cel->ckijl", wc, *bases, optimize=True)
    scales = [np.exp2(-np.ceil(np.log2(np.abs(b).sum(axis=1)))) for b in bases]  # [c, r]
    bases = [b * sc[:, None, :] for b, sc in zip(bases, scales)]
    core /= np.einsum("ci,cj,cl->cijl", *scales)[:, None]
    R = core[0, 0].size
    core = core.reshape(groups, cg, kg, R).swapaxes(1, 2).reshape(K, cg * R)
    return ChannelBank(tuple(np.ascontiguousarray(b, np.float32) for b in bases),
                       np.ascontiguousarray(core, np.float32))
