"""Peers: other libraries' convolutions, timed in the same sweep as extra "algorithms".

One module per peer, each with NAME, MODES (the timing modes it has, `harness.modes`),
`missing()` (why it is not installed, or None), `reason(conv_type, spec, mode)` (why it
cannot express this problem in this mode, or None), `function(conv_type, spec, x,
weights, mode, threads)` (a zero-argument callable computing what `kernels.run` does)
and `threading_layer()`:

- `torch` (`pytorch.py`): PyTorch's CPU convolution (oneDNN); `call` is
  torch.nn.functional on raw weights, `prepared` a frozen, inference-optimised module;
- `scipy` (`scipy_signal.py`): scipy.signal for single-channel 2-D problems, `call` only;
- `onnxruntime` (`onnx_runtime.py`) and `openvino` (`openvino_cpu.py`): a one-layer
  model per layer in the engine's fast inference configuration, `prepared` only.

Peers are optional (the `peers` extra); one that is not installed is skipped with the
command that installs it.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.modes import DEFAULT_MODE, check_mode
from harness.peers import onnx_runtime, openvino_cpu, pytorch, scipy_signal
from harness.peers.pytorch import torch_function

# The one list of peers: the sweep's planner, its verification, the worker, the gate
# (peers are reported, never gated) and the report all read it here.
_MODULES = {m.NAME: m for m in (pytorch, scipy_signal, onnx_runtime, openvino_cpu)}
PEERS = tuple(_MODULES)

__all__ = ["PEERS", "is_peer", "peer_function", "peer_missing", "peer_modes", "peer_reason",
           "peer_threading_layer", "set_torch_threads", "torch_available", "torch_function"]


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


def peer_reason(peer: str, conv_type: str, spec, mode: str = DEFAULT_MODE) -> str | None:
    """None if `peer` can compute this problem in `mode`, else why not."""
    if peer not in _MODULES:
        return f"unknown peer {peer!r}; known: {', '.join(PEERS)}"
    module = _MODULES[peer]
    mode = check_mode(mode)  # an unknown mode is refused whether or not the peer is installed
    return module.missing() or module.reason(conv_type, spec, mode)


def peer_function(peer: str, conv_type: str, spec, x, weights, mode: str = DEFAULT_MODE,
                  threads: int | None = None) -> Callable:
    """The zero-argument callable that a benchmark of `peer` in `mode` times (anything
    the mode prepares is done here, before it is returned)."""
    why = peer_reason(peer, conv_type, spec, mode)
    if why:
        raise ValueError(f"peer: {why}")
    return _module(peer).function(conv_type, spec, x, weights, mode=mode, threads=threads)


def peer_threading_layer(peer: str) -> str:
    return _module(peer).threading_layer()


def set_torch_threads(n: int) -> None:
    pytorch.set_threads(n)
