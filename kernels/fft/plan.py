"""How an fft cell runs a spec: the stride-1 problem it solves (polyphase for strides) and
the tile size per axis, and the multiplication counts that follow from them.

Tile rule: per axis the tile is 8 or 16 inputs (1 for an axis with a single tap, which
then needs no transform at all), and the pair chosen is the one with the least modelled
time over the layer: tiles x alpha_h alpha_w c k/g multiplications for the products,
plus TRANSFORM_WEIGHT x the multiplications of the three transforms (input per tile
and input channel, output per tile and output channel, filter per channel pair; counted
from the nonzero entries of the matrices). The transform passes run about a third as
many multiplications per second as the register block of the products (measured on
AVX-512: 23-27 against 73 G/s on one core), hence the weight 3. Why: a tile of 16 makes
fewer products per output for every r >= 2 (23/(17-r) against 11/(9-r) per output and
axis: 1.64 against 1.83 for r = 3, 3.8 against 11 for r = 7), but its tiles are 12-16
outputs wide, so on small planes (7x7, 14x14 at 5x5) ragged edge tiles waste most of
them, and with few channels the transforms (about twice the work per output) outweigh
the products, and with few tiles the filter transform (alpha^2 r per channel pair) does
too; 8x8 then wins. Small kernels on small planes get 8, large kernels 16.
Kernels wider than 16 taps do not fit a tile (supports() says so).
Since B^T, A^T and G run as generated FFT codelets (`kernels.fft.codelets`, about a third
of the matrices' nonzero entries in operations) the weight overstates the transforms, but
re-timing all four tile pairs on the 5x5 and 7x7 layers of `harness.checks.fft` (1 thread)
found the rule's pick the fastest or within noise of it, so it stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from ..spec import ConvSpec
from .matrices import alpha, float_matrices

TILES = (8, 16)  # tile sizes (inputs per axis) the cells choose from
TRANSFORM_WEIGHT = 3  # time of a transform multiplication over one of the products
MAX_TAPS = max(TILES)


@dataclass(frozen=True)
class Plan:
    """The stride-1 problem an fft cell solves and its tiles.

    `kernel`: taps per axis after the polyphase split (ceil(r/s)); `phases`: the
    stride (s_h, s_w), whose s_h*s_w phases become input channels; `c`: input
    channels of the stride-1 problem (c * s_h * s_w); `tiles`: inputs per tile per axis.
    """

    kernel: tuple[int, int]
    phases: tuple[int, int]
    c: int
    k: int
    groups: int
    n: int
    out_size: tuple[int, int]
    dilation: tuple[int, int]
    tiles: tuple[int, int]

    @property
    def m(self) -> tuple[int, int]:
        return tuple(t - r + 1 for t, r in zip(self.tiles, self.kernel))

    def axes(self):
        """((A^T, G, B^T) of the height axis, same of the width axis), float32."""
        return tuple(float_matrices(t, r) for t, r in zip(self.tiles, self.kernel))

    def tile_count(self) -> int:
        return tile_count(self.n, self.out_size, self.dilation, self.m)


def tile_count(n: int, out_size, dilation, m) -> int:
    """Tiles of m_h x m_w outputs over the batch, each dilation sub-grid separately.

    Closed form (no loop over the d_h d_w sub-grids: the memory guard asks this of specs
    with dilations of millions): along an axis of o outputs and dilation d, o = q d + e
    gives e sub-grids of q + 1 outputs and d - e of q, and the sub-grids of both axes
    pair up, so the count is a product of per-axis sums."""
    total = n
    for o, d, mm in zip(out_size, dilation, m):
        q, e = divmod(o, d)
        total *= e * -(-(q + 1) // mm) + (d - e) * -(-q // mm)
    return total


def _axis_choices(r: int) -> tuple[int, ...]:
    return (1,) if r == 1 else tuple(t for t in TILES if t >= r)


def transform_counts(tiles, kernel) -> tuple[int, int, int]:
    """Multiplications (nonzero matrix entries, axis by axis) of the input transform per tile
    and input channel, the filter transform per channel pair and the output transform per
    tile and output channel."""
    (ATh, Gh, BTh), (ATw, Gw, BTw) = (float_matrices(t, r) for t, r in zip(tiles, kernel))
    nz = np.count_nonzero
    inp = nz(BTh) * BTw.shape[1] + BTh.shape[0] * nz(BTw)
    filt = nz(Gh) * Gw.shape[1] + Gh.shape[0] * nz(Gw)
    out = nz(ATh) * ATw.shape[1] + ATh.shape[0] * nz(ATw)
    return int(inp), int(filt), int(out)


@cache
def _choose(kernel, n, out_size, dilation, c, k, groups) -> tuple[int, int]:
    best = None
    for th in _axis_choices(kernel[0]):
        for tw in _axis_choices(kernel[1]):
            tiles = (th, tw)
            m = tuple(t - r + 1 for t, r in zip(tiles, kernel))
            count = tile_count(n, out_size, dilation, m)
            inp, filt, out = transform_counts(tiles, kernel)
            pairs = c * k // groups
            cost = (count * alpha(th) * alpha(tw) * pairs
                    + TRANSFORM_WEIGHT * (count * (inp * c + out * k) + pairs * filt))
            if best is None or cost < best[0]:
                best = (cost, tiles)
    return best[1]


def reason(spec: ConvSpec, transposed: bool = False) -> str | None:
    """Why fft cannot run the spec (None if it can)."""
    if all(r == 1 for r in spec.kernel):
        return ("fft transforms a spatial kernel; a 1x1 kernel has none (it is the plain "
                "GEMM of pointwise)")
    if any(s != 1 for s in spec.stride):
        if transposed:
            return f"fft runs transposed convolutions with stride 1 only (got stride {spec.stride})"
        if any(d != 1 for d in spec.dilation):
            return (f"fft splits strides into phases only without dilation (got stride "
                    f"{spec.stride}, dilation {spec.dilation})")
    taps = [-(-r // s) for r, s in zip(spec.kernel, spec.stride)]
    if max(taps) > MAX_TAPS:
        return f"fft tiles hold kernels up to {MAX_TAPS} taps per axis (got kernel {spec.kernel})"
    return None


def plan(spec: ConvSpec) -> Plan:
    """The stride-1 problem and tiles for `spec` (a spec `reason` accepts; for a transposed
    spec, the equivalent stride-1 convolution: c in, k out)."""
    s = spec.stride if not spec.transposed else (1, 1)
    kernel = tuple(-(-r // st) for r, st in zip(spec.kernel, s))
    c = spec.c * s[0] * s[1]
    tiles = _choose(kernel, spec.n, spec.out_size, spec.dilation, c, spec.k, spec.groups)
    return Plan(kernel=kernel, phases=s, c=c, k=spec.k, groups=spec.groups, n=spec.n,
                out_size=spec.out_size, dilation=spec.dilation, tiles=tiles)
