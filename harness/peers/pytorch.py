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

The NHWC contract is PyTorch's channels_last, as its speed-aware users run it: the input
is a zero-copy `torch.channels_last` view of the NHWC array, the weights are
`torch.channels_last` tensors (converted with the input, outside the timed call, in
`call` mode; in the module in `prepared` mode), and the channels_last output is returned
as the NHWC array it already is (no reorder in the call: oneDNN convolves NHWC
directly). `prepared` in this contract is the module in channels_last, scripted and
frozen (weights constant) but not passed through `optimize_for_inference`: that pass
converts to oneDNN's blocked layout with a reorder from channels_last before and an
NCHW output after, which is the NCHW path again.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from harness.peers.layouts import to_first_perm, to_last_perm
from kernels.types import flip_spatial, full_kernel

NAME = "torch"
MODES = ("call", "prepared")
NATIVE_LAYOUT = "nchw"  # and channels_last, natively: neither contract reorders in the call


def missing() -> str | None:
    try:
        import torch  # noqa: F401
    except ImportError:
        return "PyTorch is not installed (pip install torch)"
    return None


def reason(conv_type: str, spec, mode: str, layout: str = "nchw") -> str | None:
    return None


def reorder_in_call(layout: str) -> bool:
    return False  # NCHW tensors for "nchw", channels_last ones for "nhwc"


def channels_last_format(ndim: int):
    """torch's channels-last memory format for a tensor of `ndim` dimensions."""
    import torch

    return torch.channels_last_3d if ndim == 5 else torch.channels_last


def from_contract(x, layout: str):
    """The contract's input as a torch tensor of logical shape (n, c, *size): for "nhwc" a
    zero-copy channels_last view of the NHWC array."""
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return xt.permute(*to_first_perm(xt.ndim)) if layout == "nhwc" else xt


def to_contract(y, layout: str) -> np.ndarray:
    """A torch result (logical shape (n, k, *out_size)) as the contract's array; for
    "nhwc" a channels_last result is returned without a copy."""
    if layout == "nhwc":
        y = y.permute(*to_last_perm(y.ndim))
    return y.contiguous().numpy()  # contiguous() is free when it already is


def set_threads(n: int) -> None:
    if missing() is None:
        import torch

        torch.set_num_threads(n)


def threading_layer() -> str:
    import torch

    info = torch.__config__.parallel_info()
    return "torch-" + ("openmp" if "OpenMP" in info else "native")


def function(conv_type: str, spec, x, weights, mode: str = "call",
             threads: int | None = None, layout: str = "nchw") -> Callable:
    if threads is not None:
        set_threads(threads)
    if mode == "prepared":
        return prepared_function(conv_type, spec, x, weights, layout)
    return torch_function(conv_type, spec, x, weights, layout=layout)


def torch_function(conv_type: str, spec, x, weights, dtype: str = "float32",
                   layout: str = "nchw") -> Callable:
    """A callable computing `conv_type` with torch.nn.functional; returns a NumPy array
    in the `layout` contract (channels_last tensors for "nhwc")."""
    import torch
    import torch.nn.functional as F

    tdtype = getattr(torch, dtype)
    last = layout == "nhwc"

    def t(a):
        # a copy: flipped views have negative strides, which torch refuses
        a = torch.from_numpy(np.array(a, order="C", copy=True)).to(tdtype)
        return a.contiguous(memory_format=channels_last_format(a.ndim)) \
            if last and a.ndim >= 4 else a

    def out(y):
        return to_contract(y, layout)

    orient = (lambda w: flip_spatial(w, spec.ndim)) if spec.flip else (lambda w: w)
    args = dict(stride=spec.stride, padding=spec.padding, dilation=spec.dilation)
    xt = from_contract(x, layout).to(tdtype)
    if conv_type == "transposed2d":
        wt = t(orient(weights[0]))
        return lambda: out(F.conv_transpose2d(xt, wt, groups=spec.groups,
                                              output_padding=spec.output_padding, **args))
    if conv_type == "depthwise_separable":
        dw, pw = t(orient(weights[0])), t(weights[1])
        return lambda: out(F.conv2d(F.conv2d(xt, dw, groups=spec.c, **args), pw))
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
            return lambda: out(conv(xt, col[:, :, :, None] * row[:, :, None, :], **args))
        lat, ver, hor = f

        def flattened():
            taps = ver[:, :, None] * hor[:, None, :]
            return out(conv(xt, lat[:, :, None, None] * taps[:, None], **args))

        return flattened
    wt = t(orient(full_kernel(conv_type, spec, weights)))
    if conv_type == "shuffled_grouped":
        # ShuffleNet's channel shuffle: reshape, transpose, flatten
        g, k = spec.groups, spec.k

        def shuffled():
            y = conv(xt, wt, groups=g, **args)
            return out(y.reshape(y.shape[0], g, k // g, *y.shape[2:]).transpose(1, 2).reshape(
                y.shape))

        return shuffled
    return lambda: out(conv(xt, wt, groups=spec.groups, **args))


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


def prepared_function(conv_type: str, spec, x, weights, layout: str = "nchw") -> Callable:
    """The frozen one-layer module (see the module's docstring): inference-optimised for
    "nchw", in channels_last for "nhwc"."""
    import torch

    module = layer_module(conv_type, spec, weights)
    with warnings.catch_warnings():  # torch 2.x marks torch.jit deprecated; it still works
        warnings.simplefilter("ignore", DeprecationWarning)
        if layout == "nhwc":
            module = module.to(memory_format=channels_last_format(spec.ndim + 2))
            frozen = torch.jit.freeze(torch.jit.script(module))
        else:
            frozen = torch.jit.optimize_for_inference(
                torch.jit.freeze(torch.jit.script(module)))
    xt = from_contract(x, layout)

    def prepared():
        with torch.inference_mode():
            return to_contract(frozen(xt), layout)

    prepared()  # the first run of a scripted module profiles and specialises it
    return prepared
