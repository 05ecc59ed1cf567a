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


RUNNABLE = {"avx512": ("avx512", "avx2", "generic"), "avx2": ("avx2", "generic"),
            "neon": ("neon", "generic"), "generic": ("generic",)}


def runnable_isas(other: bool = False) -> tuple[str, ...]:
    """The ISAs whose code this CPU can run (`other`: all but the host's own)."""
    host = host_isa()
    return tuple(i for i in RUNNABLE[host] if not (other and i == host))


def requested_isa(environ=None) -> str | None:
    """The ISA named by CONVBENCH_ISA (None: unset), checked against this CPU."""
    env = os.environ if environ is None else environ
    value = (env.get(ENV) or "").strip().lower()
    if not value or value in ("host", "native"):
        return None
    if value not in ISAS:
        raise ValueError(f"{ENV}: unknown ISA {value!r}; known: {', '.join(ISAS)}")
    host = host_isa()
    runnable = RUNNABLE[host]
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


# Register blocks. The outer-product block keeps OUTER_ROWS x width accumulators live over
# the reduction, plus width/lanes operand vectors and one broadcast; the dot block keeps
# channels x DOT_PIXELS vector accumulators plus one vector per channel and one per pixel.
# A block that needs more vector registers than the ISA has spills in its innermost loop
# (6 x 32 on AVX2: 24 + 4 + 1 of 16 ymm). The shapes depend on (vector_bits, registers)
# only, that is on the ISA only, which is part of Numba's cache key (CPU name, features).
OUTER_ROWS = 6  # outer-product block rows (broadcast operands); the intrinsic is 6-ary
DOT_PIXELS = 6  # dot block pixels, the same pixel blocks as the outer block
PANELS = (16, 8, 4)  # candidate panel widths, widest first (16 = one zmm, the tuned shape)


