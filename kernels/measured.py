"""Choices between equivalent kernels made by timing them here, once (FFTW's MEASURE).

Where two kernels compute the same thing and which is faster depends on the CPU rather
than on the shape alone, a rule written from timings on one machine picks wrongly on
another: the fused depthwise separable kernel was faster than depthwise-then-pointwise on
the AMD machine it was tuned on and 2.3x slower on an Intel Xeon. So the first call for
a problem times each candidate on its real input (a warm-up call each, which also loads
or compiles it, then `ROUNDS` interleaved timed calls; the fastest call counts, since a
busy neighbour only ever adds time) and the winner serves every later call of that
problem in this process.

`CONVBENCH_MEASURE=first` skips the timing and takes the first candidate, the rule's
guess (reproducible runs, tests of one path); `force(key_prefix, name)` pins a choice.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping

ENV = "CONVBENCH_MEASURE"
ROUNDS = 3

_chosen: dict = {}
_lock = threading.Lock()


def choose(key, candidates: Mapping[str, Callable[[], object]]) -> str:
    """The name of the fastest of `candidates` (zero-argument callables) for `key`, measured
    on the first call for that key and remembered."""
    name = _chosen.get(key)
    if name is not None:
        return name
    names = list(candidates)
    if len(names) == 1 or os.environ.get(ENV) == "first":
        return names[0]
    with _lock:  # one measurement at a time: two would time each other
        name = _chosen.get(key)
        if name is None:
            name = _measure(candidates)
            _chosen[key] = name
    return name


def _measure(candidates: Mapping[str, Callable[[], object]]) -> str:
    for fn in candidates.values():
        fn()  # loads (or compiles) the kernel and touches its buffers: not timed
    best = dict.fromkeys(candidates, float("inf"))
    clock = time.perf_counter
    for _ in range(ROUNDS):  # interleaved, so a drift in clock speed hits all alike
        for name, fn in candidates.items():
            t0 = clock()
            fn()
            best[name] = min(best[name], clock() - t0)
    return min(best, key=best.get)


def chosen_name(key) -> str | None:
    """The name already chosen for `key`, or None (the fast path of a call)."""
    return _chosen.get(key)


def chosen() -> dict:
    """What has been measured so far in this process: {key: name}."""
    return dict(_chosen)


def force(key, name: str | None) -> None:
    """Pin the choice for `key` (None: forget it, so the next call measures again)."""
    if name is None:
        _chosen.pop(key, None)
    else:
        _chosen[key] = name
