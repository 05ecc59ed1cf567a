"""Peers: other libraries' convolutions, timed in the same sweep as extra "algorithms".

`torch` is PyTorch's CPU convolution (oneDNN), the yardstick; `scipy` is
scipy.signal's correlate for the single-channel 2-D problems it covers.
Each peer gives a zero-argument callable that computes the same output as
`kernels.run` (weights prepared outside the call, like a framework's
parameters), or a reason why it does not apply.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kernels.types import flip_spatial, full_kernel

# The one list of peers: the sweep's planner, its verification, the worker, the gate
# (peers are reported, never gated) and the report all read it here.
PEERS = ("torch", "scipy")


def is_peer(algorithm: str) -> bool:
    """A peer library timed as an extra 'algorithm' (not one of ours)."""
    return algorithm in PEERS


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def peer_reason(peer: str, conv_type: str, spec) -> str | None:
    """None if `peer` can compute this problem, else why not."""
    if peer == "torch":
        return None if torch_available() else "PyTorch is not installed (pip install torch)"
    if peer == "scipy":
        if spec.ndim != 2 or spec.c != 1 or spec.k != 1 or spec.n != 1:
            return "scipy.signal covers single-image, single-channel 2-D problems only"
        if conv_type == "transposed2d" or any(s != 1 for s in spec.stride):
            return "scipy.signal has no stride or transposed convolution"
        if any(d != 1 for d in spec.dilation):
            return "scipy.signal has no dilation"
        return None
    return f"unknown peer {peer!r}; known: {', '.join(PEERS)}"


def torch_function(conv_type: str, spec, x, weights, dtype: str = "float32") -> Callable:
    """A callable computing `conv_type` with torch.nn.functional; returns a NumPy array."""
    import torch
    import torch.nn.functional as F

    tdtype = getattr(torch, dtype)

    def t(a):
        # a copy: flipped views have negative strides, which torch refuses
        return torch.from_numpy(np.array(a, order="C", copy=True)).to(tdtype)

    orient = (lambda w: flip_spatial(w, spec.ndim)) if spec.flip else (lambda w: w)
    args = dict(stride=spec.stride, padding=spec.padding, dilation=spec.dilation)
    xt = t(x)
    if conv_type == "transposed2d":
        wt = t(orient(weights[0]))
        return lambda: F.conv_transpose2d(xt, wt, groups=spec.groups,
                                          output_padding=spec.output_padding, **args).numpy()
    if conv_type == "depthwise_separable":
        dw, pw = t(orient(weights[0])), t(weights[1])
        return lambda: F.conv2d(F.conv2d(xt, dw, groups=spec.c, **args), pw).numpy()
    conv = F.conv3d if spec.ndim == 3 else F.conv2d
    if conv_type in ("spatially_separable", "flattened"):
        # the factored weights arrive raw, as they do for kernels.run: the full kernel is
        # built inside the timed call, as a model's forward pass would build it
        # every factor but the lateral 1x1 runs along one spatial axis: flip it there
        spatial = range(len(weights)) if conv_type == "spatially_separable" else (1, 2)
        f = [t(flip_spatial(a, 1) if spec.flip and i in spatial else a)
             for i, a in enumerate(weights)]
        if conv_type == "spatially_separable":
            col, row = f
            return lambda: conv(xt, col[:, :, :, None] * row[:, :, None, :], **args).numpy()
        lat, ver, hor = f

        def flattened():
            taps = ver[:, :, None] * hor[:, None, :]
            return conv(xt, lat[:, :, None, None] * taps[:, None], **args).numpy()

        return flattened
    wt = t(orient(full_kernel(conv_type, spec, weights)))
    if conv_type == "shuffled_grouped":
        # ShuffleNet's channel shuffle: reshape, transpose, flatten
        g, k = spec.groups, spec.k

        def shuffled():
            y = conv(xt, wt, groups=g, **args)
            return y.reshape(y.shape[0], g, k // g, *y.shape[2:]).transpose(1, 2).reshape(
                y.shape).numpy()

        return shuffled
    return lambda: conv(xt, wt, groups=spec.groups, **args).numpy()


def scipy_function(conv_type: str, spec, x, weights) -> Callable:
    """scipy.signal.correlate2d/convolve2d on the single channel, padded like the spec."""
    from scipy import signal

    w = full_kernel(conv_type, spec, weights)[0, 0] if conv_type != "depthwise_separable" \
        else weights[0][0, 0] * weights[1][0, 0, 0, 0]
    ph, pw = spec.padding
    img = np.pad(x[0, 0], ((ph, ph), (pw, pw)))
    op = signal.convolve2d if spec.flip else signal.correlate2d
    return lambda: op(img, w, mode="valid")[None, None]


def peer_function(peer: str, conv_type: str, spec, x, weights) -> Callable:
    why = peer_reason(peer, conv_type, spec)
    if why:
        raise ValueError(f"peer: {why}")
    if peer == "torch":
        return torch_function(conv_type, spec, x, weights)
    return scipy_function(conv_type, spec, x, weights)


def set_torch_threads(n: int) -> None:
    if torch_available():
        import torch

        torch.set_num_threads(n)
