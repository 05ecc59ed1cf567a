"""PyTorch's CPU convolution (oneDNN), in both timing modes.

`call`: `torch.nn.functional` on the raw weights, as a training step or an eager
forward pass calls it; the factored types build their full kernel inside the call.

`prepared`: the one-layer module (`harness.peers.layer`) scripted, frozen and passed
through `torch.jit.optimize_for_inference`, run under `torch.inference_mode`. That is
PyTorch's own documented CPU inference path that needs no compiler toolchain: freezing
makes the weights constants, and the optimisation pass converts the convolutions to
`prim::mkldnn_convolution` with the weights prepacked once into oneDNN's blocked layout
(`prim::ConstantMKLDNNTensor`), so the timed call holds only the input reorder, the
convolution and the output reorder. (Transposed convolutions are left as
`aten::conv_transpose2d` by the pass.) `torch.compile` was not chosen: it needs a C++
compiler at run time and minutes of compilation per layer, and on CPU it lowers
convolutions to the same oneDNN calls.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from kernels.types import flip_spatial, full_kernel

NAME = "torch"
MODES = ("call", "prepared")


def missing() -> str | None:
    try:
        import torch  # noqa: F401
    except ImportError:
        return "PyTorch is not installed (pip install torch)"
    return None


def reason(conv_type: str, spec, mode: str) -> str | None:
    return None


def set_threads(n: int) -> None:
    if missing() is None:
        import torch

        torch.set_num_threads(n)


def threading_layer() -> str:
    import torch

    info = torch.__config__.parallel_info()
    return "torch-" + ("openmp" if "OpenMP" in info else "native")


def function(conv_type: str, spec, x, weights, mode: str = "call",
             threads: int | None = None) -> Callable:
    if threads is not None:
        set_threads(threads)
    if mode == "prepared":
        return prepared_function(conv_type, spec, x, weights)
    return torch_function(conv_type, spec, x, weights)


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


def layer_module(conv_type: str, spec, weights):
    """The layer as an eval-mode `torch.nn.Module` holding its deployed weights."""
    import torch

    from harness.peers.layer import deployed_layer

    layer = deployed_layer(conv_type, spec, weights)
    mods = []
    for s in layer.stages:
        nd = s.weight.ndim - 2
        if s.transposed:
            m = torch.nn.ConvTranspose2d(
                s.weight.shape[0], s.weight.shape[1] * s.groups, s.weight.shape[2:],
                stride=s.stride, padding=s.padding, output_padding=s.output_padding,
                groups=s.groups, dilation=s.dilation, bias=False)
        else:
            cls = torch.nn.Conv3d if nd == 3 else torch.nn.Conv2d
            m = cls(s.weight.shape[1] * s.groups, s.weight.shape[0], s.weight.shape[2:],
                    stride=s.stride, padding=s.padding, dilation=s.dilation, groups=s.groups,
                    bias=False)
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(s.weight))
        mods.append(m)
    if layer.shuffle_groups:
        from harness.peers.torch_shuffle import ChannelShuffle

        mods.append(ChannelShuffle(layer.shuffle_groups))
    return torch.nn.Sequential(*mods).eval()


def prepared_function(conv_type: str, spec, x, weights) -> Callable:
    """The frozen, inference-optimised one-layer module (see the module's docstring)."""
    import torch

    module = layer_module(conv_type, spec, weights)
    with warnings.catch_warnings():  # torch 2.x marks torch.jit deprecated; it still works
        warnings.simplefilter("ignore", DeprecationWarning)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(module)))
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def prepared():
        with torch.inference_mode():
            return frozen(xt).numpy()

    prepared()  # the first run of a scripted module profiles and specialises it
    return prepared
