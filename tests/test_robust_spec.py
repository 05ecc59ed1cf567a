"""ConvSpec input validation and the memory limit's parsing (issue 29, items 6 and 10).

Each bad value is a ValueError whose message starts with the field it names; NumPy
integers are integers.
"""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from kernels import ConvSpec, memory


@pytest.fixture(autouse=True)
def _default_limit(monkeypatch):
    monkeypatch.delenv(memory.ENV_VAR, raising=False)
    kernels.set_memory_limit(None)
    yield
    kernels.set_memory_limit(None)


@pytest.mark.parametrize("kwargs, field", [
    (dict(name=123), "name"),
    (dict(name=b"conv1"), "name"),
    (dict(transposed="no"), "transposed"),
    (dict(transposed=1), "transposed"),
    (dict(flip="yes"), "flip"),
    (dict(flip=None), "flip"),
    (dict(size=None), "size"),
    (dict(size=5.0), "size"),
    (dict(size="55"), "size"),
    (dict(size=(5, 5.5)), "size"),
    (dict(kernel=object()), "kernel"),
    (dict(size=range(10 ** 12)), "size"),
    (dict(c=np.float32(2)), "c"),
    (dict(n="1"), "n"),
    (dict(groups=True), "groups"),
    (dict(stride=np.bool_(True)), "stride"),
])
def test_bad_field_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError) as err:
        ConvSpec(**kwargs)
    msg = str(err.value)
    assert msg.startswith(f"{field}: "), msg
    assert "\n" not in msg and len(msg) < 400


def test_numpy_integers_are_integers():
    spec = ConvSpec(n=np.int32(1), c=np.int64(4), k=np.uint8(6), size=np.int64(5),
                    kernel=(np.int16(3), 3), padding=np.int64(1), groups=np.int64(2))
    assert spec == ConvSpec(n=1, c=4, k=6, size=5, kernel=3, padding=1, groups=2)
    assert all(type(v) is int for v in (spec.n, spec.c, spec.k, spec.groups, *spec.size,
                                         *spec.kernel, *spec.padding))
    assert ConvSpec(size=np.array([7, 8]), kernel=np.array([3, 3])).size == (7, 8)
    assert ConvSpec(transposed=np.bool_(True), stride=2, size=3).transposed is True
    assert hash(spec) == hash(ConvSpec(n=1, c=4, k=6, size=5, kernel=3, padding=1, groups=2))


@pytest.mark.parametrize("text, field", [
    ("mb1ic\u0663ih5oc1", "ic"),          # Arabic-Indic three
    ("mb1ic3ih\uff15oc1", "ih"),          # full-width five
    ("mb1ic3ih5oc1kh\u09e9", "kh"),       # Bengali three
])
def test_descriptor_reads_ascii_digits_only(text, field):
    with pytest.raises(ValueError) as err:
        ConvSpec.parse(text)
    assert str(err.value).startswith(f"{field}: only the ASCII digits")


def test_parse_transposed_is_a_bool():
    with pytest.raises(ValueError, match="^transposed: "):
        ConvSpec.parse("mb1ic3ih5oc1", transposed="no")
    assert ConvSpec.parse("mb1ic4ih5oc6oh9kh3sh2ph1", transposed=True).transposed


# ------------------------------------------------------------------ the memory limit
@pytest.mark.parametrize("text", ["8GG", "8 G B x", "G", "1e9", "-1G", "8X", ""])
def test_bad_environment_limit_names_the_variable_and_the_forms(monkeypatch, text):
    monkeypatch.setenv(memory.ENV_VAR, text + " ")  # "" stays unset after strip: default
    if not text.strip():
        assert kernels.memory_limit() > 0
        return
    with pytest.raises(ValueError) as err:
        kernels.memory_limit()
    msg = str(err.value)
    assert msg.startswith(f"{memory.ENV_VAR}: ") and "512M" in msg and "8G" in msg


@pytest.mark.parametrize("value", [1.5, 1.0, 2e9, "1.5", "0.5", np.float64(8)])
def test_non_integral_limits_are_refused(value):
    with pytest.raises(ValueError) as err:
        kernels.set_memory_limit(value)
    msg = str(err.value)
    assert msg.startswith("nbytes: ") and "limit" in msg
    assert kernels.memory_limit() == memory.memory_limit()  # unchanged: still the default
    assert kernels.memory_limit() > 1


@pytest.mark.parametrize("value, expected", [
    (np.int64(1 << 30), 1 << 30), ("1.5K", 1536), ("123456789123456789", 123456789123456789),
    ("2 GiB", 2 << 30), ("0.5M", 1 << 19),
])
def test_integral_limits_are_exact(value, expected):
    kernels.set_memory_limit(value)
    assert kernels.memory_limit() == expected


def test_names_of_the_wrong_kind_are_value_errors():
    """run/plan/supports/multiplications with a list, dict or None for a name: ValueError
    naming the field (issue: `run(["conv2d"], ...)` raised TypeError)."""
    import kernels

    spec = kernels.ConvSpec.parse("mb1ic4ih8oc4oh8kh3ph1")
    x, w = kernels.make_inputs("conv2d", spec)
    for conv_type, algorithm, field in ((["conv2d"], "direct", "conv_type"),
                                        ("conv2d", ["direct"], "algorithm"),
                                        ({"a": 1}, "direct", "conv_type"),
                                        (None, "direct", "conv_type")):
        for call, args in ((kernels.run, (spec, x, w)), (kernels.plan, (spec, w)),
                           (kernels.supports, (spec,)), (kernels.multiplications, (spec,))):
            with pytest.raises(ValueError, match=f"^{field}: "):
                call(conv_type, algorithm, *args)
