"""ncnn (Tencent's inference engine, its pip wheel), one one-layer net per benchmarked
layer, written here as ncnn's own `.param` text and `.bin` weights.

`prepared` mode only: a loaded `ncnn.Net` is a prepared plan (its layers transform the
weights once when the model loads: packing, Winograd, sgemm). ncnn has no batch
dimension: the timed call runs one extractor per image, as its users do. Threads:
`net.opt.num_threads` = the sweep's count. fp16/bf16 storage and arithmetic are off
(ncnn enables fp16 storage by default where the CPU has it): the arithmetic compared is
float32. Its convolution algorithms (Winograd, sgemm, packing) are left at ncnn's
defaults: that is what its users run, and the oracle check holds it to the bound.

The layer (`harness.peers.layer`) in ncnn's layers: Convolution, ConvolutionDepthWise
(any groups > 1), Deconvolution / DeconvolutionDepthWise with output padding for
transposed, two convolutions for depthwise separable, the folded full kernel for the
factored types, ShuffleChannel for the channel shuffle. Weights in the `.bin` are raw
float32 blobs, each behind a 4-byte zero tag.

CHW-native (a Mat per image, channel planes). In the NHWC contract each image is
reordered to CHW before it goes in and its result back to HWC, inside the timed call.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

NAME = "ncnn"
MODES = ("prepared",)
NATIVE_LAYOUT = "nchw"
INSTALL = "pip install ncnn"
MAGIC = 7767517  # the first line of every .param file


def missing() -> str | None:
    try:
        import ncnn  # noqa: F401
    except ImportError:
        return f"ncnn is not installed ({INSTALL})"
    return None


def reason(conv_type: str, spec, mode: str, layout: str = "nchw") -> str | None:
    if mode != "prepared":
        return ("ncnn has no call mode: a loaded net is a prepared plan whose layers "
                "transform the weights once")
    if spec.ndim != 2:
        return "3-D layers are not written for ncnn here (its 2-D layers only)"
    return None


def threading_layer() -> str:
    return "ncnn-openmp"


def _pairs(key: int, values) -> list[str]:
    """ncnn's per-axis keys: `key` for the width, `key + 10` for the height."""
    h, w = values
    return [f"{key}={w}", f"{key + 10}={h}"]


def _layer_line(i: int, s, bottom: str, top: str) -> tuple[str, np.ndarray]:
    """The .param line of one convolution stage and its weight blob (ncnn's order)."""
    kh, kw = s.weight.shape[2:]
    ph, pw = s.padding
    params = _pairs(1, (kh, kw)) + _pairs(2, s.dilation) + _pairs(3, s.stride)
    params += [f"4={pw}", f"14={ph}", f"15={pw}", f"16={ph}"]
    if s.transposed:  # PyTorch [c, k/g, kh, kw] -> ncnn per group [k/g, c/g, kh, kw]
        c, kg = s.weight.shape[:2]
        g = s.groups
        w = s.weight.reshape(g, c // g, kg, kh, kw).transpose(0, 2, 1, 3, 4)
        k = kg * g
        oph, opw = s.output_padding
        params += [f"18={opw}", f"19={oph}"]
        kind = "DeconvolutionDepthWise" if g > 1 else "Deconvolution"
    else:
        k = s.weight.shape[0]
        w = s.weight
        kind = "ConvolutionDepthWise" if s.groups > 1 else "Convolution"
    params = [f"0={k}", *params, "5=0", f"6={w.size}"]
    if s.groups > 1:
        params.append(f"7={s.groups}")
    line = f"{kind:<24}{kind.lower()}{i} 1 1 {bottom} {top} " + " ".join(params)
    return line, np.ascontiguousarray(w, dtype=np.float32)


def write_net(conv_type: str, spec, weights, folder) -> tuple[Path, Path]:
    """The one-layer net as `layer.param` and `layer.bin` in `folder`: input blob `x`
    (one CHW image), output blob `y`."""
    from harness.peers.layer import deployed_layer

    layer = deployed_layer(conv_type, spec, weights)
    _, c, h, w = spec.input_shape
    steps = len(layer.stages) + bool(layer.shuffle_groups)
    tops = [f"s{i}" for i in range(steps - 1)] + ["y"]  # the last layer's top is `y`
    lines = [f"{'Input':<24}input 0 1 x 0={w} 1={h} 2={c}"]
    blobs, prev = [], "x"
    for i, s in enumerate(layer.stages):
        line, blob = _layer_line(i, s, prev, tops[i])
        lines.append(line)
        blobs.append(blob)
        prev = tops[i]
    if layer.shuffle_groups:
        lines.append(f"{'ShuffleChannel':<24}shuffle 1 1 {prev} y 0={layer.shuffle_groups} 1=0")
    blob_count = len(lines)  # every layer has one top blob
    folder = Path(folder)
    param, model = folder / "layer.param", folder / "layer.bin"
    param.write_text(f"{MAGIC}\n{len(lines)} {blob_count}\n" + "\n".join(lines) + "\n",
                     encoding="ascii")
    with open(model, "wb") as fh:
        for blob in blobs:
            fh.write(np.zeros(1, np.uint32).tobytes())  # tag 0: raw float32 follows
            fh.write(blob.tobytes())
    return param, model


def load_net(conv_type: str, spec, weights, threads: int | None):
    import ncnn

    net = ncnn.Net()
    net.opt.num_threads = int(threads) if threads else net.opt.num_threads
    for option in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic",
                   "use_bf16_storage", "use_vulkan_compute"):
        setattr(net.opt, option, False)
    with tempfile.TemporaryDirectory(prefix="convbench-ncnn-") as folder:
        param, model = write_net(conv_type, spec, weights, folder)
        if net.load_param(str(param)) != 0 or net.load_model(str(model)) != 0:
            raise ValueError(f"conv_type: ncnn refused the {conv_type} net written for {spec}")
    return net


def function(conv_type: str, spec, x, weights, mode: str = "prepared",
             threads: int | None = None, layout: str = "nchw") -> Callable:
    import ncnn

    why = reason(conv_type, spec, mode, layout)
    if why:
        raise ValueError(f"mode: {why}")
    net = load_net(conv_type, spec, weights, threads)
    xin = np.ascontiguousarray(x, dtype=np.float32)
    out_shape = spec.output_shape
    last = layout == "nhwc"
    if last:
        n, k, *size = out_shape
        out_shape = (n, *size, k)

    def prepared():
        y = np.empty(out_shape, np.float32)
        for i in range(xin.shape[0]):
            image = np.ascontiguousarray(xin[i].transpose(2, 0, 1)) if last else xin[i]
            ex = net.create_extractor()
            ex.input("x", ncnn.Mat(image))
            status, result = ex.extract("y")
            if status != 0:
                raise RuntimeError(f"ncnn: extract failed with status {status}")
            plane = np.asarray(result)
            y[i] = plane.transpose(1, 2, 0) if last else plane
        return y

    prepared()  # the first run allocates the net's blobs
    return prepared
