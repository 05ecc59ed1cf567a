"""The catalogue of the twelve convolution types: weight layouts and the specs each fits.

Every type except `transposed2d` and `depthwise_separable` is, mathematically,
a grouped convolution with one full kernel `w[k, c/g, *kernel]` (plus an output
channel shuffle for `shuffled_grouped`); `full_kernel` builds that kernel from
the type's own weights, so the oracle and the generic algorithms need no
per-type arithmetic.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .spec import ConvSpec


@dataclass(frozen=True)
class ConvType:
    name: str
    seed_section: str
    summary: str
    weight_names: tuple[str, ...]
    weight_shapes: Callable[[ConvSpec], tuple[tuple[int, ...], ...]]
    rules: Callable[[ConvSpec], str | None]  # None if the spec fits, else why not


def _dense(spec):
    return ((spec.k, spec.c // spec.groups, *spec.kernel),)


def _rules(*, ndim=2, transposed=False, groups=None, kernel1=None, dilated=None):
    """Build a spec check from the few properties that tell the types apart."""

    def check(spec: ConvSpec) -> str | None:
        if spec.ndim != ndim:
            return f"size: this type is {ndim}-D, the spec has {spec.ndim} spatial dimensions"
        if spec.transposed != transposed:
            return ("transposed: must be True for this type" if transposed
                    else "transposed: only transposed2d takes a transposed spec")
        if groups == "one" and spec.groups != 1:
            return f"groups: must be 1 for this type, got {spec.groups}"
        if groups == "many" and spec.groups < 2:
            return f"groups: must be at least 2 for this type, got {spec.groups}"
        if groups == "depthwise" and not (spec.groups == spec.c == spec.k):
            return (f"groups: depthwise needs groups = c = k "
                    f"(groups={spec.groups}, c={spec.c}, k={spec.k})")
        if kernel1 is True:
            if any(v != 1 for v in spec.kernel):
                return f"kernel: must be 1 in every dimension for this type, got {spec.kernel}"
            if any(spec.padding):
                return f"padding: a 1x1 convolution takes no padding, got {spec.padding}"
            if any(d != 1 for d in spec.dilation):
                return f"dilation: a 1x1 convolution has no dilation, got {spec.dilation}"
        if dilated is True and all(d == 1 for d in spec.dilation):
            return f"dilation: must be greater than 1 in some dimension, got {spec.dilation}"
        return None

    return check


CATALOGUE: dict[str, ConvType] = {t.name: t for t in (
    ConvType("conv2d", "2", "standard multi-channel 2D convolution", ("w",), _dense,
             _rules(groups="one")),
    ConvType("conv3d", "3", "3D convolution", ("w",), _dense, _rules(ndim=3)),
    ConvType("pointwise", "4", "1x1 convolution", ("w",), _dense,
             _rules(groups="one", kernel1=True)),
    ConvType("transposed2d", "6", "transposed convolution (PyTorch conv_transpose2d)", ("w",),
             lambda s: ((s.c, s.k // s.groups, *s.kernel),), _rules(transposed=True)),
    ConvType("dilated2d", "7", "dilated (atrous) convolution", ("w",), _dense,
             _rules(dilated=True)),
    ConvType("spatially_separable", "8.1", "kernel = col (x) row for every (k, c)",
             ("col", "row"),
             lambda s: ((s.k, s.c, s.kernel[0]), (s.k, s.c, s.kernel[1])),
             _rules(groups="one")),
    ConvType("depthwise", "8.2", "one filter per channel (groups = c = k)", ("w",),
             lambda s: ((s.c, 1, *s.kernel),), _rules(groups="depthwise")),
    ConvType("depthwise_separable", "8.2", "depthwise then pointwise, replacing a conv2d c->k",
             ("dw", "pw"), lambda s: ((s.c, 1, *s.kernel), (s.k, s.c, 1, 1)),
             _rules(groups="one")),
    ConvType("flattened", "9", "lateral 1x1, then vertical, then horizontal 1-D filters",
             ("lat", "ver", "hor"),
             lambda s: ((s.k, s.c), (s.k, s.kernel[0]), (s.k, s.kernel[1])),
             _rules(groups="one")),
    ConvType("grouped", "10", "grouped convolution", ("w",), _dense, _rules(groups="many")),
    ConvType("shuffled_grouped", "11", "grouped convolution then channel shuffle", ("w",),
             _dense, _rules(groups="many")),
    ConvType("pointwise_grouped", "12", "grouped 1x1 convolution", ("w",), _dense,
             _rules(groups="many", kernel1=True)),
)}

CONV_TYPES: tuple[str, ...] = tuple(CATALOGUE)


def conv_type(name: str) -> ConvType:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise ValueError(
            f"conv_type: unknown type {name!r}; known types are {', '.join(CONV_TYPES)}"
        ) from None


def check_spec(name: str, spec: ConvSpec) -> None:
    """Raise ValueError if `spec` does not fit conv type `name`."""
    if not isinstance(spec, ConvSpec):
        raise ValueError(f"spec: expected a ConvSpec, got {type(spec).__name__}")
    why = conv_type(name).rules(spec)
    if why:
        raise ValueError(f"{why} ({name})")


def check_inputs(name: str, spec: ConvSpec, x, weights) -> tuple[np.ndarray, tuple]:
    """Validate x and weights against the spec; return them as C-contiguous float32."""
    check_spec(name, spec)
    t = conv_type(name)
    x = _checked_array("x", x, spec.input_shape)
    if isinstance(weights, np.ndarray):
        weights = (weights,)
    if not isinstance(weights, (tuple, list)) or len(weights) != len(t.weight_names):
        raise ValueError(
            f"weights: {name} takes {len(t.weight_names)} weight arrays "
            f"({', '.join(t.weight_names)})"
        )
    shapes = t.weight_shapes(spec)
    return x, tuple(
        _checked_array(f"weights[{wname}]", w, shape)
        for wname, w, shape in zip(t.weight_names, weights, shapes)
    )


def _checked_array(field: str, a, shape) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{field}: expected a numpy array, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise ValueError(f"{field}: dtype must be float32, got {a.dtype}")
    if a.shape != tuple(shape):
        raise ValueError(f"{field}: shape must be {tuple(shape)}, got {a.shape}")
    return np.ascontiguousarray(a)


def make_inputs(name: str, spec: ConvSpec, seed: int = 0) -> tuple[np.ndarray, tuple]:
    """Random float32 input and weights, scaled so outputs stay O(1) at any fan-in."""
    check_spec(name, spec)
    t = conv_type(name)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape, dtype=np.float32)
    weights = []
    for shape in t.weight_shapes(spec):
        # each factor of a product kernel gets its share of the 1/sqrt(fan-in) scale
        fan = max(1, math.prod(shape[1:]))
        weights.append((rng.standard_normal(shape, dtype=np.float32) / np.sqrt(fan))
                       .astype(np.float32))
    return x, tuple(weights)


@functools.lru_cache(maxsize=512)
def separable_stages(spec: ConvSpec) -> tuple[ConvSpec, ConvSpec]:
    """(depthwise spec, pointwise spec) of the depthwise separable conv `spec` replaces.

    Cached: the composites run both stages on every call, and building a ConvSpec
    (validation included) costs about 10 us, which shows on small layers."""
    return (spec.replace(k=spec.c, groups=spec.c),
            spec.replace(size=spec.out_size, kernel=1, stride=1, padding=0, dilation=1,
                         flip=False))


def flip_spatial(w: np.ndarray, ndim: int) -> np.ndarray:
    """Reverse the last `ndim` axes (true convolution instead of cross-correlation)."""
    return w[(Ellipsis,) + (slice(None, None, -1),) * ndim]


def full_kernel(name: str, spec: ConvSpec, weights: tuple) -> np.ndarray:
    """The dense kernel w[k, c/g, *kernel] the type's weights stand for (flip not applied).

    Not defined for transposed2d (its kernel is w[c, k/g, ...]) and
    depthwise_separable (two stages).
    """
    if name in ("transposed2d", "depthwise_separable"):
        raise ValueError(f"conv_type: {name} has no single dense kernel")
    if name == "spatially_separable":
        col, row = weights
        return np.einsum("kci,kcj->kcij", col, row)
    if name == "flattened":
        lat, ver, hor = weights
        return np.einsum("kc,ki,kj->kcij", lat, ver, hor)
    return weights[0]


def shuffle_permutation(k: int, groups: int) -> np.ndarray:
    """dest[j]: where channel j of the grouped conv lands after ShuffleNet's channel shuffle.

    ShuffleNet reshapes (g, k/g) -> transposes -> flattens, so channel
    i*(k/g) + m moves to m*g + i.
    """
    j = np.arange(k)
    per = k // groups
    return (j % per) * groups + j // per
