"""kernels.memory's estimate for the direct dilated2d cell against what it allocates."""

from __future__ import annotations

import tracemalloc

import kernels
from kernels import blocks, workspace
from kernels.direct import dilated


def _unpoisoned_call(monkeypatch, spec):
    """One call with reused scratch (as benchmarks run), after dropping this thread's
    buffers: returns (inputs, packed weights, the packed-input buffer)."""
    monkeypatch.setattr(blocks, "POISON_OUTPUTS", False)
    x, w = kernels.make_inputs("dilated2d", spec)
    workspace.release()
    kernels.run("dilated2d", "direct", spec, x, w)
    xq = workspace._local.buffers["dilated.xq"]
    return (x, w), dilated.prepare_dilated(spec, w[0]), xq


def test_buffer_bytes_are_the_buffers_allocated(monkeypatch):
    """ASPP's rate 18 (channels scaled down): the phase columns round the 69 padded
    columns up to 4 x 18 = 72, which the estimate of a plain padded copy missed."""
    spec = kernels.ConvSpec(n=1, c=8, k=32, size=33, kernel=3, padding=18, dilation=18)
    _, packed, xq = _unpoisoned_call(monkeypatch, spec)
    parts = dilated.buffer_bytes(spec)
    assert parts["xq"] == xq.nbytes == 4 * 8 * 69 * 72
    assert packed.geometry.outer and parts["weights"] == packed.wb.nbytes
    est = kernels.memory_estimate("dilated2d", "direct", spec)
    assert est["workspace"] >= xq.nbytes and est["weights"] == packed.wb.nbytes
    aspp18 = kernels.ConvSpec.parse("mb1ic2048ih33oc256oh33kh3ph18dh17")
    assert kernels.memory_estimate("dilated2d", "direct", aspp18)["workspace"] >= \
        4 * 2048 * 69 * 72


def test_dot_block_weights_are_covered(monkeypatch):
    """Few output channels: the dot block's packer, its copy of the kept taps and the
    flipped kernel."""
    spec = kernels.ConvSpec(n=1, c=6, k=3, size=20, kernel=3, padding=4, dilation=4,
                            flip=True)
    _, packed, xq = _unpoisoned_call(monkeypatch, spec)
    parts = dilated.buffer_bytes(spec)
    assert not packed.geometry.outer and parts["xq"] == xq.nbytes
    assert packed.wb.nbytes <= parts["weights"] <= 3 * packed.wb.nbytes + 4 * 3 * 6 * 9


def test_estimate_covers_the_traced_peak(monkeypatch):
    spec = kernels.ConvSpec(n=1, c=64, k=64, size=(40, 44), kernel=3, padding=12,
                            dilation=12)
    (x, w), _, _ = _unpoisoned_call(monkeypatch, spec)
    workspace.release()  # the packed input is allocated inside the trace
    tracemalloc.start()
    try:
        kernels.run("dilated2d", "direct", spec, x, w)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    est = kernels.memory_estimate("dilated2d", "direct", spec)
    assert peak >= est["output"]
    assert 0.9 * peak <= est["total"] <= 4 * peak, (est, peak)
