"""Fuzzing the spec and the memory guard with random, often absurd values (issue 29).

Every call returns or raises ValueError (no other exception), and answers fast: the
memory guard works from closed forms, so no spec makes it loop or allocate.
"""

from __future__ import annotations

import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernels
from kernels import ConvSpec

SECONDS = 1.0  # per call; the answers take microseconds
ALGORITHMS = (*kernels.ALGORITHMS, "reference")

# integers of every size and sign, NumPy integers, and things that are not integers
big = st.one_of(st.integers(-3, 40), st.integers(-2 ** 70, 2 ** 70),
                st.sampled_from([2 ** 31 - 1, 2 ** 31, 2 ** 63, 2 ** 20, 4096]))
junk = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=5),
                 st.just(object()), st.just(np.float32(3)), st.just(np.bool_(True)))
integer = st.one_of(big, big.filter(lambda v: -2 ** 63 <= v < 2 ** 63).map(np.int64))
value = st.one_of(integer, junk, st.lists(st.one_of(integer, junk), max_size=5).map(tuple))


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    except ValueError:
        return None
    finally:
        assert time.perf_counter() - t0 < SECONDS, (fn.__name__, args, kwargs)


FIELDS = ("n", "c", "k", "size", "kernel", "stride", "padding", "dilation", "groups",
          "output_padding", "transposed", "flip", "name")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), value, max_size=6))
def test_convspec_with_any_values(kwargs):
    _timed(ConvSpec, **kwargs)


TOKENS = ("mb", "ic", "oc", "id", "ih", "iw", "od", "oh", "ow", "kd", "kh", "kw", "sd", "sh",
          "sw", "pd", "ph", "pw", "dd", "dh", "dw", "g", "_", "deconv:", "_flip", 'n"x"')
digits = st.one_of(st.integers(0, 2 ** 40).map(str), st.text("0123456789\u0663\uff15", max_size=4))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(TOKENS), digits), max_size=12),
       st.one_of(st.booleans(), junk))
def test_parse_any_descriptor(parts, transposed):
    _timed(ConvSpec.parse, "".join(a + b for a, b in parts), transposed=transposed)


@st.composite
def valid_specs(draw):
    """Specs the constructor accepts, with sizes, kernels, strides and dilations of any
    magnitude (the padding then makes the dilated kernel fit)."""
    ndim = draw(st.sampled_from([1, 2, 3]))
    extent = st.one_of(st.integers(1, 9), st.integers(1, 2 ** 31 - 1))
    size = tuple(draw(extent) for _ in range(ndim))
    kernel = tuple(draw(st.one_of(st.integers(1, 7), st.integers(1, 2 ** 20)))
                   for _ in range(ndim))
    dilation = tuple(draw(st.one_of(st.integers(1, 4), st.integers(1, 2 ** 30)))
                     for _ in range(ndim))
    stride = tuple(draw(st.one_of(st.integers(1, 3), st.integers(1, 2 ** 30)))
                   for _ in range(ndim))
    transposed = draw(st.booleans())
    padding = tuple(max(0, -(-(d * (k - 1) + 1 - i) // 2)) + draw(st.integers(0, 2))
                    for i, k, d in zip(size, kernel, dilation))
    groups = draw(st.sampled_from([1, 2, 4]))
    c = groups * draw(st.one_of(st.integers(1, 8), st.integers(1, 2 ** 20)))
    k = groups * draw(st.one_of(st.integers(1, 8), st.integers(1, 2 ** 20)))
    if transposed:
        padding = tuple(min(p, d * (kk - 1)) for p, kk, d in zip(padding, kernel, dilation))
    try:
        return ConvSpec(n=draw(st.integers(1, 4)), c=c, k=k, size=size, kernel=kernel,
                        stride=stride, padding=padding, dilation=dilation, groups=groups,
                        transposed=transposed)
    except ValueError:
        return ConvSpec(c=c, k=k, size=9, kernel=3, groups=groups)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs(), st.sampled_from(kernels.CONV_TYPES), st.sampled_from(ALGORITHMS),
       st.sampled_from(["call", "plan"]))
def test_supports_and_estimate_on_any_spec(spec, conv_type, algorithm, mode):
    if algorithm != "reference":
        why = _timed(kernels.supports, conv_type, algorithm, spec)
        assert why is None or isinstance(why, str) and "\n" not in why
    est = _timed(kernels.memory_estimate, conv_type, algorithm, spec,
                 mode="call" if algorithm == "reference" else mode)
    if est is not None:
        assert est["total"] >= est["output"] > 0
        assert est["total"] == est["output"] + est["workspace"] + est["weights"]


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.sampled_from(kernels.CONV_TYPES), junk),
       st.one_of(st.sampled_from(ALGORITHMS), junk), st.one_of(valid_specs(), junk))
def test_supports_and_estimate_on_bad_names(conv_type, algorithm, spec):
    _timed(kernels.supports, conv_type, algorithm, spec)
    _timed(kernels.memory_estimate, conv_type, algorithm, spec)
