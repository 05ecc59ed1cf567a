"""kernels/workspace.py: per-thread scratch reused from call to call."""

from __future__ import annotations

import threading

import numpy as np

from kernels import blocks, workspace


def test_scratch_is_reused_grown_and_per_thread(monkeypatch):
    monkeypatch.setattr(blocks, "POISON_OUTPUTS", False)
    workspace.release()
    a = workspace.scratch((4, 5), "t")
    assert a.shape == (4, 5) and a.dtype == np.float32
    b = workspace.scratch((2, 3), "t")
    assert np.shares_memory(a, b), "a smaller ask reuses the buffer"
    assert not np.shares_memory(a, workspace.scratch((2, 3), "other")), "names are apart"
    c = workspace.scratch((100,), "t")
    assert c.shape == (100,) and not np.shares_memory(a, c), "a larger ask grows it"
    seen = []
    thread = threading.Thread(target=lambda: seen.append(workspace.scratch((100,), "t")))
    thread.start()
    thread.join()
    assert not np.shares_memory(seen[0], c), "each thread has its own"
    workspace.release()
    assert not np.shares_memory(workspace.scratch((100,), "t"), c)


def test_scratch_is_fresh_nan_while_outputs_are_poisoned(monkeypatch):
    monkeypatch.setattr(blocks, "POISON_OUTPUTS", True)
    a = workspace.scratch((3, 4), "t")
    a[:] = 1
    b = workspace.scratch((3, 4), "t")
    assert np.isnan(b).all() and not np.shares_memory(a, b)