def outer_registers(width: int, lanes: int) -> int:
    """Vector registers a OUTER_ROWS x width outer-product block keeps live."""
    v = -(-width // lanes)
    return OUTER_ROWS * v + v + 1


def dot_registers(channels: int) -> int:
    """Vector registers a channels x DOT_PIXELS dot block keeps live."""
    return channels * DOT_PIXELS + channels + 1


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

    @property
    def panel(self) -> int:
        """Floats per column unit of the outer-product block (its vectors are <panel x
        float>): the widest candidate, at least one register, whose 6-row block fits."""
        fits = [p for p in PANELS if p >= self.lanes
                and outer_registers(p, self.lanes) <= self.registers]
        return fits[0] if fits else self.lanes

    @property
    def outer_rows(self) -> int:
        return OUTER_ROWS

    @property
    def outer_kvs(self) -> tuple[int, ...]:
        """Panels per outer block the kernels may use: 1, and 2 where 6 x 2 panels fit
        (AVX-512 only: 12 zmm accumulators; on AVX2 or NEON they would spill)."""
        return tuple(kv for kv in (1, 2)
                     if kv == 1 or outer_registers(kv * self.panel, self.lanes) <= self.registers)

    @property
    def outer_widths(self) -> tuple[int, ...]:
        """Output channels per outer-product block, narrowest first."""
        return tuple(kv * self.panel for kv in self.outer_kvs)

    @property
    def dot_channels(self) -> int:
        """Output channels of the dot block: 4 x 6 where 29 registers fit, else 2 x 6."""
        return 4 if dot_registers(4) <= self.registers else 2

    @property
    def dot_pixels(self) -> int:
        return DOT_PIXELS

    @property
    def transform_lanes(self) -> int:
        """Lanes of the Winograd filter transform and its weight transpose: one register
        (the 9 taps and 18 partial columns of F(4x4) fill 27 registers; a transpose of
        N x N blocks holds N registers)."""
        return self.lanes

    @property
    def has_fma(self) -> bool:
        """Fused multiply-add in hardware (all but the generic SSE2 target)."""
        return self.isa != "generic"

    @property
    def blocks(self) -> str:
        """The register-block shapes in one line, e.g. 'outer 6x32/6x16, dot 4x6, transform 16'."""
        outer = "/".join(f"{self.outer_rows}x{w}" for w in reversed(self.outer_widths))
        return (f"outer {outer}, dot {self.dot_channels}x{self.dot_pixels}, "
                f"transform {self.transform_lanes}")

    def describe(self) -> dict:
        """What every result records about the target."""
        return {"isa": self.isa, "isa_overridden": self.overridden,
                "numba_cpu_name": self.cpu_name, "vector_bits": self.vector_bits,
                "vector_registers": self.registers, "blocks": self.blocks,
                **CACHES.describe()}


def _check_codegen(env: dict[str, str]) -> None:
    """Refuse an override that comes too late: Numba builds its code generator (CPU name,
    features) once, at the first compilation, and would ignore the new settings."""
    try:
        from numba.core.registry import cpu_target

        if "_toplevel_target_context" not in vars(cpu_target):
            return
        codegen = cpu_target.target_context.codegen()
        started = (codegen._get_host_cpu_name(), codegen._tm_features)
    except (AttributeError, ImportError):  # another Numba version: cannot tell
        return
    if started != (env["NUMBA_CPU_NAME"], env["NUMBA_CPU_FEATURES"]):
        raise RuntimeError(f"{ENV} must be set before Numba compiles anything: import "
                           "kernels (or kernels.target) first")


def _resolve() -> Target:
    isa = requested_isa()
    if isa is not None:
        env = numba_environment(isa)
        os.environ.update(env)
        import numba.core.config as config

        config.reload_config()
        _check_codegen(env)
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


# ------------------------------------------------------------------------------ caches
# The cache sizes every blocking budget is derived from, read from the OS (Linux sysfs,
# else glibc's sysconf) once. The budgets were tuned on a core with a 48 KiB L1d and a
# 1 MiB L2 and are kept as fractions of those caches (`l1d_share`, `l2_share`), so a
# machine with another cache hierarchy (Zen 3: 512 KiB L2; Ice Lake server: 1.25 MiB)
# gets budgets of its own. CONVBENCH_CACHES="l1d=32K,l2=512K" overrides (a budget of
# another machine measured here; tests).
CACHES_ENV = "CONVBENCH_CACHES"
SYSFS_CACHE = "/sys/devices/system/cpu/cpu0/cache"
DEFAULT_CACHES = {"l1d": 32 << 10, "l2": 1 << 20, "l3": 8 << 20}  # when the OS says nothing
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


@dataclass(frozen=True)
class Caches:
    """Data cache sizes in bytes: l1d and l2 of one core, l3 as shared by this core's
    package (the OS's figure), and where they came from."""

    l1d: int
    l2: int
    l3: int
    source: str

    def describe(self) -> dict:
        return {"cache_l1d_bytes": self.l1d, "cache_l2_bytes": self.l2,
                "cache_l3_bytes": self.l3, "cache_source": self.source}


def parse_cache_size(text: str, field: str = "size") -> int:
    """'48K' / '1024 KiB' / '2M' / '65536' -> bytes (ValueError naming `field` otherwise)."""
    t = text.strip().upper().replace("IB", "").replace("B", "").replace(" ", "")
    number = t.rstrip("KMG")
    unit = t[len(number):]
    if not number.isdigit() or not number.isascii() or unit not in _SIZE_UNITS or \
            int(number) <= 0:
        raise ValueError(f"{field}: a cache size is a positive whole number of bytes with an "
                         f"optional K/M/G unit, got {text!r}")
    return int(number) * _SIZE_UNITS[unit]


def _sysfs_caches(root: str) -> dict:
    found: dict = {}
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return found
    for entry in entries:
        if not entry.startswith("index"):
            continue
        try:
            def read(name, entry=entry):
                with open(os.path.join(root, entry, name), encoding="ascii") as f:
                    return f.read().strip()
            level, kind, size = read("level"), read("type"), read("size")
        except OSError:
            continue
        key = {"1": "l1d", "2": "l2", "3": "l3"}.get(level)
        if key and kind in ("Data", "Unified") and (key != "l1d" or kind == "Data"):
            try:
                found[key] = parse_cache_size(size)
            except ValueError:
                continue
    return found


def _sysconf_caches() -> dict:
    found = {}
    for key, name in (("l1d", "SC_LEVEL1_DCACHE_SIZE"), ("l2", "SC_LEVEL2_CACHE_SIZE"),
                      ("l3", "SC_LEVEL3_CACHE_SIZE")):
        try:
            value = os.sysconf(name)
        except (ValueError, OSError, AttributeError):
            continue
        if value and value > 0:
            found[key] = int(value)
    return found


def read_caches(environ=None, sysfs: str = SYSFS_CACHE) -> Caches:
    """This machine's cache sizes: CONVBENCH_CACHES, else sysfs, else sysconf, else defaults
    (each size separately: the first source that knows it)."""
    env = os.environ if environ is None else environ
    override: dict = {}
    for item in (env.get(CACHES_ENV) or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in DEFAULT_CACHES:
            raise ValueError(f"{CACHES_ENV}: expected l1d=SIZE,l2=SIZE,l3=SIZE, got {item!r}")
        override[key] = parse_cache_size(value, CACHES_ENV)
    sources = (("override", override), ("sysfs", _sysfs_caches(sysfs)),
               ("sysconf", _sysconf_caches()), ("default", DEFAULT_CACHES))
    sizes, used = {}, []
    for key in DEFAULT_CACHES:
        for name, found in sources:
            if key in found:
                sizes[key] = found[key]
                if name not in used:
                    used.append(name)
                break
    return Caches(sizes["l1d"], sizes["l2"], sizes["l3"], "+".join(used))


CACHES = read_caches()

# The caches the budgets were tuned against (see above): a budget is a share of these.
TUNED_L1D = 48 << 10
TUNED_L2 = 1 << 20


def l1d_share(tuned_bytes: int, caches: Caches = CACHES) -> int:
    """A budget tuned as `tuned_bytes` of a 48 KiB L1d, scaled to this core's L1d."""
    return max(4096, tuned_bytes * caches.l1d // TUNED_L1D // 1024 * 1024)


def l2_share(tuned_bytes: int, caches: Caches = CACHES) -> int:
    """A budget tuned as `tuned_bytes` of a 1 MiB L2, scaled to this core's L2."""
    return max(16384, tuned_bytes * caches.l2 // TUNED_L2 // 1024 * 1024)
