"""Machine classes: the unit within which timings may be compared.

A class names a kind of machine: CPU model slug, the vector ISA the kernels compile
for, and the core count (`machine_class`). Baselines are stored per class
(``results/baseline/<machine-class>.json``) and `convbench compare` refuses to gate
across classes.
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
        from kernels.target import TARGET

        isa = TARGET.isa
    text = re.sub(r"\((r|tm|c)\)", " ", model.lower())
    text = re.sub(r"@.*$", " ", text)
    text = re.sub(r"\b\d+-core\b|\bprocessor\b|\bcpu\b|\bwith\b.*$", " ", text)
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "unknown-cpu"
    return f"{slug}-{isa}-{n}c" if isa else f"{slug}-{n}c"


def machine_class_from_cpuinfo(text: str, cores: int | None = None) -> str:
    """The machine class of the CPU that a /proc/cpuinfo text describes."""
    from kernels.target import isa_from_cpuinfo

    model = "unknown-cpu"
    count = 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and model == "unknown-cpu":
            model = value.strip()
        if key == "processor":
            count += 1
    return machine_class(model, cores if cores is not None else max(1, count),
                         isa_from_cpuinfo(text))


def machine_class_of(path) -> str:
    """The machine class a suite file was measured on (from its metadata).

    Files that predate the ISA in the metadata get a class without it, which matches no
    current machine: they stay readable as history but gate nothing.
    """
    from harness.results import benchmark_records, load_suite

    records = benchmark_records(load_suite(path, require_benchmarks=True))
    return class_of_metadata(next(iter(records.values()))["meta"])


def class_of_metadata(meta: dict) -> str:
    """The machine class a benchmark's metadata records (or rebuilds from its CPU)."""
    if meta.get("machine_class"):
        return str(meta["machine_class"])
    model = meta.get("cpu_model") or meta.get("cpu_model_name") or "unknown-cpu"
    cores = meta.get("cpu_count")
    return machine_class(str(model), int(cores) if cores else None, str(meta.get("isa", "")))


