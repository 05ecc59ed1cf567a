"""Distributed sweeps on a Dask LocalCluster: the same benchmarks as on one machine, and a
worker killed mid-shard loses nothing. Skipped when Dask is not installed."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from harness import calibrate, cli, distributed, plan, results

pytest.importorskip("distributed")

TINY_SET = """# a stand-in set small enough for shard subprocesses
conv2d mb1ic4ih6oc8oh6kh3ph1n"tiny:conv"
conv2d mb1ic1ih7oc1oh5kh3n"tiny:single"
depthwise g4mb1ic4ih6oc4oh6kh3ph1n"tiny:dw"
"""
FAST = ["--debug-single-value"]  # one process, one value: the cheapest valid run


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A set file, a calibration cache the shards read (they measure again only when the
    machine's probe drifted) and a cluster of two one-thread process workers, each offering
    machine=1."""
    from dask import config
    from distributed import Client, LocalCluster

    d = tmp_path_factory.mktemp("dask")
    set_file = d / "tiny.txt"
    set_file.write_text(TINY_SET)
    cache = d / "cache"
    cache.mkdir()
    env = {"CONVBENCH_CACHE_DIR": str(cache)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    calibrate.cache_path().write_text(json.dumps({
        "calib_sgemm_gflops_1t": 100.0, "calib_sgemm_gflops": 190.0,
        "calib_bandwidth_gbs": 20.0, "cpu_model": "test cpu",
        calibrate.PROBE_KEY: calibrate.probe_gflops()}))
    with config.set({"distributed.worker.profile.enabled": False}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               resources={distributed.RESOURCE: 1}, dashboard_address=None)
        client = Client(cluster)
    try:
        yield set_file, cluster, client
    finally:
        client.close()
        cluster.close()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def names_in(path) -> list[str]:
    return results.load_suite(path).get_benchmark_names()


def args_for(set_file) -> list[str]:
    return ["run", "--set", str(set_file), "--algos", "direct", "--threads", "1", *FAST]


def test_local_cluster_equals_the_single_machine_sweep(setup, tmp_path):
    set_file, cluster, _ = setup
    single, dask_out = tmp_path / "single.json", tmp_path / "dask.json"
    assert cli.main([*args_for(set_file), "-o", str(single)]) == 0
    assert cli.main([*args_for(set_file), "--dask", cluster.scheduler_address,
                     "--shards", "2", "-o", str(dask_out)]) == 0
    assert sorted(names_in(dask_out)) == sorted(names_in(single))
    assert len(names_in(single)) == len(plan.plan(str(set_file), algos=["direct"],
                                                  threads=["1"]).jobs) > 1
    machines = json.loads(distributed.machines_path(dask_out).read_text())
    assert sorted(m["shard"] for m in machines) == ["1/2", "2/2"]
    assert all(m["machine_class"] and m["hostname"] and m["calib_bandwidth_gbs"] > 0
               and m["dask_profiler"] is False for m in machines)
    skips = {e["name"] for e in json.loads(results.sidecar_path(dask_out).read_text())}
    assert skips == {e["name"] for e in json.loads(results.sidecar_path(single).read_text())}
    # resumed with every shard done: nothing is run again
    assert cli.main([*args_for(set_file), "--dask", cluster.scheduler_address,
                     "--resume", str(dask_out)]) == 0
    assert sorted(names_in(dask_out)) == sorted(names_in(single))


def test_a_worker_killed_mid_shard_loses_nothing(setup, tmp_path):
    set_file, cluster, client = setup
    out = tmp_path / "killed.json"
    codes = []
    run = threading.Thread(target=lambda: codes.append(cli.main(
        [*args_for(set_file), "--dask", cluster.scheduler_address, "--shards", "2",
         "-o", str(out)])))
    run.start()
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        busy = [w for w, keys in client.processing().items()
                if any(str(k).startswith("convbench-shard-") for k in keys)]
        if busy:
            time.sleep(1.0)  # the shard's subprocess is under way
            if client.processing().get(busy[0]):
                victim = busy[0]
        else:
            time.sleep(0.1)
    assert victim is not None, "no shard started"
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    run.join(timeout=400)
    assert not run.is_alive()
    assert codes == [0]
    assert pid not in client.run(os.getpid).values()  # that worker is gone (the nanny made
    expected = [j.name for j in plan.plan(str(set_file), algos=["direct"], threads=["1"]).jobs]
    assert sorted(names_in(out)) == sorted(expected)  # a new one) and its shard ran again
    shards = [m["shard"] for m in json.loads(distributed.machines_path(out).read_text())]
    assert sorted(shards) == ["1/2", "2/2"]


def test_client_argv_and_the_shard_environment():
    argv = ["--set", "ci", "--dask", "tcp://h:8786", "--shards=3", "-o", "x.json",
            "--threads", "1", "2", "--machine-class", "c", "--retries", "1", "--fast"]
    assert distributed.client_argv(argv) == ["--set", "ci", "--threads", "1", "2", "--fast"]
    nanny = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PATH": "/bin"}
    env = distributed.shard_environment(nanny, {"OMP_NUM_THREADS": None,
                                                "MKL_NUM_THREADS": "2"})
    assert "OMP_NUM_THREADS" not in env and env["MKL_NUM_THREADS"] == "2"
    assert env["PATH"] == "/bin"
    assert env["PYTHONPATH"].startswith(str(distributed.sweep.SOURCE_ROOT))


def test_bad_options_are_refused(setup, tmp_path, capsys):
    set_file, cluster, _ = setup
    base = [*args_for(set_file), "--dask", cluster.scheduler_address]
    assert cli.main([*base, "--shards", "0", "-o", str(tmp_path / "a.json")]) == 2
    assert "--shards" in capsys.readouterr().err
    assert cli.main([*base, "--shard", "1/2", "-o", str(tmp_path / "b.json")]) == 2
    assert "--shard" in capsys.readouterr().err
    assert cli.main([*base, "--machine-class", "no-such", "-o", str(tmp_path / "c.json")]) == 2
    assert "no worker of class 'no-such'" in capsys.readouterr().err


def test_resume_times_only_the_missing_benchmarks(setup, tmp_path, capsys):
    import pyperf

    set_file, cluster, _ = setup
    out = tmp_path / "partial.json"
    base = [*args_for(set_file), "--dask", cluster.scheduler_address]
    assert cli.main([*base, "--shards", "2", "-o", str(out)]) == 0
    suite = results.load_suite(out)
    names = suite.get_benchmark_names()
    kept = {b.get_name(): b.get_values() for b in suite.get_benchmarks()[1:]}
    pyperf.BenchmarkSuite(suite.get_benchmarks()[1:]).dump(str(out), replace=True)
    assert cli.main([*base, "--resume", str(out)]) == 0  # the shard count from the file
    again = results.load_suite(out)
    assert sorted(again.get_benchmark_names()) == sorted(names)
    for b in again.get_benchmarks():  # the others were not timed again
        if b.get_name() in kept:
            assert b.get_values() == kept[b.get_name()]
    capsys.readouterr()
    assert cli.main([*base, "--resume", str(out), "--shards", "3"]) == 2  # another cut
    assert "resume it with --shards 2" in capsys.readouterr().err
