"""The winograd_f2 / winograd_f4 cells of the matrix, their supports() rules and counts."""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from ..direct.pointwise import execute_pointwise, prepare_pointwise
from ..layout import NHWC
from ..registry import cell, native_layout, not_applicable
from ..spec import ConvSpec
from ..types import flip_spatial, full_kernel, separable_stages, shuffle_permutation
from .conv2d import (
    depthwise_filter,
    winograd2d_prepared,
    winograd_depthwise_prepared,
    winograd_filter,
)
from .conv3d import depth_m, filter3d, winograd3d_prepared
from .matrices import float_matrices

ALGOS = {"winograd_f2": 2, "winograd_f4": 4}

DENSE_2D = ("conv2d", "grouped", "shuffled_grouped", "dilated2d", "spatially_separable",
            "flattened")


def _reason(conv_type: str, spec: ConvSpec) -> str | None:
    nd = 3 if conv_type == "conv3d" else 2
    if spec.kernel != (3,) * nd or any(s != 1 for s in spec.stride):
        shape = "x".join(["3"] * nd)
        return f"winograd needs a {shape} kernel with stride 1 (got kernel {spec.kernel}, " \
               f"stride {spec.stride})"
    return None


def _oriented(w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    return np.ascontiguousarray(flip_spatial(w, spec.ndim) if spec.flip else w)


def _lo(spec: ConvSpec) -> tuple[int, ...]:
    return spec.padding


def _transposed_lo(spec: ConvSpec) -> tuple[int, ...]:
    """The padding before each axis of the stride-1 conv a stride-1 transposed conv is."""
    return tuple(2 * d - p for d, p in zip(spec.dilation, spec.padding))


# ----------------------------------------------------------------------------- counts
def axis_tiles(conv_type: str, algorithm: str, spec: ConvSpec) -> tuple[int, ...]:
    """m of F(m, 3) on each spatial axis: the cell's m, but conv3d's depth axis runs
    `conv3d.depth_m` (F(2,3) or F(4,3) nested, or F(1,3): the 3 depth taps directly)."""
    m = ALGOS[algorithm]
    if conv_type == "conv3d":
        return (_depth_m(m, spec), m, m)
    return (m,) * spec.ndim


def _depth_m(m: int, spec: ConvSpec) -> int:
    return depth_m(m, spec.n, spec.c // spec.groups, spec.out_size, spec.dilation)


def tile_count(spec: ConvSpec, m) -> int:
    """Tiles of m^d outputs (or m[0] x m[1] x ..., one m per axis) over the batch, counting
    each dilation sub-grid separately."""
    ms = (m,) * spec.ndim if isinstance(m, int) else tuple(m)
    total = 0
    for phase in np.ndindex(*spec.dilation):
        sub = [-(-(o - r) // d) for o, r, d in zip(spec.out_size, phase, spec.dilation)]
        if min(sub) > 0:
            total += math.prod(-(-s // mi) for s, mi in zip(sub, ms))
    return spec.n * total


# F(1,3), the taps of an axis run directly: 3 points, identity transforms, A^T the sum
_TAPS = (np.ones((1, 3), np.float32), np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32))


def _nnz(a: np.ndarray) -> int:
    return int(np.count_nonzero(a))


def elementwise_multiplications(conv_type: str, algorithm: str, spec: ConvSpec) -> int:
    """Lavin–Gray: tiles x prod(m_i + r - 1) x c x k / g (depthwise: x c)."""
    ms = axis_tiles(conv_type, algorithm, spec)
    alpha = math.prod(mi + 2 for mi in ms)
    tiles = tile_count(spec, ms)
    if conv_type in ("depthwise", "depthwise_separable"):
        return tiles * alpha * spec.c
    return tiles * alpha * spec.c * spec.k // spec.groups


def transform_multiplications(conv_type: str, algorithm: str, spec: ConvSpec) -> dict:
    """Multiplications of the three transforms, evaluated axis by axis with the nonzero
    entries of the generated matrices (what the kernels do): {"input", "filter", "output"}.

    Input: per tile and input channel; filter: per (output channel, input channel
    of its group); output: per tile and output channel.
    """
    ms = axis_tiles(conv_type, algorithm, spec)
    mats = [float_matrices(mi) if mi > 1 else _TAPS for mi in ms]
    tiles = tile_count(spec, ms)

    def separable(nnz, n_in, n_out) -> int:
        # axis by axis: before axis i, the axes before it are transformed (n_out) and the
        # rest not (n_in)
        return sum(nnz[i] * math.prod(n_out[:i]) * math.prod(n_in[i + 1:])
                   for i in range(len(nnz)))

    alphas = [mi + 2 for mi in ms]
    per_in = separable([_nnz(BT) for _, _, BT in mats], alphas, alphas)
    per_filter = separable([_nnz(G) for _, G, _ in mats], [3] * len(ms), alphas)
    per_out = separable([_nnz(AT) for AT, _, _ in mats], alphas, list(ms))
    if conv_type in ("depthwise", "depthwise_separable"):
        pairs, outs = spec.c, spec.c
    elif conv_type == "transposed2d":
        pairs, outs = spec.c * spec.k // spec.groups, spec.k
    else:
        pairs, outs = spec.k * spec.c // spec.groups, spec.k
    return dict(input=tiles * spec.c * per_in, filter=pairs * per_filter,
                output=tiles * outs * per_out)


# ------------------------------------------------------------------------------ cells
def _register(algorithm: str, m: int) -> None:
    def supports_for(conv_type):
        return lambda spec: _reason(conv_type, spec)

    def count_for(conv_type):
        if conv_type == "depthwise_separable":
            return lambda spec: (elementwise_multiplications(conv_type, algorithm, spec)
                                 + spec.n * math.prod(spec.out_size) * spec.k * spec.c)
        return lambda spec: elementwise_multiplications(conv_type, algorithm, spec)

    # Every cell prepares its oriented (and for transposed2d channel-swapped) filter; a plan
    # also keeps the transformed filter, which one call fuses into its product stage
    for conv_type in DENSE_2D:
        def dense_filter(spec, weights, transform=False, conv_type=conv_type):
            w = _oriented(full_kernel(conv_type, spec, weights), spec)
            kmap = (shuffle_permutation(spec.k, spec.groups)
                    if conv_type == "shuffled_grouped" else None)
            return winograd_filter(w, m, spec.groups, kmap, transform)

        cell(conv_type, algorithm, prepare=dense_filter,
             prepare_for_plan=partial(dense_filter, transform=True),
             supports=supports_for(conv_type), multiplications=count_for(conv_type))(
            lambda spec, x, filt: winograd2d_prepared(x, filt, spec.out_size, _lo(spec),
                                                      spec.dilation))
        # channels-last: the pipeline packs NHWC rows as they are (same filter state)
        native_layout(conv_type, algorithm, NHWC)(
            lambda spec, x, filt: winograd2d_prepared(x, filt, spec.out_size, _lo(spec),
                                                      spec.dilation, channels_last=True))

    @cell("depthwise", algorithm, supports=supports_for("depthwise"),
          prepare=lambda spec, weights: depthwise_filter(_oriented(weights[0], spec), m),
          multiplications=count_for("depthwise"))
    def _depthwise(spec, x, U):
        return winograd_depthwise_prepared(x, U, m, spec.out_size, _lo(spec), spec.dilation)

    def separable_filters(spec, weights):
        dw, pw = weights
        return (depthwise_filter(_oriented(dw, spec), m),
                prepare_pointwise(separable_stages(spec)[1], pw))

    @cell("depthwise_separable", algorithm, supports=supports_for("depthwise_separable"),
          prepare=separable_filters, multiplications=count_for("depthwise_separable"))
    def _depthwise_separable(spec, x, filters):
        U, pw = filters
        mid = winograd_depthwise_prepared(x, U, m, spec.out_size, _lo(spec), spec.dilation)
        return execute_pointwise(separable_stages(spec)[1], mid, pw)

    def transposed_filter(spec, weights, transform=False):
        # a stride-1 transposed conv is the conv with the kernel flipped and its in/out
        # channels swapped (per group), padded by d(k-1) - p before (output_padding after)
        w = weights[0]
        c, kg = w.shape[:2]
        g = spec.groups
        cg = c // g
        wc = w.reshape(g, cg, kg, 3, 3).transpose(0, 2, 1, 3, 4).reshape(g * kg, cg, 3, 3)
        if not spec.flip:
            wc = flip_spatial(wc, 2)
        return winograd_filter(np.ascontiguousarray(wc), m, g, None, transform)

    @cell("transposed2d", algorithm, supports=supports_for("transposed2d"),
          prepare=transposed_filter, prepare_for_plan=partial(transposed_filter, transform=True),
          multiplications=count_for("transposed2d"))
    def _transposed(spec, x, filt):
        return winograd2d_prepared(x, filt, spec.out_size, _transposed_lo(spec), spec.dilation)

    @native_layout("transposed2d", algorithm, NHWC)
    def _transposed_nhwc(spec, x, filt):
        return winograd2d_prepared(x, filt, spec.out_size, _transposed_lo(spec), spec.dilation,
                                   channels_last=True)

    # Winograd along depth around the grouped 2-D pipeline (kernels.winograd.conv3d); the
    # weights' depth transform is prepared, the 2-D one as for the 2-D cells
    def filter_3d(spec, weights, transform=False):
        md = _depth_m(m, spec)
        return filter3d(_oriented(weights[0], spec), m, spec.groups, md, transform)

    @cell("conv3d", algorithm, supports=supports_for("conv3d"), prepare=filter_3d,
          prepare_for_plan=partial(filter_3d, transform=True),
          multiplications=count_for("conv3d"))
    def _conv3d(spec, x, filt3):
        return winograd3d_prepared(x, filt3, spec.out_size, _lo(spec), spec.dilation)

    for conv_type in ("pointwise", "pointwise_grouped"):
        not_applicable(conv_type, algorithm, "1x1 has no 3x3 kernel")


for _algo, _m in ALGOS.items():
    _register(_algo, _m)
