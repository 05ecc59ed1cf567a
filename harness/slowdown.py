"""A test-only switch that slows chosen kernels, to check the regression gate catches them.

Set ``CONVBENCH_SLOWDOWN`` to a comma-separated list of ``type/algorithm=factor``
(shell-style wildcards allowed)::

    CONVBENCH_SLOWDOWN="conv2d/direct=1.3,pointwise/direct=2.0"

and the runner's timed callable for a matching cell, wrapped with
`wrap(conv_type, algorithm, fn)`, takes ``factor`` times as long: after the
real call it busy-spins (no sleep: a sleeping process lets the CPU clock
down and the scheduler run others, which would not look like a slower
kernel) for ``(factor - 1)`` times the call's own measured duration. So the
slowdown follows the kernel's own noise, as a genuinely slower kernel
would. Unset or empty, `wrap` returns `fn` itself: no overhead at all.

pyperf's worker processes drop environment variables they are not told to
inherit: the runner passes ``CONVBENCH_SLOWDOWN`` in ``--inherit-environ``.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import time

ENV = "CONVBENCH_SLOWDOWN"


def parse(text: str | None) -> list[tuple[str, float]]:
    """``"conv2d/direct=1.3,pointwise/*=2"`` -> [("conv2d/direct", 1.3), ("pointwise/*", 2.0)]."""
    rules = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        pattern, sep, value = item.rpartition("=")
        if not sep or "/" not in pattern:
            raise ValueError(f"{ENV}: expected type/algorithm=factor, got {item!r}")
        try:
            factor = float(value)
        except ValueError:
            raise ValueError(f"{ENV}: factor must be a number, got {item!r}") from None
        if not factor >= 1.0:
            raise ValueError(f"{ENV}: factor must be >= 1, got {item!r}")
        rules.append((pattern.strip(), factor))
    return rules


def factor(conv_type: str, algorithm: str, environ=None) -> float:
    """The slowdown factor the environment asks for this cell (1.0: none)."""
    env = os.environ if environ is None else environ
    for pattern, f in parse(env.get(ENV)):
        if fnmatch.fnmatchcase(f"{conv_type}/{algorithm}", pattern):
            return f
    return 1.0


def slowed(fn, f: float):
    """`fn` made `f` times slower by busy-spinning after each call."""
    extra = f - 1.0
    clock = time.perf_counter

    @functools.wraps(fn)
    def slow(*args, **kwargs):
        t0 = clock()
        result = fn(*args, **kwargs)
        t1 = clock()
        end = t1 + extra * (t1 - t0)
        while clock() < end:
            pass
        return result

    slow.convbench_slowdown = f
    return slow


def wrap(conv_type: str, algorithm: str, fn, environ=None):
    """`fn`, slowed if ``CONVBENCH_SLOWDOWN`` names this cell; else `fn` unchanged."""
    f = factor(conv_type, algorithm, environ)
    return fn if f == 1.0 else slowed(fn, f)
