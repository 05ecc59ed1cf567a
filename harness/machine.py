"""Machine classes: the unit within which timings may be compared.

A class names a kind of machine: CPU model slug, the vector ISA the kernels compile
for, and the core count (`machine_class`). Baselines are stored per class
(``results/baseline/<machine-class>.json``) and `convbench compare` refuses to gate
across classes.
"""

from __future__ import annotations

# computed in kernels (kernels.auto names its tuning table by it; kernels never imports harness)
from kernels.machine import machine_class

__all__ = ["class_of_metadata", "machine_class", "machine_class_from_cpuinfo",
           "machine_class_of"]


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


