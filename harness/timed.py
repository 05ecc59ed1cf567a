"""The callable a benchmark times, per timing mode (`harness.modes`): built the same way
for the pyperf worker (`harness.worker`) and for verification (`harness.verify`), so the
callable verified is the callable timed.

- ours, `call`: `kernels.run(conv_type, algorithm, spec, x, weights)` on raw weights;
- ours, `prepared`: `kernels.plan(conv_type, algorithm, spec, weights)` built here,
  outside the timed region, then `plan(x)`;
- a peer: its own callable for the mode (`harness.peers.peer_function`).
"""

from __future__ import annotations

from collections.abc import Callable

from harness.modes import DEFAULT_MODE, check_mode
from harness.peers import PEERS, peer_function


def timed_callable(conv_type: str, algorithm: str, spec, x, weights,
                   mode: str = DEFAULT_MODE, threads: int | None = None) -> Callable:
    """A zero-argument callable returning the layer's output (NCHW float32)."""
    import kernels

    check_mode(mode)
    if algorithm in PEERS:
        return peer_function(algorithm, conv_type, spec, x, weights, mode, threads)
    if mode == "prepared":
        plan = kernels.plan(conv_type, algorithm, spec, weights)
        return lambda: plan(x)
    return lambda: kernels.run(conv_type, algorithm, spec, x, weights)
