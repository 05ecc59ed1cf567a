"""ConvSpec: one convolution problem, and its oneDNN benchdnn descriptor form.

A spec describes the *shape* of a problem (sizes, stride, padding, dilation,
groups, transposed, flip); the conv type (see `kernels.types`) says how the
weights are laid out and which specs fit it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import operator
import re
from dataclasses import dataclass, field

import numpy as np

_SPATIAL = ("size", "kernel", "stride", "padding", "dilation", "output_padding")

# Every count and spatial extent stays below 2**31, and every element count (input,
# output, weights) fits an int64, so no kernel index can overflow.
MAX_DIM = 2 ** 31 - 1
MAX_ELEMENTS = 2 ** 63 - 1
ECHO_CHARS = 200  # at most this much of a bad descriptor is echoed in an error message


def echo(text: str, limit: int = ECHO_CHARS) -> str:
    """repr(text), cut to about `limit` characters with '...' (errors echo user input)."""
    r = repr(text)
    return r if len(r) <= limit else r[:limit] + "..."


def _short(value) -> str:
    text = str(value) if math.log10(max(2, *(value if isinstance(value, tuple) else (value,)))) \
        < 100 else "a number of over 100 digits"
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "..."


def _escape_name(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def _unescape_name(text: str) -> str:
    return re.sub(r'\\(["\\])', r"\1", text)


def _integer(value, name: str) -> int:
    """An int from a Python or NumPy integer; bools, floats, strings and the rest refused."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name}: expected an integer, got {_echo_value(value)}") from None


def _echo_value(value) -> str:
    return echo(value) if isinstance(value, str) else _cut(repr(value))


def _cut(text: str) -> str:
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "..."


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _items(value, name: str) -> tuple | None:
    """The items of a tuple field's value (None for a single integer)."""
    if _is_integer(value):
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name}: expected an int or a tuple of ints, got "
                         f"{_echo_value(value)}")
    items = []
    for v in value:  # at most 4 read: a spec has 1, 2 or 3 spatial dimensions
        items.append(v)
        if len(items) > 3:
            break
    return tuple(items)


def _as_tuple(value, ndim: int, name: str) -> tuple[int, ...]:
    items = _items(value, name)
    if items is None:
        return (_integer(value, name),) * ndim
    if len(items) != ndim:
        raise ValueError(
            f"{name}: has {len(items) if len(items) <= 3 else 'more than 3'} dimensions but "
            f"the spec has {ndim} spatial dimensions"
        )
    return tuple(_integer(v, name) for v in items)


