"""The report's first table, ours against the inference engines, on synthetic results
(no engine needed)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.report import engines

PEERS = {"torch", "onnxruntime", "openvino", "litert", "ncnn"}


def bench(conv_type, algorithm, label, median, mode="prepared", layout=None, threads=2,
          marker=True):
    """One benchmark row as harness.report.load gives it; the layout in the metadata
    column, or (marker=True, no metadata) only as the name's `@nhwc`."""
    name = f"{conv_type}/{algorithm}/{label}@t{threads}"
    if layout == "nhwc" and marker:
        name += "@nhwc"
    if mode == "prepared":
        name += "@prepared"
    row = dict(source="r", name=name, conv_type=conv_type, algorithm=algorithm,
               label=label, mode=mode, threads=float(threads), median=median,
               peer=algorithm in PEERS)
    if not marker:
        row["layout"] = layout
    return row


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows)


@pytest.fixture
def results():
    rows = [
        # conv2d, NCHW: ours 1.0 ms (prepared) vs ncnn 0.5 on res3; ours 1 vs torch 2 on res4
        bench("conv2d", "winograd_f4", "resnet50:res3", 1.0e-3),
        bench("conv2d", "direct", "resnet50:res3", 3.0e-3, mode="call"),
        bench("conv2d", "ncnn", "resnet50:res3", 0.5e-3),
        bench("conv2d", "torch", "resnet50:res3", 0.8e-3, mode="call"),
        bench("conv2d", "torch", "resnet50:res3", 0.6e-3),
        bench("conv2d", "winograd_f4", "resnet50:res4", 1.0e-3),
        bench("conv2d", "torch", "resnet50:res4", 2.0e-3),
        # depthwise, NCHW: litert faster on both layers
        bench("depthwise", "direct", "mobilenet:dw1", 4.0e-5, mode="call"),
        bench("depthwise", "litert", "mobilenet:dw1", 1.0e-5),
        bench("depthwise", "direct", "mobilenet:dw2", 9.0e-5, mode="call"),
        bench("depthwise", "litert", "mobilenet:dw2", 3.0e-5),
        # depthwise, NHWC (layout only in the name): ours faster
        bench("depthwise", "direct", "mobilenet:dw1", 1.0e-5, layout="nhwc"),
        bench("depthwise", "litert", "mobilenet:dw1", 2.0e-5, layout="nhwc"),
        # a layer no peer ran, and a thread count below the largest: both left out
        bench("conv2d", "direct", "vgg:conv1", 1.0),
        bench("conv2d", "direct", "resnet50:res4", 1.0e-6, threads=1),
        bench("conv2d", "torch", "resnet50:res4", 1.0e-6, threads=1),
    ]
    return frame(rows)


def test_per_layer_takes_the_best_of_ours_in_any_mode_and_each_peers_best_mode(results):
    per = engines.per_layer(results)
    assert len(per) == 5  # vgg:conv1 had no peer
    res3 = per[(per["label"] == "resnet50:res3")].iloc[0]
    assert res3["ours"] == "winograd_f4 (prepared)" and res3["ours_s"] == 1.0e-3
    assert res3["peer"] == "ncnn (prepared)" and res3["ratio"] == pytest.approx(0.5)
    assert res3["s:torch"] == 0.6e-3  # torch's faster mode
    assert math.isnan(res3["s:litert"])
    res4 = per[(per["label"] == "resnet50:res4")].iloc[0]
    assert res4["ratio"] == pytest.approx(2.0)  # the 1-thread rows are not the main count


def test_summary_per_type_and_layout_names_both_with_the_geomean(results):
    table = engines.engines_table(results)
    got = {(r.conv_type, r.layout): r for r in table.itertuples()}
    conv = got["conv2d", "nchw"]
    assert conv.layers == 2 and conv.ratio == pytest.approx(1.0)  # sqrt(0.5 * 2)
    assert conv.ours == "winograd_f4 (prepared), 2 of 2"
    assert conv.ours_faster == "1 of 2"
    dw = got["depthwise", "nchw"]
    assert dw.peer == "litert (prepared), 2 of 2"
    assert dw.ratio == pytest.approx(math.sqrt(0.25 * (1 / 3)))
    assert dw.ours_faster == "0 of 2"
    nhwc = got["depthwise", "nhwc"]
    assert nhwc.layers == 1 and nhwc.ratio == pytest.approx(2.0)
    assert nhwc.ours == "direct (prepared)"
    # NCHW rows first, types in the catalogue's order, then all types pooled
    assert list(zip(table["conv_type"], table["layout"])) == [
        ("conv2d", "nchw"), ("depthwise", "nchw"), ("all types", "nchw"),
        ("depthwise", "nhwc")]
    pooled = got["all types", "nchw"]
    assert pooled.layers == 4 and pooled.ours_faster == "1 of 4"


