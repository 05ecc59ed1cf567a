"""Which direct form runs a transposed convolution, chosen by shape in prepare.

- tiny layers (`small.is_small`): the serial gather loop, all overhead kept out;
- dilation 1: the sub-pixel form (`subpixel`), stride-phase dense convolutions on the
  register-blocked dense or pointwise kernel;
- dilation > 1: the gather form (`transposed`), whose taps per output phase are worked
  out per row (a dilated kernel's phases do not split it into strided sub-kernels).

The state is (execute function, its state), so execute is one call away from the form
(`small.execute_form`).
"""

from __future__ import annotations

import numpy as np

from ..spec import ConvSpec
from .small import execute_form, execute_transposed_small, is_small, prepare_transposed_small
from .subpixel import execute_subpixel, prepare_subpixel
from .transposed import execute_transposed, prepare_transposed

FORMS = {
    "small": (prepare_transposed_small, execute_transposed_small),
    "subpixel": (prepare_subpixel, execute_subpixel),
    "gather": (prepare_transposed, execute_transposed),
}


def transposed_form(spec: ConvSpec) -> str:
    """The name of the form (a key of FORMS) that runs `spec`."""
    if is_small(spec):
        return "small"
    if all(d == 1 for d in spec.dilation):
        return "subpixel"
    return "gather"


def prepare_direct_transposed(spec: ConvSpec, w: np.ndarray) -> tuple:
    prepare, execute = FORMS[transposed_form(spec)]
    return execute, prepare(spec, w)


execute_direct_transposed = execute_form