def _boolean(value, name: str) -> bool:
    """True or False (Python or NumPy bools only: "no" and 2 are not answers)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected True or False, got {_echo_value(value)}")
    return bool(value)


def conv_out_size(i: int, k: int, s: int, p: int, d: int) -> int:
    """Output length of a convolution (Dumoulin & Visin, relationship 15)."""
    return (i + 2 * p - d * (k - 1) - 1) // s + 1


def deconv_out_size(i: int, k: int, s: int, p: int, d: int, a: int) -> int:
    """Output length of a transposed convolution with output_padding `a`."""
    return s * (i - 1) - 2 * p + d * (k - 1) + a + 1


@dataclass(frozen=True)
class ConvSpec:
    """A convolution problem. Integers given for tuple fields broadcast.

    `dilation` is 1-based (1 = dense) like PyTorch; benchdnn's 0-based
    dilation is converted by `parse` and `__str__`.
    """

    n: int = 1
    c: int = 1
    k: int = 1
    size: tuple[int, ...] | int = (1, 1)
    kernel: tuple[int, ...] | int = (1, 1)
    stride: tuple[int, ...] | int = 1
    padding: tuple[int, ...] | int = 0
    dilation: tuple[int, ...] | int = 1
    groups: int = 1
    output_padding: tuple[int, ...] | int = 0
    transposed: bool = False
    flip: bool = False
    name: str = field(default="", compare=False)

    def __post_init__(self):
        ndim = None
        for fname in ("size", "kernel"):
            items = _items(getattr(self, fname), fname)
            if items is not None:
                ndim = len(items)
                break
        ndim = 2 if ndim is None else ndim
        if ndim not in (1, 2, 3):
            raise ValueError(f"{fname}: 1, 2 or 3 spatial dimensions are supported, got "
                             f"{ndim if ndim <= 3 else 'more than 3'}")
        for fname in _SPATIAL:
            object.__setattr__(self, fname, _as_tuple(getattr(self, fname), ndim, fname))
        for fname in ("n", "c", "k", "groups"):
            object.__setattr__(self, fname, _integer(getattr(self, fname), fname))
        for fname in ("transposed", "flip"):
            object.__setattr__(self, fname, _boolean(getattr(self, fname), fname))
        if not isinstance(self.name, str):
            raise ValueError(f"name: expected a string, got {type(self.name).__name__} "
                             f"{_echo_value(self.name)}")
        self._validate()

    # ------------------------------------------------------------------ rules
    def _validate(self):
        for fname in ("n", "c", "k", "groups"):
            if getattr(self, fname) < 1:
                raise ValueError(f"{fname}: must be positive, got {getattr(self, fname)}")
        if max(self.n, self.c, self.k, self.groups, *self.size, *self.kernel, *self.stride,
               *self.padding, *self.dilation, *self.output_padding) > MAX_DIM:
            # one max() on the fast path: specs are built on every call of the composites
            for fname in ("n", "c", "k", "groups", *_SPATIAL):
                v = getattr(self, fname)
                if max(v if isinstance(v, tuple) else (v,)) > MAX_DIM:
                    raise ValueError(f"{fname}: must be below 2**31, got {_short(v)}")
        for fname in ("size", "kernel", "stride", "dilation"):
            if min(getattr(self, fname)) < 1:
                raise ValueError(f"{fname}: must be positive, got {getattr(self, fname)}")
        if min(self.padding) < 0:
            raise ValueError(f"padding: must be non-negative, got {self.padding}")
        if min(self.output_padding) < 0:
            raise ValueError(f"output_padding: must be non-negative, got {self.output_padding}")
        if self.c % self.groups:
            raise ValueError(f"groups: must divide c (c={self.c}, groups={self.groups})")
        if self.k % self.groups:
            raise ValueError(f"groups: must divide k (k={self.k}, groups={self.groups})")
        if self.transposed:
            for a, s, d in zip(self.output_padding, self.stride, self.dilation):
                if a >= max(s, d):
                    raise ValueError(
                        f"output_padding: must be smaller than stride or dilation "
                        f"(output_padding={self.output_padding}, stride={self.stride}, "
                        f"dilation={self.dilation})"
                    )
        elif any(self.output_padding):
            raise ValueError("output_padding: only a transposed spec may have output_padding")
        if not self.transposed:
            for i, k, p, d in zip(self.size, self.kernel, self.padding, self.dilation):
                if d * (k - 1) + 1 > i + 2 * p:
                    raise ValueError(
                        f"kernel: the dilated kernel ({self.kernel} at dilation {self.dilation}) "
                        f"is larger than the padded input ({self.size} + 2*{self.padding})"
                    )
        out_size = self.out_size
        if min(out_size) < 1:
            raise ValueError(f"padding: leaves an empty output {out_size}")
        n_in = self.n * self.c * math.prod(self.size)
        n_out = self.n * self.k * math.prod(out_size)
        n_w = self.k * (self.c // self.groups) * math.prod(self.kernel)
        if max(n_in, n_out, n_w) > MAX_ELEMENTS:
            for fname, what, count in (
                ("size", "input", n_in), ("size", "output", n_out), ("kernel", "weights", n_w),
            ):
                if count > MAX_ELEMENTS:
                    raise ValueError(f"{fname}: the {what} would have {count:.3g} elements, "
                                     f"more than an int64 can count")

    def __hash__(self) -> int:
        # cached: specs key the per-call caches (checks, geometry), and hashing 12 fields
        # anew was a tenth of a tiny layer's call
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash(tuple(getattr(self, f.name) for f in dataclasses.fields(self) if f.compare))
            self.__dict__["_hash"] = h
        return h

    # ------------------------------------------------------------- derived
    # The shapes are cached on the instance (a spec is immutable): `kernels.run` reads
    # them on every call, and working them out took most of a tiny layer's microseconds.
    @property
    def ndim(self) -> int:
        return len(self.size)

    @functools.cached_property
    def out_size(self) -> tuple[int, ...]:
        if self.transposed:
            return tuple(
                deconv_out_size(*t)
                for t in zip(self.size, self.kernel, self.stride, self.padding, self.dilation,
                             self.output_padding)
            )
        return tuple(
            conv_out_size(*t)
            for t in zip(self.size, self.kernel, self.stride, self.padding, self.dilation)
        )

    @functools.cached_property
    def input_shape(self) -> tuple[int, ...]:
        return (self.n, self.c, *self.size)

    @functools.cached_property
    def output_shape(self) -> tuple[int, ...]:
        return (self.n, self.k, *self.out_size)

    def replace(self, **changes) -> ConvSpec:
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------ descriptors
    def __str__(self) -> str:
        dims = "dhw"[3 - self.ndim:]
        parts = [f"g{self.groups}" if self.groups > 1 else "", f"mb{self.n}", f"ic{self.c}"]
        parts += [f"i{d}{v}" for d, v in zip(dims, self.size)]
        parts.append(f"oc{self.k}")
        parts += [f"o{d}{v}" for d, v in zip(dims, self.out_size)]
        parts += [f"k{d}{v}" for d, v in zip(dims, self.kernel)]
        if any(s != 1 for s in self.stride):
            parts += [f"s{d}{v}" for d, v in zip(dims, self.stride)]
        if any(self.padding):
            parts += [f"p{d}{v}" for d, v in zip(dims, self.padding)]
        if any(d != 1 for d in self.dilation):
            parts += [f"d{d}{v - 1}" for d, v in zip(dims, self.dilation)]
        text = "".join(parts)
        if self.transposed:
            text = "deconv:" + text
        if self.flip:
            text += "_flip"
        if self.name:
            text += f'n"{_escape_name(self.name)}"'
        return text

    @classmethod
    def parse(cls, text: str, transposed: bool = False) -> ConvSpec:
        """Read a benchdnn conv (or, with transposed=True, deconv) descriptor.

        Accepts this class's own `str()` form too: a `deconv:` prefix marks a
        transposed spec and a `_flip` suffix a true (flipped) convolution.
        """
        return _parse_descriptor(text, transposed)


# a name is quoted; inside it `\"` is a quote and `\\` a backslash (a lone backslash is literal)
_NAME_RE = re.compile(r'n"((?:[^"\\]|\\["\\]|\\(?!["\\]))*)"\s*$')
_FIELDS = r"(mb|ic|oc|id|ih|iw|od|oh|ow|kd|kh|kw|sd|sh|sw|pd|ph|pw|dd|dh|dw|g)"
_TOKEN_RE = re.compile(_FIELDS + r"([0-9]+)")
# any Unicode decimal digit (Arabic-Indic, full-width, ...): only to name the field in the error
_ANY_DIGITS_RE = re.compile(_FIELDS + r"(\d+)")


def _parse_descriptor(text: str, transposed: bool) -> ConvSpec:
    if not isinstance(text, str):
        raise ValueError(f"descriptor: expected a string, got {type(text).__name__}")
    transposed = _boolean(transposed, "transposed")
    body = text.strip()
    name = ""
    m = _NAME_RE.search(body)
    if m:
        name = _unescape_name(m.group(1))
        body = body[: m.start()]
    if body.startswith("deconv:"):
        transposed = True
        body = body[len("deconv:"):]
    flip = False
    if body.endswith("_flip"):
        flip = True
        body = body[: -len("_flip")]
    for tok in _ANY_DIGITS_RE.finditer(body):
        if not tok.group(2).isascii():
            raise ValueError(f"{tok.group(1)}: only the ASCII digits 0-9 are read, got "
                             f"{echo(tok.group(2), 40)} in {echo(text)}")
    values: dict[str, int] = {}
    pos = 0
    for tok in _TOKEN_RE.finditer(body):
        gap = body[pos:tok.start()].replace("_", "")
        if gap:
            raise ValueError(f"descriptor: cannot read {echo(gap, 60)} in {echo(text)}")
        if tok.group(1) in values:
            raise ValueError(f"descriptor: field {tok.group(1)!r} given twice in {echo(text)}")
        if len(tok.group(2).lstrip("0")) > 18:
            raise ValueError(f"{tok.group(1)}: value {echo(tok.group(2), 40)} is too large "
                             f"(at most 2**31 - 1) in {echo(text)}")
        values[tok.group(1)] = int(tok.group(2))
        pos = tok.end()
    rest = body[pos:].replace("_", "")
    if rest:
        raise ValueError(f"descriptor: cannot read {echo(rest, 60)} in {echo(text)}")
    for req in ("ic", "oc"):
        if req not in values:
            raise ValueError(f"descriptor: {req} is required in {echo(text)}")
    if not any(f"i{d}" in values for d in "dhw"):
        raise ValueError(f"descriptor: an input size (ih, iw or id) is required in {echo(text)}")

    three_d = any(f"{p}d" in values for p in ("i", "o", "k", "s", "p", "d"))
    dims = "dhw" if three_d else "hw"

    def get(prefix: str, default: int | None) -> list[int | None]:
        # benchdnn: an omitted spatial dim copies a given one (w from h, h from w, d from h)
        out = {d: values.get(prefix + d) for d in dims}
        given = [out[d] for d in ("h", "w", "d") if d in out and out[d] is not None]
        fill = given[0] if given else default
        return [out[d] if out[d] is not None else fill for d in dims]

    size = get("i", None)
    kernel = get("k", 1)
    stride = get("s", 1)
    dil0 = get("d", 0)
    dilation = [d + 1 for d in dil0]
    given_out = get("o", None)
    pad_given = any(f"p{d}" in values for d in dims)
    padding = get("p", 0)
    if not pad_given and any(o is not None for o in given_out):
        # benchdnn derives the padding from a given output size
        padding = []
        for i, k, s, d, o in zip(size, kernel, stride, dilation, given_out):
            if o is None:
                padding.append(0)
            elif transposed:
                padding.append(max(0, ((i - 1) * s - o + d * (k - 1) + 1) // 2))
            else:
                padding.append(max(0, ((o - 1) * s - i + d * (k - 1) + 1) // 2))
    out_pad = [0] * len(dims)
    if transposed and any(o is not None for o in given_out):
        for j, (i, k, s, p, d, o) in enumerate(
            zip(size, kernel, stride, padding, dilation, given_out)
        ):
            if o is not None:
                out_pad[j] = o - deconv_out_size(i, k, s, p, d, 0)
                if out_pad[j] < 0:
                    raise ValueError(
                        f"o{dims[j]}: given {o} but a transposed conv of i{dims[j]}={i} gives at "
                        f"least {deconv_out_size(i, k, s, p, d, 0)}"
                    )
    spec = ConvSpec(
        n=values.get("mb", 2), c=values["ic"], k=values["oc"], size=tuple(size),
        kernel=tuple(kernel), stride=tuple(stride), padding=tuple(padding),
        dilation=tuple(dilation), groups=values.get("g", 1), output_padding=tuple(out_pad),
        transposed=transposed, flip=flip, name=name,
    )
    for d, o, actual in zip(dims, given_out, spec.out_size):
        if o is not None and o != actual:
            raise ValueError(
                f"o{d}: the descriptor gives {o} but the arithmetic gives {actual} "
                f"for {echo(text)}"
            )
    return spec


def spec_macs(spec: ConvSpec) -> int:
    """Multiply-adds of the dense grouped convolution the spec describes, padded taps included."""
    taps = (spec.c // spec.groups) * math.prod(spec.kernel)
    if spec.transposed:
        return spec.n * spec.c * math.prod(spec.size) * (spec.k // spec.groups) * math.prod(
            spec.kernel)
    return spec.n * spec.k * math.prod(spec.out_size) * taps
