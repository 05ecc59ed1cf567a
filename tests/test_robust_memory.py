"""The memory guard answers in O(1) from the spec (issue 29, item 4).

It built dilated2d's whole work-item list (12.6 s and 3.5 GB for a 65536² input)
and looped over fft's dilation sub-grids (170 s at dilation 4096, never done at
2**20) before refusing. The huge specs run in a child process with a timeout, so a
regression fails instead of hanging the suite.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys

import numpy as np
import pytest

import kernels
from kernels import ConvSpec, memory
from kernels.direct import dilated
from kernels.fft.plan import tile_count

HUGE = {
    "dense 65536²": dict(c=1, k=1, size=(65536, 65536), kernel=3, padding=2, dilation=2),
    "dense 131072²": dict(c=1, k=1, size=(131072, 131072), kernel=3, padding=2, dilation=2),
    "dilation 4096": dict(c=1, k=1, size=(8192, 8192), kernel=3, padding=4096,
                          dilation=4096),
    "dilation 2**20": dict(c=1, k=1, size=(8192, 8192), kernel=3, padding=2 ** 20,
                           dilation=2 ** 20),
    "dilation 2**30": dict(c=1, k=1, size=(8, 8), kernel=2, padding=2 ** 30,
                           dilation=2 ** 30),
    "wide row": dict(c=1, k=1, size=(1, 2 ** 30), kernel=(1, 3), padding=1),
    "long kernel": dict(c=1, k=1, size=(8, 2 ** 30), kernel=(1, 2 ** 20), padding=(0, 2 ** 19)),
}

CHILD = """
import json, sys, time, tracemalloc
import kernels
from kernels import ConvSpec
tracemalloc.start()
out = {}
for name, kwargs in json.loads(sys.argv[1]).items():
    spec = ConvSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})
    for conv_type in kernels.CONV_TYPES:
        for algorithm in kernels.ALGORITHMS + ("reference",):
            if algorithm == "auto":
                continue
            tracemalloc.reset_peak()
            t0 = time.perf_counter()
            try:
                if algorithm == "reference":
                    kernels.memory_estimate(conv_type, algorithm, spec)
                else:
                    kernels.supports(conv_type, algorithm, spec)
                got = "ok"
            except ValueError:
                got = "ok"
            except Exception as exc:
                got = type(exc).__name__ + ": " + str(exc)[:200]
            out[f"{name} {conv_type} {algorithm}"] = (
                got, time.perf_counter() - t0, tracemalloc.get_traced_memory()[1])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def huge_answers() -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(HUGE)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(HUGE))
def test_huge_specs_answer_at_once_without_allocating(huge_answers, name):
    rows = {k: v for k, v in huge_answers.items() if k.startswith(name + " ")}
    assert len(rows) > 20
    for key, (got, seconds, peak) in rows.items():
        assert got == "ok", (key, got)
        assert seconds < 0.25, (key, seconds)
        assert peak < 1 << 20, (key, peak)


def _tile_count_by_subgrids(n, out_size, dilation, m) -> int:
    total = 0
    for phase in np.ndindex(*dilation):
        sub = [-(-(o - r) // d) for o, r, d in zip(out_size, phase, dilation)]
        if min(sub) > 0:
            total += math.prod(-(-s // mm) for s, mm in zip(sub, m))
    return n * total


def test_fft_tile_count_closed_form_matches_the_sub_grids():
    rng = random.Random(1)
    for _ in range(2000):
        args = (rng.randint(1, 3), (rng.randint(1, 40), rng.randint(1, 40)),
                (rng.randint(1, 12), rng.randint(1, 12)), (rng.randint(1, 16), rng.randint(1, 16)))
        assert tile_count(*args) == _tile_count_by_subgrids(*args), args


def test_dilated_closed_form_bounds_the_geometry():
    # the O(1) kept taps and item pixels are never below what the call's geometry uses
    rng = random.Random(3)
    checked = 0
    while checked < 500:
        try:
            spec = ConvSpec(c=4, k=rng.choice([4, 32]), size=(rng.randint(1, 60), rng.randint(1, 60)),
                            kernel=(rng.randint(1, 7), rng.randint(1, 5)),
                            stride=rng.randint(1, 3), padding=rng.randint(0, 40),
                            dilation=rng.randint(1, 20))
        except ValueError:
            continue
        checked += 1
        geo = dilated.geometry(spec)
        for axis in (0, 1):
            assert dilated.kept_bound(spec, axis) >= geo.kept[axis], (spec, axis)
        pixels = int(geo.items[:, 1].max()) * spec.out_size[1]
        OH, OW = spec.out_size
        assert min(OH, -(-3 * dilated.PIXELS_PER_ITEM // (2 * OW))) * OW >= pixels, spec

