"""The callable a benchmark times, per timing mode (`harness.modes`): built the same way
for the pyperf worker (`harness.worker`) and for verification (`harness.verify`), so the
callable verified is the callable timed.

- ours, `call`: `kernels.run(conv_type, algorithm, spec, x, weights, layout=...)` on raw
  weights;
- ours, `prepared`: `kernels.plan(conv_type, algorithm, spec, weights, layout=...)` built
  here, outside the timed region, then `plan(x)`;
- a peer: its own callable for the mode and layout (`harness.peers.peer_function`).

x and the output are in the benchmark's layout (`harness.layouts`).
"""

from __future__ import annotations

from collections.abc import Callable

from harness.layouts import DEFAULT_LAYOUT, check_layout
from harness.modes import DEFAULT_MODE, check_mode
from harness.peers import PEERS, peer_function


def timed_callable(conv_type: str, algorithm: str, spec, x, weights,
                   mode: str = DEFAULT_MODE, threads: int | None = None,
                   layout: str = DEFAULT_LAYOUT) -> Callable:
    """A zero-argument callable returning the layer's output (float32, in `layout`, as x
    is)."""
    import kernels

    check_mode(mode)
    check_layout(layout)
    if algorithm in PEERS:
        if layout == DEFAULT_LAYOUT:  # as before layouts: any peer module takes this
            return peer_function(algorithm, conv_type, spec, x, weights, mode, threads)
        return peer_function(algorithm, conv_type, spec, x, weights, mode, threads,
                             layout=layout)
    if mode == "prepared":
        plan = kernels.plan(conv_type, algorithm, spec, weights, layout=layout)
        return lambda: plan(x)
    if layout == DEFAULT_LAYOUT:
        return lambda: kernels.run(conv_type, algorithm, spec, x, weights)
    return lambda: kernels.run(conv_type, algorithm, spec, x, weights, layout=layout)
