"""The machine class: the kind of machine timings are comparable within (CPU model slug,
vector ISA, core count). It lives in kernels because `kernels.auto` names its tuning
table by it; `harness.machine` re-exports it and adds the classes of recorded files.
"""

from __future__ import annotations

import os
import platform
import re


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_class(cpu_model: str | None = None, cores: int | None = None,
                  isa: str | None = None) -> str:
    """A file-name-safe name for a kind of machine: CPU model slug, vector ISA, core count.

    `machine_class("AMD EPYC 9R14 96-Core Processor", 2, "avx512")` ->
    "amd-epyc-9r14-avx512-2c". Defaults to this machine and the ISA the kernels compile
    for (`kernels.target`, which honours CONVBENCH_ISA). The ISA is part of the class
    because two CPUs with one model name ("AMD EPYC" on Zen 3 and Zen 4) can differ in it,
    and the register-blocked kernels lose more without AVX-512 than any one calibration
    factor says. `isa=""` leaves it out (files recorded before the ISA was recorded).
    Results compare fairly only within a class.
    """
    model = cpu_model if cpu_model is not None else _cpu_model()
    n = cores if cores is not None else _cores()
    if isa is None:
        from .target import TARGET

        isa = TARGET.isa
    text = re.sub(r"\((r|tm|c)\)", " ", model.lower())
    text = re.sub(r"@.*$", " ", text)
    text = re.sub(r"\b\d+-core\b|\bprocessor\b|\bcpu\b|\bwith\b.*$", " ", text)
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "unknown-cpu"
    return f"{slug}-{isa}-{n}c" if isa else f"{slug}-{n}c"
