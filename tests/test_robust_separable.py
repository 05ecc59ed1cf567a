"""Non-finite weights on the separable algorithm (issue 29, items 1 and 3).

Its SVD (and the channel bank's eigendecomposition) of a kernel with an Inf never
returned (LAPACK's dgesdd loops, out of reach of Ctrl-C), a NaN raised LinAlgError
naming no field, and transposed2d returned an all-finite output for one +Inf weight.
Every SVD/Tucker path now refuses such weights in its prepare step, for `run` and
`plan` alike, with a ValueError naming `weights`. The calls run in a child process
with a timeout, so a regression shows as a failure, not as a hung suite.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import kernels
from kernels import ConvSpec

# every type whose separable cell factors its weights by SVD or by the channel bank
SPECS = {
    "depthwise": "g8mb2ic8ih11oc8oh11kh3ph1",
    "depthwise_separable": "mb1ic6ih12oc10oh12kh3ph1",
    "grouped": "g2mb1ic8ih10oc8oh10kh3ph1",
    "shuffled_grouped": "g4mb1ic8ih10oc8oh10kh3ph1",
    "conv2d": "mb1ic4ih10oc4oh10kh3ph1",
    "conv2d_bank": "mb1ic64ih10oc64oh10kh5ph2",
    "dilated2d": "mb1ic4ih15oc4oh15kh3ph2dh1",
    "conv3d": "mb1ic4id6ih6oc6od6oh6kd3kh3ph1pd1",
    "transposed2d": "deconv:mb1ic4ih7oc6oh13kh3sh2ph1",
}
VALUES = {"inf": "np.inf", "-inf": "-np.inf", "nan": "np.nan"}

CHILD = """
import json, sys
import numpy as np
import kernels
from kernels import ConvSpec
out = {}
for case, text in json.loads(sys.argv[1]).items():
    conv_type = case.replace("_bank", "")
    spec = ConvSpec.parse(text)
    for name, value in %s.items():
        for mode in ("run", "plan"):
            x, w = kernels.make_inputs(conv_type, spec)
            w = tuple(a.copy() for a in w)
            w[0].flat[w[0].size // 2] = eval(value)
            try:
                if mode == "run":
                    y = kernels.run(conv_type, "separable", spec, x, w)
                else:
                    y = kernels.plan(conv_type, "separable", spec, w)(x)
                got = "finite" if np.isfinite(y).all() else "non-finite"
            except ValueError as exc:
                got = "ValueError: " + str(exc)
            except Exception as exc:
                got = type(exc).__name__ + ": " + str(exc)
            out[f"{case} {name} {mode}"] = got
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def outcomes() -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD % (VALUES,), json.dumps(SPECS)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", sorted(SPECS))
@pytest.mark.parametrize("value", sorted(VALUES))
@pytest.mark.parametrize("mode", ["run", "plan"])
def test_non_finite_weight_is_refused_naming_weights(outcomes, case, value, mode):
    got = outcomes[f"{case} {value} {mode}"]
    assert got.startswith("ValueError: weights: must be finite"), got
    assert "separable" in got and "\n" not in got


def test_finite_weights_still_run():
    # the check refuses only what it must: the same specs with finite weights run
    for case, text in SPECS.items():
        conv_type = case.replace("_bank", "")
        spec = ConvSpec.parse(text)
        x, w = kernels.make_inputs(conv_type, spec)
        y = kernels.run(conv_type, "separable", spec, x, w)
        ref = kernels.reference(conv_type, spec, x, w)
        assert np.isfinite(y).all()
        assert kernels.accuracy.error(y, ref) <= kernels.accuracy.bound(
            "separable", conv_type, spec), case


def test_huge_finite_weights_are_not_refused():
    # finite but near float32's top: the float64 factorisation holds them
    spec = ConvSpec.parse(SPECS["depthwise"])
    x, w = kernels.make_inputs("depthwise", spec)
    w = (w[0] * np.float32(1e30),)
    y = kernels.run("depthwise", "separable", spec, x, w)
    assert np.isfinite(y).all()


def test_factor_helpers_refuse_non_finite_kernels():
    from kernels.separable import factor

    k = np.ones((3, 3))
    k[1, 1] = np.inf
    for fn in (factor.singular_values, factor.numerical_rank, factor.rank1_terms):
        with pytest.raises(ValueError, match="^weights: must be finite"):
            fn(k)


@pytest.mark.parametrize("conv_type", ["spatially_separable", "flattened"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_native_factors_propagate_non_finite_weights(conv_type, value):
    # these cells run their own factors (no SVD): a non-finite weight reaches exactly the
    # outputs it reaches in the reference, none comes back finite
    spec = ConvSpec(n=1, c=4, k=6, size=10, kernel=3, padding=1)
    x, w = kernels.make_inputs(conv_type, spec)
    w = tuple(a.copy() for a in w)
    w[0].flat[1] = value
    with np.errstate(all="ignore"):
        y = kernels.run(conv_type, "separable", spec, x, w)
        ref = kernels.reference(conv_type, spec, x, w)
    assert (~np.isfinite(ref)).any()
    assert np.array_equal(~np.isfinite(y), ~np.isfinite(ref))
