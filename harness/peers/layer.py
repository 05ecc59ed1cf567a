"""One benchmarked layer as an inference engine holds it: its convolution stages with
their weights in the framework layout, fixed when the model is built.

The ONNX Runtime and OpenVINO peers (and torch's `prepared` mode) build their
one-layer models from this, so each type is expressed the same way in all of them:

- `transposed2d`: one ConvTranspose (weights `[c, k/g, kh, kw]`, output padding);
- `depthwise_separable`: two convolutions, the depthwise one (groups = c) and the 1x1;
- `spatially_separable`, `flattened`: the full kernel, folded from the factors when the
  model is built, as a deployment would fold it (neither ONNX nor OpenVINO has a
  separable convolution operator, and two stacked convolutions cannot express a
  per-(k, c) outer product without k x c intermediate channels);
- `shuffled_grouped`: the grouped convolution, then ShuffleNet's channel shuffle as
  Reshape [n, g, k/g, h, w] / Transpose (0, 2, 1, 3, 4) / Reshape [n, k, h, w];
- `spec.flip` (true convolution): the kernel is flipped when the model is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernels.types import flip_spatial, full_kernel


@dataclass(frozen=True)
class Stage:
    """One convolution of the layer, with PyTorch/ONNX attribute conventions."""

    # float32, C-contiguous: conv [k, c/g, *kernel], transposed [c, k/g, *kernel]
    weight: np.ndarray
    groups: int
    stride: tuple
    padding: tuple            # symmetric, per spatial axis
    dilation: tuple
    transposed: bool = False
    output_padding: tuple = ()


@dataclass(frozen=True)
class Layer:
    stages: tuple             # Stage, applied in order
    shuffle_groups: int = 0   # > 0: a channel shuffle of that many groups after the stages


def _array(a) -> np.ndarray:
    # a copy: flipped views have negative strides, which the frameworks refuse
    return np.array(a, dtype=np.float32, order="C", copy=True)


def deployed_layer(conv_type: str, spec, weights) -> Layer:
    """The layer's stages with their weights as a loaded model holds them."""
    nd = spec.ndim
    orient = (lambda w: flip_spatial(w, nd)) if spec.flip else (lambda w: w)
    conv = dict(stride=tuple(spec.stride), padding=tuple(spec.padding),
                dilation=tuple(spec.dilation))
    if conv_type == "transposed2d":
        return Layer((Stage(_array(orient(weights[0])), spec.groups, transposed=True,
                            output_padding=tuple(spec.output_padding), **conv),))
    if conv_type == "depthwise_separable":
        ones = (1,) * nd
        return Layer((Stage(_array(orient(weights[0])), spec.c, **conv),
                      Stage(_array(weights[1]), 1, ones, (0,) * nd, ones)))
    stage = Stage(_array(orient(full_kernel(conv_type, spec, weights))), spec.groups, **conv)
    return Layer((stage,), spec.groups if conv_type == "shuffled_grouped" else 0)
