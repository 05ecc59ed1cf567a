"""Sweeps over memory layouts (`--layouts nchw nhwc`): names, planning, jobs, metadata, verify
and a tiny pyperf run. NCHW benchmarks keep the names they had before layouts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

import harness.shapes
import kernels
from harness import calibrate, cli, layouts, plan, results, sweep
from harness.verify import check_cell
from kernels import registry

from .conftest import temporary_algorithm


@dataclass(frozen=True)
class Layer:  # the fields of harness.shapes.Layer the harness reads
    network: str
    name: str
    conv_type: str
    spec: kernels.ConvSpec
    repeat: int = 1


TINY = [
    Layer("tiny", "conv", "conv2d",
          kernels.ConvSpec(n=1, c=4, k=8, size=(6, 6), kernel=(3, 3), padding=1)),
    Layer("tiny", "dw", "depthwise",
          kernels.ConvSpec(n=1, c=4, k=4, size=(6, 6), kernel=(3, 3), padding=1, groups=4)),
]
FAST = ["--debug-single-value"]
CALIBRATION = {"calib_sgemm_gflops_1t": 100.0, "calib_sgemm_gflops": 190.0,
               "calib_bandwidth_gbs": 20.0, "cpu_model": "test cpu"}


@pytest.fixture(autouse=True)
def tiny_set(monkeypatch):
    def load_set(name):
        if name != "tiny":
            raise ValueError(f"shape set: unknown set {name!r}; available sets are tiny")
        return list(TINY)

    monkeypatch.setattr(harness.shapes, "load_set", load_set, raising=False)
    monkeypatch.setattr(calibrate, "calibrate", lambda force=False, quick=False: dict(
        CALIBRATION, cache_path=""))


# --------------------------------------------------------------------------- names
@pytest.mark.parametrize("threads, mode, lay, name", [
    (None, "call", "nchw", "conv2d/direct/tiny:conv"),
    (None, "prepared", "nchw", "conv2d/direct/tiny:conv@prepared"),
    (2, "call", "nchw", "conv2d/direct/tiny:conv@t2"),
    (None, "call", "nhwc", "conv2d/direct/tiny:conv@nhwc"),
    (2, "prepared", "nhwc", "conv2d/direct/tiny:conv@t2@nhwc@prepared"),
])
def test_bench_names_and_their_parts(threads, mode, lay, name):
    assert results.bench_name("conv2d", "direct", TINY[0], threads, mode, lay) == name
    parts = results.parse_name(name)
    assert parts == {"conv_type": "conv2d", "algorithm": "direct", "network": "tiny",
                     "layer": "conv", "threads": threads, "mode": mode, "layout": lay}


def test_a_name_without_a_layout_is_nchw_and_an_unknown_layout_is_refused():
    assert results.parse_name("conv2d/torch/resnet50:res2@t1")["layout"] == "nchw"
    with pytest.raises(ValueError, match="^layout:"):
        results.bench_name("conv2d", "direct", TINY[0], layout="nchw8c")


def test_parse_layouts():
    assert layouts.parse_layouts(None) == ("nchw",)
    assert layouts.parse_layouts(["nchw,nhwc", "nhwc"]) == ("nchw", "nhwc")
    with pytest.raises(ValueError, match="^--layouts: unknown layout 'NHWC'"):
        layouts.parse_layouts(["NHWC"])


# --------------------------------------------------------------------------- planning
def test_plan_over_both_layouts():
    both = plan.plan("tiny", algos=["direct"], threads=["1"], layouts=["nchw", "nhwc"],
                     modes=["call", "prepared"])
    names = [j.name for j in both.jobs]
    assert names == ["conv2d/direct/tiny:conv", "conv2d/direct/tiny:conv@prepared",
                     "conv2d/direct/tiny:conv@nhwc", "conv2d/direct/tiny:conv@nhwc@prepared",
                     "depthwise/direct/tiny:dw", "depthwise/direct/tiny:dw@prepared",
                     "depthwise/direct/tiny:dw@nhwc", "depthwise/direct/tiny:dw@nhwc@prepared"]
    assert [j.layout for j in both.jobs] == ["nchw", "nchw", "nhwc", "nhwc"] * 2
    assert both.layouts == ("nchw", "nhwc")
    # NCHW alone: the names and jobs of a sweep before layouts
    alone = plan.plan("tiny", algos=["direct"], threads=["1"])
    assert alone.layouts == ("nchw",)
    assert [j.name for j in alone.jobs] == ["conv2d/direct/tiny:conv", "depthwise/direct/tiny:dw"]
    with pytest.raises(ValueError, match="^--layouts"):
        plan.plan("tiny", layouts=["nchw", "chwn"])


def test_a_skip_in_a_layout_says_which():
    strided = Layer("tiny", "s2", "conv2d", TINY[0].spec.replace(stride=2))
    p = plan.plan("tiny", algos=["winograd_f2"], threads=["1"], layouts=["nchw", "nhwc"],
                  layers=[strided])
    assert not p.jobs
    assert [e["name"] for e in p.skips] == ["conv2d/winograd_f2/tiny:s2",
                                            "conv2d/winograd_f2/tiny:s2@nhwc"]
    assert "layout" not in p.skips[0] and p.skips[1]["layout"] == "nhwc"
    assert "stride" in p.skips[1]["reason"]
    why = plan.cell_skip_reason("pointwise", "direct", TINY[0].spec, layout="nhwc")
    assert why and why.startswith("the layer does not fit pointwise")


def test_the_job_metadata_and_the_sweep_options_carry_the_layout():
    nhwc = plan.plan("tiny", algos=["direct"], threads=["1"], layouts=["nhwc"])
    nchw = plan.plan("tiny", algos=["direct"], threads=["1"])
    job = nhwc.jobs[0]
    assert json.loads(sweep.job_json(job, {}))["layout"] == "nhwc"
    assert "layout" not in json.loads(sweep.job_json(nchw.jobs[0], {}))  # as before layouts
    check = check_cell(job.conv_type, job.algorithm, job.spec, layout="nhwc")
    assert check["ok"], check
    md = sweep.job_metadata(job, "tiny", check, CALIBRATION, {})
    assert md["layout"] == "nhwc" and "nhwc" in md["tags"]
    assert sweep.job_metadata(nchw.jobs[0], "tiny", check, CALIBRATION, {})["layout"] == "nchw"
    assert sweep.sweep_options(nhwc)["layouts"] == ["nhwc"]
    assert "layouts" not in sweep.sweep_options(nchw)  # files from before layouts resume


def test_verify_runs_in_the_layout(monkeypatch):
    """A cell whose channels-last form returns NCHW is caught; the layout's inputs and
    reference are used (the NCHW check of the same cell passes)."""
    temporary_algorithm(monkeypatch, "wrong_nhwc", "NCHW output in the NHWC layout")
    registry.cell("conv2d", "wrong_nhwc")(
        lambda spec, x, weights: kernels.run("conv2d", "direct", spec, x, weights))
    registry.native_layout("conv2d", "wrong_nhwc", "nhwc")(
        lambda spec, x, weights: np.ascontiguousarray(np.moveaxis(kernels.run(
            "conv2d", "direct", spec, x, weights, layout="nhwc"), -1, 1)))
    spec = TINY[0].spec
    assert check_cell("conv2d", "wrong_nhwc", spec)["ok"]
    bad = check_cell("conv2d", "wrong_nhwc", spec, layout="nhwc")
    assert not bad["ok"] and "output shape" in bad["error"]
    assert check_cell("conv2d", "direct", spec, layout="nhwc", mode="prepared")["ok"]


def test_the_cli_takes_layouts(capsys):
    assert cli.main(["run", "--set", "tiny", "--algos", "direct", "--layouts", "nchw", "nhwc",
                     "--threads", "1", "--dry-run"]) == 0
    out = capsys.readouterr().out.split()
    assert "conv2d/direct/tiny:conv" in out and "conv2d/direct/tiny:conv@nhwc" in out
    for command in ("verify", "bench", "ab"):
        args = cli.build_parser().parse_args([command, "--layouts", "nhwc"])
        assert args.layouts == ["nhwc"]
    assert cli.build_parser().parse_args(["run"]).layouts is None  # nchw, as before


def test_verify_command_in_both_layouts(capsys):
    assert cli.main(["verify", "--set", "tiny", "--types", "depthwise", "--algos", "direct",
                     "im2col", "--layouts", "nchw", "nhwc"]) == 0
    out = capsys.readouterr().out
    for name in ("depthwise/direct/tiny:dw@nhwc", "depthwise/im2col/tiny:dw@nhwc@prepared",
                 "depthwise/direct/tiny:dw"):
        assert name in out


# --------------------------------------------------------------------------- a sweep
def test_a_tiny_sweep_in_both_layouts(tmp_path):
    out = tmp_path / "layouts.json"
    code = cli.main(["run", "--set", "tiny", "--types", "depthwise", "--algos", "direct",
                     "--layouts", "nchw", "nhwc", "--threads", "1", "-o", str(out), *FAST])
    assert code == 0
    suite = results.load_suite(out)
    got = {b.get_name(): b.get_metadata() for b in suite}
    assert set(got) == {"depthwise/direct/tiny:dw", "depthwise/direct/tiny:dw@nhwc"}
    assert got["depthwise/direct/tiny:dw"]["layout"] == "nchw"
    assert got["depthwise/direct/tiny:dw@nhwc"]["layout"] == "nhwc"
    options = json.loads(got["depthwise/direct/tiny:dw@nhwc"]["sweep_options"])
    assert options["layouts"] == ["nchw", "nhwc"]
