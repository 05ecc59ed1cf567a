"""Timing modes in the sweep: plans, names, the worker's job contract, metadata, skips
and the report, on the stand-in set of test_harness (real pyperf workers)."""

from __future__ import annotations

import json

import pytest

from harness import cli, peers, plan, results, sweep
from harness.modes import parse_modes
from tests.test_harness import FAST, names_in, tiny_set  # noqa: F401  (autouse fixture)


def test_parse_modes():
    assert parse_modes(None) == ("call",)
    assert parse_modes(["call,prepared", "call"]) == ("call", "prepared")
    with pytest.raises(ValueError, match="--modes: unknown mode 'eager'"):
        parse_modes(["eager"])


def test_call_only_plan_is_the_plan_from_before_modes():
    """The default plan: call mode only, names without a mode marker, no `mode` in the
    worker's job JSON (an older worker, the A/B reference, reads the same job)."""
    p = plan.plan("tiny", algos=["direct"], threads=["1"])
    assert p.modes == ("call",)
    assert [j.name for j in p.jobs] == ["conv2d/direct/tiny:conv", "depthwise/direct/tiny:dw",
                                        "conv2d/direct/tiny:single"]
    job = json.loads(sweep.job_json(p.jobs[0], {"a": 1}))
    assert "mode" not in job and job["name"] == "conv2d/direct/tiny:conv"
    assert "modes" not in sweep.sweep_options(p)  # resumes files from before modes


def test_both_modes_plan_names_and_skips():
    p = plan.plan("tiny", algos=["direct"], peers=["scipy", "onnxruntime"], threads=["1", "2"],
                  modes=["call,prepared"])
    names = [j.name for j in p.jobs]
    assert names[:4] == ["conv2d/direct/tiny:conv@t1", "conv2d/direct/tiny:conv@t2",
                         "conv2d/direct/tiny:conv@t1@prepared",
                         "conv2d/direct/tiny:conv@t2@prepared"]
    for j in p.jobs:
        assert results.parse_name(j.name)["mode"] == j.mode
        assert results.parse_name(j.name)["threads"] == j.threads
    skipped = {e["name"]: e for e in p.skips}
    assert "no prepared form" in skipped["conv2d/scipy/tiny:single@prepared"]["reason"]
    assert skipped["conv2d/scipy/tiny:single@prepared"]["mode"] == "prepared"
    ort = skipped["conv2d/onnxruntime/tiny:conv"]
    assert "mode" not in ort  # a call-mode entry, as before modes
    assert "no call mode" in ort["reason"] or "not installed" in ort["reason"]
    prepared_job = next(j for j in p.jobs if j.mode == "prepared")
    assert json.loads(sweep.job_json(prepared_job, {}))["mode"] == "prepared"
    assert sweep.sweep_options(p)["modes"] == ["call", "prepared"]


def test_worker_prepares_the_callable_of_the_job_mode(monkeypatch):
    from harness import worker

    monkeypatch.setattr(worker, "set_thread_counts", lambda n: None)  # keep this process's
    p = plan.plan("tiny", types=["conv2d"], algos=["direct"], threads=["1"],
                  modes=["call,prepared"])
    outs = []
    for j in p.jobs[:2]:
        job = json.loads(sweep.job_json(j, {}))
        fn, extra = worker.prepare(job)
        outs.append(fn())
        assert extra["worker_first_call_s"] >= 0
    assert (outs[0] == outs[1]).all()  # the plan computes what the call computes


def test_sweep_in_both_modes_and_the_report_shows_them(tmp_path, capsys):
    with_peer = peers.peer_missing("onnxruntime") is None
    out = tmp_path / "modes.json"
    args = ["run", "--set", "tiny", "--types", "depthwise", "--algos", "direct",
            "--modes", "call,prepared", "--threads", "1", "-o", str(out), *FAST]
    if with_peer:
        args[args.index("--modes"):args.index("--modes")] = ["--peers", "onnxruntime"]
    assert cli.main(args) == 0
    expected = ["depthwise/direct/tiny:dw", "depthwise/direct/tiny:dw@prepared"]
    if with_peer:
        expected.append("depthwise/onnxruntime/tiny:dw@prepared")
    assert names_in(out) == expected
    import pyperf

    for bench in pyperf.BenchmarkSuite.load(str(out)):
        md = bench.get_metadata()
        assert md["mode"] == results.parse_name(bench.get_name())["mode"]
        assert md["mode"] in md["tags"]
        assert json.loads(md["sweep_options"])["modes"] == ["call", "prepared"]
    from harness.report import build_report, load_results

    res = load_results(out)
    assert sorted(res.frame["mode"]) == sorted(
        ["call", "prepared"] + (["prepared"] if with_peer else []))
    html = build_report(out, tmp_path / "modes.html").read_text()
    assert "[prepared]" in html and "[call]" in html  # the type grid's rows, per mode
    assert "timing modes" in html
    if with_peer:
        assert "fastest of ours vs fastest peer" in html
        assert "no call mode" in html  # the engine's skip reason, in the type grid


def test_old_results_without_modes_are_call(tmp_path):
    """A file from before modes (no `mode` metadata, no marker, no sidecar mode)."""
    import pyperf

    from harness.report import load_results
    from harness.report.load import load_skips

    run = pyperf.Run([1e-3, 1.1e-3], metadata=dict(
        name="conv2d/direct/net:c1", conv_type="conv2d", algorithm="direct",
        spec="mb1ic4ih8oc4oh8kh3ph1", network="net", layer="c1", threads=1),
        collect_metadata=False)
    path = tmp_path / "old.json"
    pyperf.BenchmarkSuite([pyperf.Benchmark([run])]).dump(str(path))
    (tmp_path / "old.skips.json").write_text(json.dumps([dict(
        name="conv2d/im2col/net:c1", conv_type="conv2d", algorithm="im2col", network="net",
        layer="c1", spec="", reason="x")]))
    assert list(load_results(path).frame["mode"]) == ["call"]
    assert list(load_skips(path)["mode"]) == ["call"]
