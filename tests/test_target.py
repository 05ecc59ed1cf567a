"""kernels.target: the ISA from cpuinfo, the register blocks per ISA, and that a CONVBENCH_ISA
override reaches every compiled kernel (no 512-bit code under avx2 / generic, right results)
without the Numba cache ever serving one ISA's code to another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernels import blocks, outer_block, target
from kernels.direct import gemm
from kernels.target import ISAS, REGISTERS, TARGET, VECTOR_BITS, Target
from kernels.winograd import conv2d, filter_tile, transpose

ROOT = Path(__file__).resolve().parents[1]

ZEN3_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
    "sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl "
    "nonstop_tsc cpuid extd_apicid aperfmperf rapl pni pclmulqdq monitor ssse3 fma cx16 pcid "
    "sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand lahf_lm cmp_legacy svm extapic "
    "cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw ibs skinit wdt tce topoext "
    "perfctr_core perfctr_nb bpext perfctr_llc mwaitx cpb cat_l3 cdp_l3 hw_pstate ssbd mba ibrs "
    "ibpb stibp vmmcall fsgsbase bmi1 avx2 smep bmi2 erms invpcid cqm rdt_a rdseed adx smap "
    "clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc "
    "cqm_mbm_total cqm_mbm_local clzero irperf xsaveerptr rdpru wbnoinvd arat npt lbrv "
    "svm_lock nrip_save tsc_scale vmcb_clean flushbyasid decodeassists pausefilter "
    "pfthreshold v_vmsave_vmload vgif v_spec_ctrl umip pku ospke vaes vpclmulqdq rdpid "
    "overflow_recov succor smca fsrm")
ZEN4_FLAGS = ZEN3_FLAGS + (
    " avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi "
    "avx512_vbmi2 gfni avx512_vnni avx512_bitalg avx512_vpopcntdq")


def _cpuinfo(model: str, flags: str) -> str:
    return (f"processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n"
            f"model name\t: {model}\nflags\t\t: {flags}\nbugs\t\t: sysret_ss_attrs\n\n"
            f"processor\t: 1\nflags\t\t: {flags}\n")


AARCH64_CPUINFO = (
    "processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 "
    "atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs\nCPU implementer\t: 0x41\n"
    "CPU architecture: 8\nCPU part\t: 0xd0c\n")


@pytest.mark.parametrize("text, machine, isa", [
    (_cpuinfo("AMD EPYC 7B13 64-Core Processor", ZEN3_FLAGS), "x86_64", "avx2"),
    (_cpuinfo("AMD EPYC 9B14 96-Core Processor", ZEN4_FLAGS), "x86_64", "avx512"),
    (_cpuinfo("Intel(R) Xeon(R) CPU E5-2670 0", "fpu sse sse2 ssse3 sse4_1 sse4_2 avx"),
     "x86_64", "generic"),
    (AARCH64_CPUINFO, "aarch64", "neon"),
    (AARCH64_CPUINFO, "", "neon"),  # the asimd flag alone says Arm, whatever this host is
])
def test_isa_from_cpuinfo(text, machine, isa):
    assert target.isa_from_cpuinfo(text, machine) == isa


def _target(isa: str) -> Target:
    return Target(isa, "test", True, VECTOR_BITS[isa], REGISTERS[isa])


@pytest.mark.parametrize("isa", ISAS)
def test_blocks_fit_the_registers(isa):
    t = _target(isa)
    lanes = t.vector_bits // 32
    assert t.panel % lanes == 0 and t.panel % t.transform_lanes == 0
    assert t.outer_widths[0] == t.panel and t.outer_rows == 6
    for width in t.outer_widths:
        vectors = width // lanes
        accumulators = t.outer_rows * vectors
        assert accumulators + vectors + 1 <= t.registers, (isa, width)  # + operands, broadcast
    accumulators = t.dot_channels * t.dot_pixels
    assert accumulators + t.dot_channels + 1 <= t.registers, isa
    assert t.transform_lanes == lanes
    assert t.describe()["blocks"] == t.blocks


def test_block_shapes_per_isa():
    shapes = {isa: (_target(isa).outer_widths, _target(isa).dot_channels) for isa in ISAS}
    assert shapes == {"avx512": ((16, 32), 4), "avx2": ((16,), 2), "neon": ((16,), 4),
                      "generic": ((8,), 2)}
    assert _target("avx512").blocks == "outer 6x32/6x16, dot 4x6, transform 16"
    assert _target("avx2").blocks == "outer 6x16, dot 2x6, transform 8"


def test_kernels_take_their_shapes_from_the_target():
    assert outer_block.LANES == TARGET.panel and outer_block.PT == TARGET.outer_rows
    assert (blocks.KB, blocks.PB) == (TARGET.dot_channels, TARGET.dot_pixels)
    assert transpose.N == filter_tile.N == TARGET.transform_lanes
    widths = {gemm.outer_width(kg) for kg in range(1, 200)} - {0}
    assert widths == set(TARGET.outer_widths)
    for kg in (8, 16, 17, 37, 512):
        kv = conv2d.prepare2d(*_winograd_args(kg))["kv"]
        assert kv * TARGET.panel in TARGET.outer_widths


def _winograd_args(k):
    import numpy as np

    x = np.zeros((1, 4, 6, 6), np.float32)
    w = np.zeros((k, 4, 3, 3), np.float32)
    return x, w, 4, 1, (6, 6), (1, 1), (1, 1)


# ------------------------------------------------------- the override reaches every kernel
# Runs in a fresh interpreter (the ISA is fixed at import): a few small problems against the
# float64 oracle, then the assembly and cache statistics of every compiled dispatcher.
SNIPPET = r"""
import importlib, json, sys
import numba
import kernels
from kernels import blocks
from kernels.direct import small
from kernels.spec import ConvSpec
from kernels.target import TARGET
from tests.conftest import assert_conforms

