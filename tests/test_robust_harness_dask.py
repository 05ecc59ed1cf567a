"""A Dask sweep whose worker process is killed and restarted at a new address finishes
(issue 29, item 2): shards ask for the `machine` resource, not for the addresses seen at
submit. Skipped when Dask is not installed; bounded in time, so it can never hang."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import distributed, results

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["conv2d/direct/net:l1", "conv2d/direct/net:l2"]


def stand_in_shard(shard, threads, machine_class):
    """The Dask task of a shard without timing anything: it says it started (a file in
    the folder named by its run options) and waits for `go`, then returns one benchmark."""
    import pyperf

    folder = Path(shard.run_args[0])
    (folder / f"started-{shard.index}-{os.getpid()}").touch()
    while not (folder / "go").exists():
        time.sleep(0.05)
    name = NAMES[shard.index - 1]
    bench = pyperf.Benchmark([pyperf.Run([1e-3], collect_metadata=False, metadata=dict(
        name=name, machine_class=machine_class))])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "part.json"
        pyperf.BenchmarkSuite([bench]).dump(str(path))
        text = path.read_text()
    return dict(shard=shard.label, results=text, skips=[], exit_code=0, log="",
                machine=distributed.fingerprint())


def plan_of(shard):
    names = NAMES if shard is None else [NAMES[shard[0] - 1]]
    return SimpleNamespace(jobs=[SimpleNamespace(name=n) for n in names], skips=[])


def start_worker(address: str) -> subprocess.Popen:
    """A worker process of its own (no nanny: killing it loses it), at a new port."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]), DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED="False")
    return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                             "--nthreads", "1", "--resources", f"{distributed.RESOURCE}=1",
                             "--no-nanny", "--no-dashboard"], cwd=str(ROOT), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def test_a_shard_of_a_killed_worker_runs_on_a_worker_at_a_new_address(tmp_path):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=0, processes=True, protocol="tcp", dashboard_address=None)
    client = Client(cluster)
    workers = [start_worker(cluster.scheduler_address)]
    out = tmp_path / "sweep.json"
    done: list = []
    sweep = threading.Thread(daemon=True, target=lambda: done.append(distributed.run(
        client, [str(tmp_path)], plan_of, out, {}, shards=2, retries=0,
        err=open(os.devnull, "w"), task=stand_in_shard)))
    try:
        client.wait_for_workers(1, timeout=60)
        first = set(client.scheduler_info(n_workers=-1)["workers"])
        sweep.start()
        wait_for(lambda: list(tmp_path.glob("started-*")), 60, "a shard to start")
        workers[0].kill()  # the worker process is lost mid-shard
        workers[0].wait(timeout=30)
        wait_for(lambda: not set(client.scheduler_info(n_workers=-1)["workers"]) & first,
                 60, "the scheduler to lose the worker")
        workers.append(start_worker(cluster.scheduler_address))
        wait_for(lambda: set(client.scheduler_info(n_workers=-1)["workers"]) - first, 60,
                 "the new worker")
        (tmp_path / "go").touch()
        sweep.join(timeout=90)
        assert not sweep.is_alive(), "the sweep waits forever for the lost worker's address"
        (res,) = done
        assert res.exit_code == 0 and res.shards_run == 2 and not res.shards_failed
        assert sorted(results.load_suite(out).get_benchmark_names()) == NAMES
        new = set(client.scheduler_info(n_workers=-1)["workers"]) - first
        assert len(new) == 1  # the new worker, at an address the sweep never saw
    finally:
        (tmp_path / "go").touch()
        for w in workers:
            w.kill()
            w.wait(timeout=30)
        client.close()
        cluster.close()


def test_tasks_ask_for_the_resource_and_at_most_hosts():
    able = ["tcp://10.0.0.5:40123", "tcp://10.0.0.6:40200"]
    assert distributed._restriction(able, able) == {}
    where = distributed._restriction(able[:1], able)  # a cluster of two classes
    assert where == dict(workers=["10.0.0.5"], allow_other_workers=False)
