"""scipy.signal's correlate2d/convolve2d, for the single-channel 2-D problems it covers.

`call` mode only: scipy.signal takes the kernel with every call and prepares nothing
from it, so a `prepared` benchmark would time the same call under another name.
One image of one channel is the same memory in NCHW and NHWC: no reorder in either.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kernels.types import full_kernel

NAME = "scipy"
MODES = ("call",)
NATIVE_LAYOUT = "nchw"


def missing() -> str | None:
    return None  # SciPy is a dependency of the kernels


def reason(conv_type: str, spec, mode: str, layout: str = "nchw") -> str | None:
    if mode != "call":
        return ("scipy.signal has no prepared form: it takes the kernel with every call "
                "and transforms nothing ahead (timed in call mode only)")
    if spec.ndim != 2 or spec.c != 1 or spec.k != 1 or spec.n != 1:
        return "scipy.signal covers single-image, single-channel 2-D problems only"
    if conv_type == "transposed2d" or any(s != 1 for s in spec.stride):
        return "scipy.signal has no stride or transposed convolution"
    if any(d != 1 for d in spec.dilation):
        return "scipy.signal has no dilation"
    return None


def reorder_in_call(layout: str) -> bool:
    return False  # a single channel: (1, 1, h, w) and (1, h, w, 1) are the same memory


def threading_layer() -> str:
    return "none"


def function(conv_type: str, spec, x, weights, mode: str = "call",
             threads: int | None = None, layout: str = "nchw") -> Callable:
    """scipy.signal.correlate2d/convolve2d on the single channel, padded like the spec."""
    from scipy import signal

    w = full_kernel(conv_type, spec, weights)[0, 0] if conv_type != "depthwise_separable" \
        else weights[0][0, 0] * weights[1][0, 0, 0, 0]
    ph, pw = spec.padding
    img = np.pad(x.reshape(spec.size), ((ph, ph), (pw, pw)))  # the one image's one channel
    op = signal.convolve2d if spec.flip else signal.correlate2d
    shape = (1, 1, *spec.out_size) if layout == "nchw" else (1, *spec.out_size, 1)
    return lambda: op(img, w, mode="valid").reshape(shape)