blocks.POISON_OUTPUTS = True
small.SMALL_WORK = 0  # the register-blocked forms, not the tiny-layer loop (as in conftest)
CASES = [  # the outer block (wide where the target has it), winograd, then the rest
    ("conv2d", "direct", ConvSpec(c=5, k=37, size=(11, 13), kernel=3, padding=2, dilation=2)),
    ("conv2d", "winograd_f4", ConvSpec(c=20, k=37, size=(13, 11), kernel=3, padding=1)),
    ("grouped", "direct", ConvSpec(c=6, k=40, size=(9, 10), kernel=(2, 3), stride=2, padding=1,
                                   groups=2)),
    ("grouped", "direct", ConvSpec(c=6, k=15, size=(8, 9), kernel=3, stride=2, padding=1,
                                   groups=3)),  # 5 channels per group: the dot block
    ("depthwise", "direct", ConvSpec(c=5, k=5, groups=5, size=(20, 20), kernel=3, padding=1,
                                     stride=2)),  # small planes: channels in lanes
    ("depthwise", "direct", ConvSpec(c=3, k=3, groups=3, size=(41, 41), kernel=3,
                                     padding=1)),  # large planes
    ("depthwise_separable", "direct", ConvSpec(c=5, k=7, size=(9, 9), kernel=3, padding=1)),
    ("conv2d", "im2col", ConvSpec(c=4, k=8, size=(9, 9), kernel=3, padding=1, stride=2)),
]
for conv_type, algorithm, spec in CASES[:int(sys.argv[1])]:
    assert_conforms(conv_type, algorithm, spec, seed=1)
out = {"target": TARGET.describe(), "asm": {}, "hits": 0, "misses": 0}
for name in ("kernels.blocks", "kernels.direct.gemm", "kernels.direct.dense",
             "kernels.direct.depthwise", "kernels.direct.lane_nest", "kernels.direct.fused",
             "kernels.tiled.pipeline", "kernels.im2col.unfold", "kernels.im2col.dense"):
    for attr, obj in vars(importlib.import_module(name)).items():
        if not (isinstance(obj, numba.core.registry.CPUDispatcher) and obj.signatures
                and obj.__module__ == name):
            continue
        out["hits"] += sum(obj.stats.cache_hits.values())
        out["misses"] += sum(obj.stats.cache_misses.values())
        if not obj.stats.cache_hits:  # code loaded from the cache cannot be inspected
            text = "\n".join(obj.inspect_asm().values())
            out["asm"][attr] = sorted(r for r in ("zmm", "ymm", "fmaf") if r in text)
print(json.dumps(out))
"""
# the dispatchers whose code must follow the ISA (register-blocked or vectorised)
IMPORTANT = ("conv_dense", "channel_block", "_outer_pixels", "products_and_output",
             "_product_block", "_filter_chunk", "input_transform", "conv_depthwise_planes",
             "conv_group_lanes", "conv_depthwise_pointwise", "unfold_tile")


def _run(isa: str, cases: int, cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "NUMBA_DISABLE_CACHE")}
    env.update(CONVBENCH_ISA=isa, NUMBA_CACHE_DIR=str(cache), NUMBA_NUM_THREADS="2",
               PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", SNIPPET, str(cases)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.splitlines()[-1])


def _runnable(isa: str) -> bool:
    try:
        target.requested_isa({target.ENV: isa})
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One Numba cache shared by, in order: the host ISA (the two register-blocked kernels),
    avx2 and generic (every case), the last of them again (every case, now from the cache)."""
    cache = tmp_path_factory.mktemp("numba-cache")
    out = {"host": _run("", 2, cache)}
    others = [isa for isa in ("avx2", "generic") if _runnable(isa)]  # generic runs anywhere
    for isa in others:
        out[isa] = _run(isa, 99, cache)
    out["again"] = (others[-1], _run(others[-1], 99, cache))
    return out


