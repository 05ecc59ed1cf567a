"""Peers: other libraries' convolutions, timed in the same sweep as extra "algorithms".

One module per peer, each with NAME, MODES (the timing modes it has, `harness.modes`),
NATIVE_LAYOUT (the layout its kernels take, "nchw" or "nhwc"), `missing()` (why it is not
installed, or None), `reason(conv_type, spec, mode, layout)` (why it cannot express this
problem in this mode and layout contract, or None), `function(conv_type, spec, x,
weights, mode, threads, layout)` (a zero-argument callable computing what `kernels.run`
does, x and y in the contract's layout, `harness.peers.layouts`), `threading_layer()`, and
optionally `reorder_in_call(layout)` (whether the timed call reorders between the
contract's layout and the peer's; by default: whenever they differ):

- `torch` (`pytorch.py`): PyTorch's CPU convolution (oneDNN); `call` is
  torch.nn.functional on raw weights, `prepared` a frozen, inference-optimised module;
  in the NHWC contract input, weights and output are `torch.channels_last` (no reorder);
- `scipy` (`scipy_signal.py`): scipy.signal for single-channel 2-D problems, `call` only;
- `onnxruntime` (`onnx_runtime.py`) and `openvino` (`openvino_cpu.py`): a one-layer
  model per layer in the engine's fast inference configuration, `prepared` only; NCHW
  models, with Transpose nodes in the graph for the NHWC contract;
- `litert` (`litert.py`): a one-layer .tflite flatbuffer run by LiteRT's XNNPACK
  delegate, NHWC-native (Transpose ops in the graph for the NCHW contract);
- `ncnn` (`ncnn_net.py`): a one-layer ncnn param/bin, one image at a time, CHW-native;
- `mnn` (`mnn_net.py`): a one-layer MNN model built with its expression API, float32
  with the Winograd level that passes the accuracy contract.

Peers are optional (the `peers` extra); one that is not installed is skipped with the
command that installs it.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.modes import DEFAULT_MODE, check_mode
from harness.peers import (
    litert,
    mnn_net,
    ncnn_net,
    onnx_runtime,
    openvino_cpu,
    pytorch,
    scipy_signal,
)
from harness.peers.layouts import DEFAULT_LAYOUT, LAYOUTS, check_layout
from harness.peers.pytorch import torch_function

# The one list of peers: the sweep's planner, its verification, the worker, the gate
# (peers are reported, never gated) and the report all read it here.
_MODULES = {m.NAME: m for m in (pytorch, scipy_signal, onnx_runtime, openvino_cpu, litert,
                                ncnn_net, mnn_net)}
PEERS = tuple(_MODULES)

__all__ = ["LAYOUTS", "PEERS", "is_peer", "peer_function", "peer_metadata", "peer_missing",
           "peer_modes", "peer_reason", "peer_threading_layer", "set_torch_threads",
           "torch_available", "torch_function"]


def is_peer(algorithm: str) -> bool:
    """A peer library timed as an extra 'algorithm' (not one of ours)."""
    return algorithm in PEERS


def _module(peer: str):
    try:
        return _MODULES[peer]
    except KeyError:
        raise ValueError(f"peer: unknown peer {peer!r}; known: {', '.join(PEERS)}") from None


def peer_modes(peer: str) -> tuple[str, ...]:
    """The timing modes `peer` has."""
    return _module(peer).MODES


def peer_missing(peer: str) -> str | None:
    """Why `peer` is not installed (with the command that installs it), or None."""
    return _module(peer).missing()


def torch_available() -> bool:
    return pytorch.missing() is None


def peer_reason(peer: str, conv_type: str, spec, mode: str = DEFAULT_MODE,
                layout: str = DEFAULT_LAYOUT) -> str | None:
    """None if `peer` can compute this problem in `mode` and the `layout` contract, else
    why not."""
    # an unknown mode or layout is refused whether or not the peer is installed
    mode = check_mode(mode)
    layout = check_layout(layout)
    if peer not in _MODULES:
        return f"unknown peer {peer!r}; known: {', '.join(PEERS)}"
    module = _MODULES[peer]
    return module.missing() or module.reason(conv_type, spec, mode, layout=layout)


def peer_function(peer: str, conv_type: str, spec, x, weights, mode: str = DEFAULT_MODE,
                  threads: int | None = None, layout: str = DEFAULT_LAYOUT) -> Callable:
    """The zero-argument callable that a benchmark of `peer` in `mode` times (anything
    the mode prepares is done here, before it is returned); x and its result are in the
    `layout` contract."""
    why = peer_reason(peer, conv_type, spec, mode, layout)
    if why:
        raise ValueError(f"peer: {why}")
    return _module(peer).function(conv_type, spec, x, weights, mode=mode, threads=threads,
                                  layout=layout)


def peer_metadata(peer: str, layout: str = DEFAULT_LAYOUT) -> dict:
    """What a benchmark of `peer` in the `layout` contract records: the peer's native
    layout and whether its timed call reorders to and from the contract's layout."""
    layout = check_layout(layout)
    module = _module(peer)
    reorders = getattr(module, "reorder_in_call", None)
    return {"native_layout": module.NATIVE_LAYOUT,
            "reorder_in_call": bool(reorders(layout) if reorders
                                    else layout != module.NATIVE_LAYOUT)}


def peer_threading_layer(peer: str) -> str:
    return _module(peer).threading_layer()


def set_torch_threads(n: int) -> None:
    pytorch.set_threads(n)
