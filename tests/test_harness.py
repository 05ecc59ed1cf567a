"""The harness: planning over a shape set, pyperf sweeps, resume, shards, verify, the CLI.

The shape set is a tiny stand-in (`load_set` monkeypatched), so these tests
do not depend on the shape files; the sweeps run real pyperf worker
processes with pyperf's small-run options.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import harness.shapes
import kernels
from harness import calibrate, cli, peers, plan, results, sweep
from kernels import registry

from .conftest import temporary_algorithm

try:
    from harness.shapes import Layer
except ImportError:  # the shape sets not there yet: the same fields
    @dataclass(frozen=True)
    class Layer:  # type: ignore[no-redef]
        network: str
        name: str
        conv_type: str
        spec: kernels.ConvSpec
        repeat: int = 1

try:
    import torch  # noqa: F401
    HAS_TORCH = True
except ImportError:  # pragma: no cover
    HAS_TORCH = False

TINY = [
    Layer("tiny", "conv", "conv2d",
          kernels.ConvSpec(n=1, c=4, k=8, size=(6, 6), kernel=(3, 3), padding=1), 2),
    Layer("tiny", "dw", "depthwise",
          kernels.ConvSpec(n=1, c=4, k=4, size=(6, 6), kernel=(3, 3), padding=1, groups=4), 1),
    Layer("tiny", "single", "conv2d",
          kernels.ConvSpec(n=1, c=1, k=1, size=(7, 7), kernel=(3, 3)), 1),
]
CALIBRATION = {"calib_sgemm_gflops_1t": 100.0, "calib_sgemm_gflops": 190.0,
               "calib_bandwidth_gbs": 20.0, "cpu_model": "test cpu"}
FAST = ["--debug-single-value"]          # one process, one value: the cheapest valid run
SMALL = ["-p", "1", "-n", "2", "-w", "1", "-l", "2"]  # two values, so stats are meaningful


@pytest.fixture(autouse=True)
def tiny_set(monkeypatch):
    """`harness.shapes.load_set` -> the stand-in set "tiny"; a fixed calibration."""
    def load_set(name):
        if name != "tiny":
            raise ValueError(f"shape set: unknown set {name!r}; available sets are tiny")
        return list(TINY)

    monkeypatch.setattr(harness.shapes, "load_set", load_set, raising=False)
    monkeypatch.setattr(harness.shapes, "published_total", lambda name: None, raising=False)
    monkeypatch.delattr(harness.shapes, "totals", raising=False)  # computed from load_set
    monkeypatch.setattr(calibrate, "calibrate", lambda force=False, quick=False: dict(
        CALIBRATION, cache_path=""))


def kernel_sources() -> dict:
    root = Path(kernels.__file__).parent
    return {p: p.stat().st_mtime_ns for p in root.rglob("*.py")}


def names_in(path) -> list[str]:
    import pyperf

    return pyperf.BenchmarkSuite.load(str(path)).get_benchmark_names()


# --------------------------------------------------------------------------- planning


def test_plan_over_the_stand_in_set():
    p = plan.plan("tiny", algos=["direct"], peers=["torch", "scipy"], threads=["1"])
    names = [j.name for j in p.jobs]
    assert names[0] == "conv2d/direct/tiny:conv"
    assert "conv2d/scipy/tiny:single" in names          # scipy: the single-channel layer only
    assert "depthwise/torch/tiny:dw" in names or not HAS_TORCH
    skipped = {e["name"]: e for e in p.skips}
    assert "single-channel" in skipped["conv2d/scipy/tiny:conv"]["reason"]
    for e in p.skips:
        assert {"conv_type", "algorithm", "network", "layer", "spec", "reason"} <= set(e)
    assert all(j.threads == 1 for j in p.jobs)
    # every registered algorithm is considered without naming it
    full = plan.plan("tiny", threads=["1"])
    considered = {j.algorithm for j in full.jobs} | {e["algorithm"] for e in full.skips}
    assert considered == set(registry.ALGORITHMS)


def test_plan_threads_types_and_errors():
    p = plan.plan("tiny", types=["depthwise"], algos=["direct"], threads=("1", "1"))
    assert [j.name for j in p.jobs] == ["depthwise/direct/tiny:dw"]
    if plan.max_threads() >= 2:
        p = plan.plan("tiny", types=["depthwise"], algos=["direct"], threads=["1,2"])
        assert [j.name for j in p.jobs] == ["depthwise/direct/tiny:dw@t1",
                                            "depthwise/direct/tiny:dw@t2"]
    with pytest.raises(ValueError, match="--types"):
        plan.plan("tiny", types=["conv9d"])
    with pytest.raises(ValueError, match="--algos"):
        plan.plan("tiny", algos=["no_such_algorithm"])
    with pytest.raises(ValueError, match="unknown set"):
        plan.plan("nope")
    with pytest.raises(ValueError, match="--shard"):
        plan.parse_shard("3/2")
    assert cli.main(["run", "--set", "nope", "--dry-run"]) == 2


def test_shards_partition_the_plan():
    whole = plan.plan("tiny", peers=["scipy"], threads=["1"])
    entries = [j.name for j in whole.jobs] + [e["name"] for e in whole.skips]
    parts = [plan.plan("tiny", peers=["scipy"], threads=["1"], shard=(i, 3))
             for i in (1, 2, 3)]
    got = [j.name for p in parts for j in p.jobs] + [e["name"] for p in parts for e in p.skips]
    assert sorted(got) == sorted(entries)          # disjoint and complete
    again = plan.plan("tiny", peers=["scipy"], threads=["1"], shard=(2, 3))
    assert [j.name for j in again.jobs] == [j.name for j in parts[1].jobs]  # deterministic


# --------------------------------------------------------------------------- list, shapes


def test_list_prints_the_matrix(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["type", *registry.ALGORITHMS]
    for t in kernels.CONV_TYPES:
        assert any(line.split()[:1] == [t] for line in out.splitlines())
    assert "yes" in out                           # direct runs everywhere
    assert "[1]" in out or all(registry.cell_reason(t, a) is None
                               for t in kernels.CONV_TYPES for a in registry.ALGORITHMS)
    for t in kernels.CONV_TYPES:
        for a in registry.ALGORITHMS:
            why = registry.cell_reason(t, a)
            if why:
                assert why in out


def test_shapes_prints_layers_and_total(capsys):
    assert cli.main(["shapes", "tiny"]) == 0
    out = capsys.readouterr().out
    conv = 8 * 36 * 4 * 9
    total = 2 * conv + 4 * 36 * 9 + 25 * 9
    assert f"{conv:,}" in out and f"total: {total:,}" in out
    assert "no published figure" in out


def test_shapes_totals_of_a_real_network(monkeypatch, capsys):
    monkeypatch.undo()                         # the real shape sets, where they exist
    if not hasattr(harness.shapes, "totals") or "resnet50" not in harness.shapes.available_sets():
        pytest.skip("the resnet50 shape set is not there")
    assert cli.main(["shapes", "resnet50", "--totals"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("total: ") and "published:" in out and "agrees" in out


# --------------------------------------------------------------------------- verify


@pytest.fixture
def broken_cell(monkeypatch):
    """A deliberately wrong conv2d kernel registered as algorithm "broken"."""
    @temporary_algorithm(monkeypatch, "broken", "direct with one output off by 0.5")
    def wrong(spec, x, weights):
        y = kernels.run("conv2d", "direct", spec, x, weights).copy()
        y[0, 0, 0, 0] += 0.5
        return y

    return "broken"


def test_verify_catches_a_wrong_kernel(broken_cell, capsys):
    assert cli.main(["verify", "--set", "tiny", "--types", "conv2d",
                     "--algos", "direct"]) == 0
    assert cli.main(["verify", "--set", "tiny", "--types", "conv2d",
                     "--algos", "direct", broken_cell]) == 1
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if "/" in line.split(" ")[0]}
    assert "FAIL" in lines["conv2d/broken/tiny:conv"]
    assert " ok" in lines["conv2d/direct/tiny:conv"]


def test_run_never_times_a_failing_cell(broken_cell, tmp_path):
    out = tmp_path / "r.json"
    code = cli.main(["run", "--set", "tiny", "--types", "conv2d", "--algos", broken_cell,
                     "-o", str(out), *FAST])
    assert code == 1
    assert not out.exists()                        # nothing was timed
    side = json.loads(results.sidecar_path(out).read_text())
    failed = [e for e in side if e["status"] == "failed"]
    assert {e["name"] for e in failed} == {"conv2d/broken/tiny:conv",
                                           "conv2d/broken/tiny:single"}
    assert all("verification failed" in e["reason"] for e in failed)


# --------------------------------------------------------------------------- sweeps


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")
def test_tiny_sweep_end_to_end(tmp_path, capsys):
    sources = kernel_sources()
    out = tmp_path / "tiny.json"
    code = cli.main(["run", "--set", "tiny", "--types", "conv2d", "depthwise",
                     "--algos", "direct", "--peers", "torch", "--threads", "1",
                     "-o", str(out), *SMALL])
    assert code == 0
    import pyperf

    suite = pyperf.BenchmarkSuite.load(str(out))
    names = suite.get_benchmark_names()
    assert set(names) == {"conv2d/direct/tiny:conv", "conv2d/torch/tiny:conv",
                          "depthwise/direct/tiny:dw", "depthwise/torch/tiny:dw",
                          "conv2d/direct/tiny:single", "conv2d/torch/tiny:single"}
    for bench in suite:
        md = bench.get_metadata()
        algo = md["algorithm"]
        assert bench.get_name() == f"{md['conv_type']}/{algo}/{md['network']}:{md['layer']}"
        for key in ("conv_type", "algorithm", "spec", "network", "layer", "multiplications",
                    "direct_multiplications", "threads", "threading_layer", "numba_version",
                    "llvmlite_version", "numpy_version", "torch_version", "compile_seconds",
                    "calib_sgemm_gflops_1t", "calib_sgemm_gflops", "calib_bandwidth_gbs",
                    "cpu_model", "isa", "vector_bits", "machine_class"):
            assert key in md, (bench.get_name(), key)
        from kernels.target import TARGET
        assert md["isa"] == TARGET.isa and f"-{TARGET.isa}-" in md["machine_class"]
        assert md["threads"] == 1 and md["cpu_model"] == "test cpu"
        assert kernels.ConvSpec.parse(md["spec"]) == next(
            la.spec for la in TINY if la.name == md["layer"])
        assert md["multiplications"] == kernels.multiplications(
            md["conv_type"], "direct", kernels.ConvSpec.parse(md["spec"]))
        assert bench.get_nvalue() == 2 and bench.median() > 0
        runs = [r.get_metadata() for r in bench.get_runs()]
        assert all(r["worker_startup_s"] > 0 for r in runs)
        if algo == "direct":
            assert md["threading_layer"] in ("omp", "tbb", "workqueue")
            if kernel_sources() == sources:  # (an edit during the test invalidates the cache)
                compiles = [r["worker_compiles"] for r in runs]
                assert compiles == [0] * len(runs), "workers recompiled: Numba cache missed"
    # pyperf's own tools read the file
    for args in (["stats", str(out)], ["compare_to", str(out), str(out)]):
        proc = subprocess.run([sys.executable, "-m", "pyperf", *args], capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr
    side = json.loads(results.sidecar_path(out).read_text())
    assert side == [] or all(e["status"] == "skipped" for e in side)
    printed = capsys.readouterr()
    assert "worker start-up" in printed.out and "ETA" in printed.err


def test_resume_after_interrupt_loses_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["run", "--set", "tiny", "--algos", "direct", "--peers", "scipy", "--threads", "1",
            *FAST]
    expected = [j.name for j in plan.plan("tiny", algos=["direct"], peers=["scipy"],
                                            threads=["1"]).jobs]
    assert len(expected) == 4
    real_run_job = sweep.run_job
    calls = []

    def flaky(job, metadata, tmpdir, pyperf_args=()):
        calls.append(job.name)
        if len(calls) == 2:        # the pyperf process of the second benchmark is killed
            import signal

            proc = subprocess.run([sys.executable, "-c",
                                   "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
            assert proc.returncode == -signal.SIGKILL
            return None, f"pyperf worker failed (exit code {proc.returncode}): killed"
        if len(calls) == 4:        # Ctrl-C during the fourth
            raise KeyboardInterrupt
        return real_run_job(job, metadata, tmpdir, pyperf_args)

    monkeypatch.setattr(sweep, "run_job", flaky)
    assert cli.main(args) == 130
    files = sorted((tmp_path / "results").glob("*-tiny.json"))
    assert len(files) == 1                         # results/<host>-<date>-<set>.json
    path = files[0]
    first = names_in(path)
    assert first == [expected[0], expected[2]]     # finished ones kept
    side = {e["name"]: e for e in json.loads(results.sidecar_path(path).read_text())}
    assert side[expected[1]]["status"] == "error"
    values_before = {b.get_name(): b.get_values() for b in results.load_suite(path)}

    monkeypatch.setattr(sweep, "run_job", real_run_job)
    assert cli.main(["run", "--resume", str(path), "--algos", "direct", "--peers", "scipy",
                     "--threads", "1", *FAST]) == 0
    assert sorted(names_in(path)) == sorted(expected)
    for b in results.load_suite(path):                # nothing re-timed
        if b.get_name() in values_before:
            assert b.get_values() == values_before[b.get_name()]
    side = json.loads(results.sidecar_path(path).read_text())
    assert all(e["status"] == "skipped" for e in side)   # the error was retried
    assert "resume: 2 benchmarks already" in capsys.readouterr().err


def test_shard_and_merge_equal_the_unsharded_set(tmp_path, capsys):
    base = ["run", "--set", "tiny", "--algos", "direct", "--peers", "scipy", "--threads", "1",
            *FAST]
    for i in (1, 2):
        assert cli.main([*base, "--shard", f"{i}/2", "-o", str(tmp_path / f"s{i}.json")]) == 0
    a, b = names_in(tmp_path / "s1.json"), names_in(tmp_path / "s2.json")
    assert a and b and not set(a) & set(b)
    merged = tmp_path / "merged.json"
    assert cli.main(["merge", str(tmp_path / "s1.json"), str(tmp_path / "s2.json"),
                     "-o", str(merged)]) == 0
    whole = plan.plan("tiny", algos=["direct"], peers=["scipy"], threads=["1"])
    assert sorted(names_in(merged)) == sorted(j.name for j in whole.jobs)
    side = json.loads(results.sidecar_path(merged).read_text())
    assert sorted(e["name"] for e in side) == sorted(e["name"] for e in whole.skips)
    assert cli.main(["merge", str(tmp_path / "s1.json"), "-o", str(merged)]) == 2  # no clobber


def test_bench_runs_and_builds_the_report(tmp_path, monkeypatch, capsys):
    import types

    built = []
    fake = types.ModuleType("harness.report")
    fake.build_report = lambda path, html: (built.append((path, html)),
                                            Path(html).write_text("<html></html>"))
    monkeypatch.setitem(sys.modules, "harness.report", fake)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench", "--set", "tiny", "--types", "depthwise", "--algos", "direct",
                     *FAST]) == 0
    out = capsys.readouterr().out
    (result_file, html), = built
    assert Path(result_file).parent.name == "results" and Path(html).exists()
    assert f"report:  {html}" in out and f"results: {result_file}" in out
    # both timing modes; every installed peer in the modes it has
    spec = TINY[1].spec
    expected = ["depthwise/direct/tiny:dw", "depthwise/direct/tiny:dw@prepared"]
    for p in peers.PEERS:  # ours first, then each peer's (the resident timer's sides)
        for mode, suffix in (("call", ""), ("prepared", "@prepared")):
            if peers.peer_reason(p, "depthwise", spec, mode) is None:
                expected.append(f"depthwise/{p}/tiny:dw{suffix}")
    assert names_in(result_file) == expected
    reasons = {e["name"]: e["reason"] for e in json.loads(
        results.sidecar_path(result_file).read_text())}
    assert "depthwise/scipy/tiny:dw" in reasons        # the scipy peer is tried, and skipped
    assert "no prepared form" in reasons["depthwise/scipy/tiny:dw@prepared"]
    for p in ("onnxruntime", "openvino", "litert", "ncnn"):  # no call mode, or not installed
        assert f"depthwise/{p}/tiny:dw" in reasons


def test_output_exists_needs_resume(tmp_path, capsys):
    out = tmp_path / "r.json"
    out.write_text("")
    assert cli.main(["run", "--set", "tiny", "--algos", "direct", "-o", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err


# --------------------------------------------------------------------------- odds and ends


def test_calibrate_measures_and_caches(tmp_path, monkeypatch):
    monkeypatch.undo()                         # the real calibrate, a private cache dir
    monkeypatch.setenv("CONVBENCH_CACHE_DIR", str(tmp_path))
    first = calibrate.calibrate(quick=True)
    for key in calibrate.KEYS[:3]:
        assert first[key] > 0
    assert first["cpu_model"]
    assert calibrate.cache_path().exists()
    # the cache is reused while the probe agrees (on a loaded machine a fresh probe can
    # drift past DRIFT and re-measure: that path has its own test)
    monkeypatch.setattr(calibrate, "probe_gflops", lambda: first[calibrate.PROBE_KEY])
    assert calibrate.calibrate(quick=True)["calib_sgemm_gflops"] == first["calib_sgemm_gflops"]


def test_delegated_commands_report_missing_modules(capsys):
    assert cli._delegate("harness.no_such_module", []) == 2
    assert "not available" in capsys.readouterr().err


def test_worker_error_is_reported_not_raised(tmp_path):
    job = plan.Job("conv2d/direct/tiny:bad", "conv2d", "direct", TINY[0], 1)
    md = {"conv_type": "conv2d"}
    bad = plan.Job(job.name, "conv2d", "no_such_algorithm", TINY[0], 1)
    bench, note = sweep.run_job(bad, md, tmp_path, FAST)
    assert bench is None and "no_such_algorithm" in note
    bench, _ = sweep.run_job(job, md, tmp_path, FAST)
    assert bench is not None and np.isfinite(bench.median())


def test_verification_bound_comes_from_the_accuracy_contract():
    from harness import verify
    from kernels.accuracy import bound

    layer = TINY[1]
    check = verify.check_cell(layer.conv_type, "direct", layer.spec)
    assert check["ok"] and check["tolerance"] == bound("direct", layer.conv_type, layer.spec)
    assert check["max_error"] <= check["tolerance"]
    # --rtol replaces the bound; a peer is held to direct's bound
    assert verify.check_cell(layer.conv_type, "direct", layer.spec, rtol=0.25)[
        "tolerance"] == 0.25
    assert verify.cell_bound(layer.conv_type, "torch", layer.spec) == bound(
        "direct", layer.conv_type, layer.spec)


# --------------------------------------------------------------------------- resident timer


def test_resident_timer_sweeps_resumes_and_keeps_sides_apart(tmp_path, capsys):
    """`--timer resident`: the same results format from long-lived workers; each process's
    run recorded; peers after ours (one side's workers at a time); resume re-times nothing."""
    from harness import resident

    out = tmp_path / "r.json"
    args = ["run", "--set", "tiny", "--algos", "direct", "--peers", "scipy", "--threads", "1",
            "--timer", "resident", "-p", "2", "-n", "2", "-w", "1", "-l", "2", "-o", str(out)]
    assert cli.main(args) == 0
    import pyperf

    suite = pyperf.BenchmarkSuite.load(str(out))
    names = suite.get_benchmark_names()
    whole = plan.plan("tiny", algos=["direct"], peers=["scipy"], threads=["1"])
    assert sorted(names) == sorted(j.name for j in whole.jobs)
    assert names == [j.name for j in resident.order_by_side(whole.jobs)]
    assert [resident.side_of(j) for j in resident.order_by_side(whole.jobs)][-1] == "scipy"
    for bench in suite:
        runs = bench.get_runs()
        assert [r.get_metadata()["resident_process"] for r in runs] == [1, 2]
        assert all(r.get_metadata()["timer"] == "resident" and r.get_metadata()["loops"] == 2
                   and len(r.values) == 2 for r in runs)
        assert json.loads(bench.get_metadata()["sweep_options"])["timer"] == "resident"
    assert "expect about" in capsys.readouterr().err
    assert cli.main(["run", "--resume", str(out), *args[1:-2]]) == 0
    assert "resume: " in capsys.readouterr().err
    assert pyperf.BenchmarkSuite.load(str(out)).get_benchmark_names() == names
    # resuming with the other timer is refused: the options differ
    assert cli.main(["run", "--resume", str(out), *[a for a in args[1:-2] if a not in (
        "--timer", "resident")]]) == 2
    assert 'timer: "resident" in the file' in capsys.readouterr().err


def test_resident_worker_reports_a_broken_job_and_goes_on():
    from harness import resident

    job = plan.Job("conv2d/direct/tiny:conv", "conv2d", "direct", TINY[0], 1)
    bad = plan.Job(job.name, "conv2d", "no_such_algorithm", TINY[0], 1)
    with resident.ResidentTimer(["-p", "1", "-n", "1", "-w", "0", "-l", "1"]) as timer:
        bench, note = timer(bad, {"conv_type": "conv2d"})
        assert bench is None and "no_such_algorithm" in note
        bench, note = timer(job, {"conv_type": "conv2d"})
        assert bench is not None and np.isfinite(bench.median()) and timer.started == 1


def test_resident_options_follow_pyperf_flags():
    from harness.resident import options_from

    assert options_from([]) == {"processes": 2, "values": 3, "warmups": 1, "min_time": 0.1,
                                "loops": None}
    assert options_from(["--processes=3", "-n", "5", "--min-time", "0.02"])["processes"] == 3
    assert options_from(["--debug-single-value"])["values"] == 1
    with pytest.raises(ValueError, match="processes"):
        options_from(["-p", "0"])


def test_a_malformed_memory_limit_stops_the_sweep(tmp_path, monkeypatch, capsys):
    """CONVBENCH_MEMORY_LIMIT=8GG used to skip every cell as not fitting, exit 0, and name
    a results file it never wrote."""
    monkeypatch.setenv("CONVBENCH_MEMORY_LIMIT", "8GG")
    out = tmp_path / "r.json"
    assert cli.main(["run", "--set", "tiny", "--algos", "direct", "-o", str(out)]) == 2
    assert "CONVBENCH_MEMORY_LIMIT" in capsys.readouterr().err
    assert not out.exists()
