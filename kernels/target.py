"""The one place that knows the compile target: vector ISA, width, registers, block shapes.

Numba compiles for the host CPU that llvmlite reports (or for
``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` when set). The register blocks of
the kernels must fit the vector registers of that target: a 6 x 32 float
outer product is 12 accumulators on AVX-512 (32 zmm registers) but 24 on
AVX2 (16 ymm registers), where it spills. So the ISA is decided here, once,
before anything is compiled, and every kernel takes its shapes from
`TARGET`.

The override ``CONVBENCH_ISA=avx512|avx2|neon|generic`` makes Numba generate
code for that ISA (it sets ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``), so an
AVX-512 machine can produce honest AVX2 figures; `peer_environment` gives the
matching settings for the peers (oneDNN's ``ONEDNN_MAX_CPU_ISA``, OpenBLAS's
``OPENBLAS_CORETYPE``). Numba's on-disk cache keys every entry by CPU name and
feature string, so code compiled for one ISA is never served to another; the
block shapes below are derived from the ISA alone, so they change exactly
when that key does.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

ENV = "CONVBENCH_ISA"
ISAS = ("avx512", "avx2", "neon", "generic")

# Per ISA: vector width in bits, number of architectural vector registers.
VECTOR_BITS = {"avx512": 512, "avx2": 256, "neon": 128, "generic": 128}
REGISTERS = {"avx512": 32, "avx2": 16, "neon": 32, "generic": 16}
# What Numba is told to compile for under the override (x86 keeps the host CPU name when
# the host has the ISA; the feature string then removes what the override must not use).
CPU_NAME = {"avx512": "skylake-avx512", "avx2": "haswell", "neon": "generic",
            "generic": "generic"}
# oneDNN's cap (ONEDNN_MAX_CPU_ISA) and OpenBLAS's kernels (OPENBLAS_CORETYPE) per ISA.
ONEDNN_ISA = {"avx512": "AVX512_CORE", "avx2": "AVX2", "generic": "SSE41"}
OPENBLAS_CORE = {"avx512": "SkylakeX", "avx2": "Haswell", "generic": "Prescott"}


def isa_from_flags(flags, machine: str = "") -> str:
    """The vector ISA of a CPU from its feature flags (cpuinfo or LLVM names)."""
    flags = {f.strip().lower().lstrip("+") for f in flags if f}
    machine = machine.lower()
    if machine.startswith(("aarch64", "arm64")) or {"asimd", "neon"} & flags:
        return "neon"
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "avx512"
    if {"avx2", "fma"} <= flags:
        return "avx2"
    return "generic"


def isa_from_cpuinfo(text: str, machine: str = "") -> str:
    """The vector ISA of the CPU described by a /proc/cpuinfo text."""
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
            break
    return isa_from_flags(flags, machine or platform.machine())


def host_isa() -> str:
    """The best vector ISA this CPU has (what Numba targets without an override)."""
    import llvmlite.binding as ll

    try:
        features = ll.get_host_cpu_features()
        flags = {k for k, v in features.items() if v}
    except RuntimeError:  # llvmlite cannot read features on some hosts
        flags = set()
    return isa_from_flags(flags, platform.machine())


def _feature_string(isa: str) -> str:
    """An LLVM feature string for `isa` on this host: the host's features, less the wider
    vector extensions the ISA must not use."""
    import llvmlite.binding as ll

    features = dict(ll.get_host_cpu_features())
    if isa == "avx2":
        for k in list(features):
            if k.startswith(("avx512", "avx10", "amx")):
                features[k] = False
    return ",".join(("+" if v else "-") + k for k, v in sorted(features.items()))


def requested_isa(environ=None) -> str | None:
    """The ISA named by CONVBENCH_ISA (None: unset), checked against this CPU."""
    env = os.environ if environ is None else environ
    value = (env.get(ENV) or "").strip().lower()
    if not value or value in ("host", "native"):
        return None
    if value not in ISAS:
        raise ValueError(f"{ENV}: unknown ISA {value!r}; known: {', '.join(ISAS)}")
    host = host_isa()
    runnable = {"avx512": ("avx512", "avx2", "generic"), "avx2": ("avx2", "generic"),
                "neon": ("neon", "generic"), "generic": ("generic",)}[host]
    if value not in runnable:
        raise ValueError(f"{ENV}: {value} code cannot run on this CPU (it has {host}; "
                         f"runnable here: {', '.join(runnable)})")
    return value


def numba_environment(isa: str) -> dict[str, str]:
    """NUMBA_CPU_NAME / NUMBA_CPU_FEATURES that make Numba compile for `isa` here."""
    if isa == "generic":
        return {"NUMBA_CPU_NAME": "generic", "NUMBA_CPU_FEATURES": ""}
    if isa == host_isa():
        import llvmlite.binding as ll

        return {"NUMBA_CPU_NAME": ll.get_host_cpu_name(),
                "NUMBA_CPU_FEATURES": _feature_string(isa)}
    return {"NUMBA_CPU_NAME": CPU_NAME[isa], "NUMBA_CPU_FEATURES": _feature_string(isa)}


def peer_environment(isa: str | None) -> dict[str, str]:
    """Variables that hold the peers and the BLAS to `isa` (set before they are imported)."""
    if isa is None:
        return {}
    env = {}
    if isa in ONEDNN_ISA:
        env["ONEDNN_MAX_CPU_ISA"] = ONEDNN_ISA[isa]
        env["DNNL_MAX_CPU_ISA"] = ONEDNN_ISA[isa]
    if isa in OPENBLAS_CORE and not platform.machine().lower().startswith(("aarch64", "arm")):
        env["OPENBLAS_CORETYPE"] = OPENBLAS_CORE[isa]
    return env


@dataclass(frozen=True)
class Target:
    """What the kernels compile for, and the register-block shapes derived from it."""

    isa: str
    cpu_name: str
    overridden: bool
    vector_bits: int
    registers: int

    @property
    def lanes(self) -> int:
        """float32 lanes of one vector register."""
        return self.vector_bits // 32

    def describe(self) -> dict:
        """What every result records about the target."""
        return {"isa": self.isa, "isa_overridden": self.overridden,
                "numba_cpu_name": self.cpu_name, "vector_bits": self.vector_bits,
                "vector_registers": self.registers}


def _resolve() -> Target:
    isa = requested_isa()
    if isa is not None:
        env = numba_environment(isa)
        os.environ.update(env)
        import numba.core.config as config

        config.reload_config()
        return Target(isa, env["NUMBA_CPU_NAME"] or "generic", True, VECTOR_BITS[isa],
                      REGISTERS[isa])
    import llvmlite.binding as ll
    import numba.core.config as config

    if config.CPU_NAME:  # the user pinned Numba's target directly
        name = config.CPU_NAME
        flags = (config.CPU_FEATURES or "").split(",")
        isa = "generic" if name == "generic" and not config.CPU_FEATURES else \
            isa_from_flags([f for f in flags if f.startswith("+")], platform.machine())
    else:
        name = ll.get_host_cpu_name()
        isa = host_isa()
    return Target(isa, name, False, VECTOR_BITS[isa], REGISTERS[isa])


TARGET = _resolve()
