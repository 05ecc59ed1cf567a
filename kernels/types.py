"""The catalogue of the twelve convolution types: their properties as data, weight layouts,
and the specs each fits.

Each `ConvType` states what tells it apart (dimensionality, grouping, kernel shape,
transposed, dilated, how its kernel is composed, output shuffle); the spec rules,
the weight names, `full_kernel` and the algorithms' registrations are read from
those properties, and `select(**properties)` answers "which types are ...".
Adding a type is one entry in CATALOGUE; every algorithm whose query matches it
registers a cell for it, and the conformance test draws specs for it from the same
properties.

Every type except transposed ones and staged compositions is, mathematically, a
grouped convolution with one full kernel `w[k, c/g, *kernel]` (plus an output
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

from .layout import NCHW, check_layout, input_shape, to_nhwc
from .spec import ConvSpec

GROUPINGS = ("one", "many", "depthwise", "any")  # groups = 1 | >= 2 | = c = k | any divisor
KERNELS = ("any", "1x1")
COMPOSITIONS = ("dense", "product", "stages")


@dataclass(frozen=True)
class ConvType:
    """One convolution type. Composition: "dense" = one kernel w[k, c/g, *kernel]
    ("w"); "product" = the kernel is the product of 1-D/lateral factors named by
    `factors`, multiplied out by the einsum `product`; "stages" = the convolutions
    named by `factors` applied in turn (depthwise then pointwise)."""

    name: str
    seed_section: str
    summary: str
    weight_shapes: Callable[[ConvSpec], tuple[tuple[int, ...], ...]]
    ndim: int = 2
    grouping: str = "one"
    kernel: str = "any"
    transposed: bool = False
    dilated: bool = False  # needs dilation > 1 (the others accept any dilation)
    composition: str = "dense"
    factors: tuple[str, ...] = ()
    product: str = ""  # einsum from the factors to w[k, c, *kernel] (composition "product")
    shuffle: bool = False  # ShuffleNet's channel shuffle on the output

    def __post_init__(self):
        for field, value, allowed in (("grouping", self.grouping, GROUPINGS),
                                      ("kernel", self.kernel, KERNELS),
                                      ("composition", self.composition, COMPOSITIONS)):
            if value not in allowed:
                raise ValueError(f"{field}: must be one of {', '.join(allowed)}, got {value!r}")
        if (self.composition == "dense") == bool(self.factors):
            raise ValueError("factors: a dense type has none, a product or stages names them")

    @property
    def weight_names(self) -> tuple[str, ...]:
        if self.composition == "stages":
            return tuple(_STAGE_WEIGHTS[f] for f in self.factors)
        return self.factors or ("w",)

    def rules(self, spec: ConvSpec) -> str | None:
        """None if the spec fits this type, else why not."""
        if spec.ndim != self.ndim:
            return f"size: this type is {self.ndim}-D, the spec has {spec.ndim} spatial dimensions"
        if spec.transposed != self.transposed:
            return ("transposed: must be True for this type" if self.transposed
                    else "transposed: only a transposed type takes a transposed spec")
        if self.grouping == "one" and spec.groups != 1:
            return f"groups: must be 1 for this type, got {spec.groups}"
        if self.grouping == "many" and spec.groups < 2:
            return f"groups: must be at least 2 for this type, got {spec.groups}"
        if self.grouping == "depthwise" and not (spec.groups == spec.c == spec.k):
            return (f"groups: depthwise needs groups = c = k "
                    f"(groups={spec.groups}, c={spec.c}, k={spec.k})")
        if self.kernel == "1x1":
            if any(v != 1 for v in spec.kernel):
                return f"kernel: must be 1 in every dimension for this type, got {spec.kernel}"
            if any(spec.padding):
                return f"padding: a 1x1 convolution takes no padding, got {spec.padding}"
            if any(d != 1 for d in spec.dilation):
                return f"dilation: a 1x1 convolution has no dilation, got {spec.dilation}"
        if self.dilated and all(d == 1 for d in spec.dilation):
            return f"dilation: must be greater than 1 in some dimension, got {spec.dilation}"
        return None


_STAGE_WEIGHTS = {"depthwise": "dw", "pointwise": "pw"}


def _dense(spec):
    return ((spec.k, spec.c // spec.groups, *spec.kernel),)


CATALOGUE: dict[str, ConvType] = {t.name: t for t in (
    ConvType("conv2d", "2", "standard multi-channel 2D convolution", _dense),
    ConvType("conv3d", "3", "3D convolution", _dense, ndim=3, grouping="any"),
    ConvType("pointwise", "4", "1x1 convolution", _dense, kernel="1x1"),
    ConvType("transposed2d", "6", "transposed convolution (PyTorch conv_transpose2d)",
             lambda s: ((s.c, s.k // s.groups, *s.kernel),), grouping="any", transposed=True),
    ConvType("dilated2d", "7", "dilated (atrous) convolution", _dense, grouping="any",
             dilated=True),
    ConvType("spatially_separable", "8.1", "kernel = col (x) row for every (k, c)",
             lambda s: ((s.k, s.c, s.kernel[0]), (s.k, s.c, s.kernel[1])),
             composition="product", factors=("col", "row"), product="kci,kcj->kcij"),
    ConvType("depthwise", "8.2", "one filter per channel (groups = c = k)", _dense,
             grouping="depthwise"),
    ConvType("depthwise_separable", "8.2", "depthwise then pointwise, replacing a conv2d c->k",
             lambda s: ((s.c, 1, *s.kernel), (s.k, s.c, 1, 1)),
             composition="stages", factors=("depthwise", "pointwise")),
    ConvType("flattened", "9", "lateral 1x1, then vertical, then horizontal 1-D filters",
             lambda s: ((s.k, s.c), (s.k, s.kernel[0]), (s.k, s.kernel[1])),
             composition="product", factors=("lat", "ver", "hor"), product="kc,ki,kj->kcij"),
    ConvType("grouped", "10", "grouped convolution", _dense, grouping="many"),
    ConvType("shuffled_grouped", "11", "grouped convolution then channel shuffle", _dense,
             grouping="many", shuffle=True),
    ConvType("pointwise_grouped", "12", "grouped 1x1 convolution", _dense, grouping="many",
             kernel="1x1"),
)}

CONV_TYPES: tuple[str, ...] = tuple(CATALOGUE)


def conv_type(name: str) -> ConvType:
    try:
        return CATALOGUE[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name, e.g. a list
        raise ValueError(
            f"conv_type: unknown type {name!r}; known types are {', '.join(CONV_TYPES)}"
        ) from None


def select(**properties) -> tuple[str, ...]:
    """Names of the types whose properties match, in catalogue order. A property given
    as a tuple, list or set matches any of its values: `select(ndim=2,
    composition=("dense", "product"), transposed=False)`."""
    fields = ConvType.__dataclass_fields__
    for key in properties:
        if key not in fields or key in ("name", "seed_section", "summary", "weight_shapes"):
            raise ValueError(f"properties: {key!r} is not a type property")

    def matches(t: ConvType) -> bool:
        for key, want in properties.items():
            have = getattr(t, key)
            if have not in want if isinstance(want, (tuple, list, set, frozenset)) else \
                    have != want:
                return False
        return True

    return tuple(t.name for t in CATALOGUE.values() if matches(t))


def single_kernel(name: str) -> bool:
    """True if the type stands for one grouped kernel w[k, c/g, *kernel] (full_kernel)."""
    t = conv_type(name)
    return not t.transposed and t.composition in ("dense", "product")


def check_spec(name: str, spec: ConvSpec) -> None:
    """Raise ValueError if `spec` does not fit conv type `name`."""
    if not isinstance(spec, ConvSpec):
        raise ValueError(f"spec: expected a ConvSpec, got {type(spec).__name__}")
    why = conv_type(name).rules(spec)
    if why:
        raise ValueError(f"{why} ({name})")


def check_inputs(name: str, spec: ConvSpec, x, weights,
                 layout: str = NCHW) -> tuple[np.ndarray, tuple]:
    """Validate x (in `layout`: kernels.layout) and weights against the spec; return them
    as C-contiguous float32."""
    x_shape, weight_names, weight_shapes = _expected_shapes(name, spec)
    if layout != NCHW:
        x_shape = input_shape(spec, check_layout(layout))
    x = _checked_array("x", x, x_shape, layout=layout)
    return x, _checked_weights(name, weight_names, weight_shapes, weights)


def check_weights(name: str, spec: ConvSpec, weights) -> tuple:
    """Validate the spec and the weights (one array, or a tuple in the type's order)
    against the type; return them as a tuple of C-contiguous float32 arrays."""
    _, weight_names, weight_shapes = _expected_shapes(name, spec)
    return _checked_weights(name, weight_names, weight_shapes, weights)


def check_x(spec: ConvSpec, x, layout: str = NCHW, shape: tuple | None = None) -> np.ndarray:
    """Validate the input x (a float32 array of spec's input shape in `layout`, which a
    caller that asks often passes as `shape`); return it C-contiguous."""
    return _checked_array("x", x, shape or input_shape(spec, layout), layout=layout)


def _expected_shapes(name: str, spec: ConvSpec) -> tuple:
    """(x's shape, the weight names, their shapes) once `spec` passed the type's rules."""
    if not isinstance(spec, ConvSpec) or not isinstance(name, str):
        check_spec(name, spec)  # raises (and such a spec or name may not be hashable)
    return _shapes_of(name, spec)


@functools.lru_cache(maxsize=4096)
def _shapes_of(name: str, spec: ConvSpec) -> tuple:
    """Cached (a refusal raises and is not): a small layer's call is a few microseconds,
    and the checks were a fifth of them."""
    check_spec(name, spec)
    t = conv_type(name)
    return (spec.input_shape, t.weight_names,
            tuple(tuple(shape) for shape in t.weight_shapes(spec)))


def _checked_weights(name: str, weight_names, weight_shapes, weights) -> tuple:
    if isinstance(weights, np.ndarray):
        weights = (weights,)
    if not isinstance(weights, (tuple, list)) or len(weights) != len(weight_names):
        raise ValueError(
            f"weights: {name} takes {len(weight_names)} weight arrays "
            f"({', '.join(weight_names)})"
        )
    checked = [_checked_array("weights", w, shape, wname)
               for wname, w, shape in zip(weight_names, weights, weight_shapes)]
    return tuple(checked)


def _checked_array(field: str, a, shape: tuple, item: str = "", layout: str = "") -> np.ndarray:
    if type(a) is np.ndarray and a.dtype == np.float32 and a.shape == shape:
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)
    field = f"{field}[{item}]" if item else field  # built only for the message
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{field}: expected a numpy array, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise ValueError(f"{field}: dtype must be float32, got {a.dtype}")
    if a.shape != shape:
        where = f" in layout {layout}" if layout else ""
        raise ValueError(f"{field}: shape must be {shape}{where}, got {a.shape}")
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def make_inputs(name: str, spec: ConvSpec, seed: int = 0,
                layout: str = NCHW) -> tuple[np.ndarray, tuple]:
    """Random float32 input (in `layout`) and weights, scaled so outputs stay O(1) at any
    fan-in. The values do not depend on the layout: the channels-last x is the NCHW one
    transposed, and the weights are the same arrays."""
    check_spec(name, spec)
    check_layout(layout)
    t = conv_type(name)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape, dtype=np.float32)
    if layout != NCHW:
        x = to_nhwc(x)
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

    Not defined for transposed types (their kernel is w[c, k/g, ...]) and staged
    compositions (more than one convolution): see `single_kernel`.
    """
    t = conv_type(name)
    if not single_kernel(name):
        raise ValueError(f"conv_type: {name} has no single dense kernel")
    if t.composition == "product":
        return np.einsum(t.product, *weights)
    return weights[0]


def shuffle_permutation(k: int, groups: int) -> np.ndarray:
    """dest[j]: where channel j of the grouped conv lands after ShuffleNet's channel shuffle.

    ShuffleNet reshapes (g, k/g) -> transposes -> flattens, so channel
    i*(k/g) + m moves to m*g + i.
    """
    j = np.arange(k)
    per = k // groups
    return (j % per) * groups + j // per
