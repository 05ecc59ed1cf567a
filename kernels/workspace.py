"""Scratch arrays reused from call to call, one set per Python thread.

Why: a kernel's scratch of more than a few hundred KiB is mmap'd fresh by malloc on
every call, and every page of it faults on first touch: ENet's 64x64 dilated layers
(a 590 KiB packed input) spent as long in 145 page faults as in packing the input.

While `blocks.POISON_OUTPUTS` is set (tests), `scratch` returns a fresh NaN-filled
array instead, so a kernel that reads scratch it never wrote still shows it.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from . import blocks

_local = threading.local()


def scratch(shape: tuple[int, ...], name: str) -> np.ndarray:
    """A float32 array of `shape`, uninitialised: a view of this thread's buffer `name`,
    grown (never shrunk) to the largest size asked for. The view is valid until the next
    call with the same name on the same thread."""
    if blocks.POISON_OUTPUTS:
        return blocks.new_output(shape)
    buffers = _local.__dict__.setdefault("buffers", {})
    size = math.prod(shape)
    buf = buffers.get(name)
    if buf is None or buf.size < size:
        buf = buffers[name] = np.empty(size, np.float32)
    return buf[:size].reshape(shape)


def release() -> None:
    """Drop this thread's buffers (their memory goes back when nothing else holds them)."""
    _local.__dict__.pop("buffers", None)