def test_layout_metadata_wins_over_the_name_and_absent_is_nchw():
    rows = frame([bench("pointwise", "direct", "m:pw", 1.0, layout="nhwc", marker=False),
                  bench("pointwise", "litert", "m:pw", 2.0, layout=None, marker=False),
                  bench("pointwise", "ncnn", "m:pw", 3.0, layout="", marker=False)])
    assert engines.layouts(rows).tolist() == ["nhwc", "nchw", "nchw"]
    named = frame([bench("pointwise", "direct", "m:pw", 1.0, layout="nhwc")])
    assert engines.layouts(named).tolist() == ["nhwc"]
    # ours in NHWC and the peers in NCHW are different contracts: no layer to compare
    assert engines.per_layer(rows).empty


def test_no_peer_or_no_ours_gives_no_table():
    only_ours = frame([bench("conv2d", "direct", "a:b", 1.0)])
    only_peer = frame([bench("conv2d", "torch", "a:b", 1.0)])
    for df in (only_ours, only_peer, pd.DataFrame()):
        assert engines.engines_table(df).empty
        assert engines.engines_html(df) == ""
    assert "no layer" in engines.engines_text(only_ours)


def test_html_escapes_every_string(results):
    rows = pd.concat([results, frame([
        bench("conv2d", "direct", "<b>net</b>:x&y", 1.0),
        bench("conv2d", "torch", "<b>net</b>:x&y", 2.0)])], ignore_index=True)
    page = engines.engines_html(rows)
    assert "<b>net</b>" not in page and "&lt;b&gt;net&lt;/b&gt;:x&amp;y" in page
    assert page.count("<table") == 2 and "2.00x ▲" in page


def test_text_has_the_summary_and_every_peer_column(results):
    text = engines.engines_text(results)
    assert "fastest peer (most layers)" in text and "litert (prepared), 2 of 2" in text
    per_layer = text.split("per layer")[1]
    for peer in ("torch", "ncnn", "litert"):
        assert peer in per_layer.splitlines()[1]


def test_the_report_summary_opens_with_the_engines_table(results, monkeypatch):
    from harness.report import html as report_html
    from harness.report.load import Results, derive

    df = results.assign(network=results["label"].str.split(":").str[0],
                        layer=results["label"].str.split(":").str[1], spec="",
                        multiplications=1e6, direct_multiplications=1e6,
                        calib_sgemm_gflops_1t=float("nan"), calib_sgemm_gflops=float("nan"),
                        q1=results["median"], q3=results["median"], mad=0.0)
    res = Results(paths=[], frame=derive(df.drop(columns=["peer", "label"])),
                  skips=pd.DataFrame())
    section = report_html.summary_section(res)
    assert section is not None
    first_table = section.body.index("<table")
    assert section.body[first_table:].startswith(
        '<table class="data"><caption>best of ours vs the fastest peer')
    assert "winograd_f4 (prepared), 2 of 2" in section.body


# ------------------------------------------------- python -m harness.checks.engines
def write_results(path, rows) -> None:
    """A pyperf suite of the rows' benchmarks with convbench metadata."""
    import pyperf

    benches = []
    for r in rows:
        md = dict(name=r["name"], conv_type=r["conv_type"], algorithm=r["algorithm"],
                  network=r["label"].split(":")[0], layer=r["label"].split(":")[1],
                  mode=r["mode"], threads=int(r["threads"]), loops=1)
        if r.get("layout"):
            md["layout"] = r["layout"]
        run = pyperf.Run([r["median"]] * 3, warmups=[(1, r["median"])], metadata=md,
                         collect_metadata=False)
        benches.append(pyperf.Benchmark([run]))
    pyperf.BenchmarkSuite(benches).dump(str(path))


def test_the_check_prints_the_table_from_a_results_file(results, tmp_path, capsys):
    from harness.checks import engines as check

    path = tmp_path / "r.json"
    write_results(path, results.to_dict("records"))
    check.main([str(path)])
    out = capsys.readouterr().out
    assert "machine class" in out
    assert "ncnn (prepared)" in out and "litert (prepared), 2 of 2" in out
    assert "0.50x ▼" in out  # res3: ncnn 0.5 ms against ours 1.0 ms


def test_the_check_refuses_a_missing_file(tmp_path):
    from harness.checks import engines as check

    with pytest.raises(SystemExit):
        check.main([str(tmp_path / "none.json")])


def test_without_a_file_the_check_sweeps_deploy_with_every_installed_engine(monkeypatch,
                                                                           tmp_path):
    from harness.checks import engines as check

    monkeypatch.setattr(check, "peer_missing",
                        lambda p: "not installed (pip install x)" if p == "openvino" else None)
    cmd = check.sweep_command(tmp_path / "o.json", ["--threads", "2"])
    text = " ".join(cmd)
    assert "run --set deploy --layouts nchw nhwc --modes call prepared" in text
    peers = cmd[cmd.index("--peers") + 1:cmd.index("-o")]
    assert peers == [p for p in check.PEERS if p not in ("scipy", "openvino")]
    assert cmd[-2:] == ["--threads", "2"]