def test_host_run_has_512_bit_code(runs):
    host = runs["host"]
    assert host["target"]["isa"] == target.host_isa()
    if target.host_isa() != "avx512":
        pytest.skip("the host has no AVX-512")
    assert host["misses"] > 0
    for name in ("conv_dense", "channel_block", "products_and_output", "_filter_chunk"):
        assert "zmm" in host["asm"][name], name  # so the checks below can fail


@pytest.mark.parametrize("isa, banned", [("avx2", {"zmm"}), ("generic", {"zmm", "ymm"})])
def test_override_reaches_every_kernel(runs, isa, banned):
    if isa not in runs:
        pytest.skip(f"{isa} code cannot run here")
    run = runs[isa]
    t = _target(isa)
    assert run["target"]["isa"] == isa and run["target"]["blocks"] == t.blocks
    assert set(IMPORTANT) <= set(run["asm"]), "a kernel was not compiled (or not inspected)"
    wide = {name: regs for name, regs in run["asm"].items() if banned & set(regs)}
    assert not wide, f"{isa}: wider vector registers in {wide}"
    slow = [name for name, regs in run["asm"].items() if "fmaf" in regs]
    assert not slow, f"{isa}: libm fmaf calls in {slow}"


def test_cache_never_crosses_isas(runs):
    host = target.host_isa()
    for isa in ("avx2", "generic"):
        if isa in runs and isa != host:  # other ISAs' entries are in the cache: none may be used
            assert runs[isa]["hits"] == 0 and runs[isa]["misses"] > 0, isa
    # the cache does work: a second process of the same ISA compiles nothing
    isa, again = runs["again"]
    assert again["hits"] > 0 and again["misses"] == 0, isa


# ------------------------------------------------------------------------------ caches


def _fake_sysfs(root, entries):
    for i, (level, kind, size) in enumerate(entries):
        d = root / f"index{i}"
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    return str(root)


def test_caches_are_read_from_sysfs(tmp_path):
    from kernels.target import read_caches

    root = _fake_sysfs(tmp_path, [(1, "Data", "48K"), (1, "Instruction", "32K"),
                                  (2, "Unified", "1280K"), (3, "Unified", "54M")])
    c = read_caches(environ={}, sysfs=root)
    assert (c.l1d, c.l2, c.l3) == (48 << 10, 1280 << 10, 54 << 20)
    assert c.source == "sysfs"


def test_cache_override_and_its_errors(tmp_path):
    from kernels.target import CACHES_ENV, read_caches

    root = _fake_sysfs(tmp_path, [(1, "Data", "48K"), (2, "Unified", "1M")])
    c = read_caches(environ={CACHES_ENV: "l2=512K"}, sysfs=root)
    assert (c.l1d, c.l2) == (48 << 10, 512 << 10) and "override" in c.source
    for bad in ("l2=12Q", "l4=1M", "l2", "l2=-1K", "l2=١M"):
        with pytest.raises(ValueError, match=CACHES_ENV):
            read_caches(environ={CACHES_ENV: bad}, sysfs=root)


def test_missing_sysfs_falls_back(tmp_path):
    from kernels.target import read_caches

    c = read_caches(environ={}, sysfs=str(tmp_path / "none"))
    assert c.l1d > 0 and c.l2 > 0 and c.l3 > 0 and "sysfs" not in c.source


def test_budgets_scale_with_the_caches():
    from kernels.target import Caches, l1d_share, l2_share

    tuned = Caches(48 << 10, 1 << 20, 32 << 20, "test")
    zen3 = Caches(32 << 10, 512 << 10, 32 << 20, "test")
    icx = Caches(48 << 10, 1280 << 10, 54 << 20, "test")
    assert l2_share(256 << 10, tuned) == 256 << 10 and l1d_share(24 << 10, tuned) == 24 << 10
    assert l2_share(256 << 10, zen3) == 128 << 10 and l1d_share(24 << 10, zen3) == 16 << 10
    assert l2_share(256 << 10, icx) == 320 << 10
