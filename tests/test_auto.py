"""auto: the choice from a tuning table, the fallback rule, `convbench tune --from`, and the
report's whole-network totals."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kernels
from harness import cli
from harness.report import fmt, networks
from kernels import auto
from kernels.auto import table as tuning

from .strategies import cell_specs

CONV = kernels.ConvSpec(n=1, c=16, k=16, size=(8, 8), kernel=3, padding=1)


@pytest.fixture(autouse=True)
def fresh_choice(monkeypatch, tmp_path):
    """Each test starts from the default lookup (no CONVBENCH_TUNING) and leaves it so; auto
    uses what is known without timing (CONVBENCH_AUTO=wisdom), from an empty wisdom."""
    monkeypatch.delenv(auto.ENV_VAR, raising=False)
    monkeypatch.setenv(auto.POLICY_ENV, "wisdom")
    monkeypatch.setenv("CONVBENCH_CACHE_DIR", str(tmp_path / "cache"))
    auto.use_default_table()
    auto.forget()
    yield
    auto.use_default_table()
    auto.forget()


def table_choosing(algorithm: str, spec=CONV, conv_type="conv2d") -> tuning.Table:
    """A table where `algorithm` beat direct on `spec`."""
    return auto.build([(conv_type, spec, 2, algorithm, 1e-4), (conv_type, spec, 2, "direct", 2e-4),
                       (conv_type, spec, 1, "direct", 1e-5)],  # fewer threads: not used
                      machine_class="test-class", source="test")


def test_auto_is_declared_last_with_the_loosest_bound():
    assert kernels.ALGORITHMS[-1] == "auto"
    bound = kernels.registry.algorithm_bound("auto")
    for a in auto.CANDIDATES:
        b = kernels.registry.algorithm_bound(a)
        assert bound.scale >= b.scale and bound.floor >= b.floor


def test_auto_picks_from_the_table():
    auto.set_table(table_choosing("separable"))  # the rule would say winograd_f4
    assert auto.explain("conv2d", CONV) == auto.Choice("separable", "table")
    # an unseen problem of the same family borrows its nearest entry's choice
    bigger = CONV.replace(c=32, k=32, size=(10, 10))
    choice = auto.explain("conv2d", bigger)
    assert choice.algorithm == "separable" and choice.how.startswith("table: nearest")
    # another family (stride 2) is not in the table: the rule
    assert auto.explain("conv2d", CONV.replace(stride=2)) == auto.Choice("direct", "rule")
    # and the cell runs what it chose
    x, w = kernels.make_inputs("conv2d", CONV, seed=0)
    np.testing.assert_array_equal(kernels.run("conv2d", "auto", CONV, x, w),
                                  kernels.run("conv2d", "separable", CONV, x, w))
    assert kernels.multiplications("conv2d", "auto", CONV) == \
        kernels.multiplications("conv2d", "separable", CONV)
    # the memory guard judges auto by what it runs
    assert kernels.memory_estimate("conv2d", "auto", CONV.replace(n=2)) == \
        kernels.memory_estimate("conv2d", "separable", CONV.replace(n=2))


def test_table_file_round_trip_and_environment(tmp_path, monkeypatch):
    path = auto.save(table_choosing("im2col"), tmp_path / "t.json")
    assert auto.load(path).to_json() == table_choosing("im2col").to_json()
    entry = json.loads(path.read_text())["entries"][0]
    assert entry["threads"] == 2 and entry["seconds"] == {"im2col": 1e-4, "direct": 2e-4}
    monkeypatch.setenv(auto.ENV_VAR, str(path))
    auto.use_default_table()
    assert auto.choose("conv2d", CONV) == "im2col"
    monkeypatch.setenv(auto.ENV_VAR, str(tmp_path / "missing.json"))
    auto.use_default_table()
    with pytest.raises(ValueError, match=auto.ENV_VAR):
        auto.choose("conv2d", CONV)


def test_bad_table_names_the_field():
    with pytest.raises(ValueError, match="format"):
        tuning.from_json({"entries": []})
    with pytest.raises(ValueError, match=r"entries\[0\]"):
        tuning.from_json({"format": tuning.FORMAT, "version": 1, "entries": [{"problem": 1}]})


def test_falls_back_to_the_rule_without_a_table(tmp_path, monkeypatch):
    monkeypatch.setattr(auto, "REPO_ROOT", tmp_path)  # no results/tuning/<class>.json there
    assert auto.current_table() is None
    dw = kernels.ConvSpec(n=1, c=32, k=32, size=(8, 8), kernel=3, padding=1, groups=32)
    cases = [
        ("pointwise", kernels.ConvSpec(n=1, c=32, k=64, size=(8, 8), kernel=1), "direct"),
        ("shuffled_grouped", kernels.ConvSpec(n=1, c=24, k=24, size=(8, 8), kernel=1, groups=3),
         "im2col"),
        ("dilated2d", CONV.replace(dilation=2, padding=2), "direct"),
        ("conv3d", kernels.ConvSpec(n=1, c=3, k=8, size=(4, 8, 8), kernel=3, padding=1),
         "winograd_f4"),                                        # 3-D: from 3 channels
        ("depthwise_separable", CONV, "direct"),
        ("flattened", CONV, "separable"),
        ("transposed2d", kernels.ConvSpec(n=1, c=64, k=32, size=(16, 16), kernel=2, stride=2,
                                          transposed=True), "direct"),   # kernel == stride
        ("transposed2d", kernels.ConvSpec(n=1, c=64, k=32, size=(16, 16), kernel=5, stride=2,
                                          padding=2, output_padding=1, transposed=True),
         "im2col"),
        ("conv2d", CONV.replace(size=(32, 32)), "winograd_f4"),
        ("conv2d", CONV, "winograd_f2"),     # 8x8 at N=1: 4 tiles of 4x4, too few for F4
        ("conv2d", CONV.replace(c=8, k=8), "direct"),             # too few channels
        ("conv2d", CONV.replace(stride=2), "direct"),
        ("conv2d", kernels.ConvSpec(n=1, c=64, k=64, size=(12, 12), kernel=7, padding=3),
         "fft"),
        ("depthwise", dw, "direct"),
    ]
    for conv_type, spec, expected in cases:
        assert auto.explain(conv_type, spec) == auto.Choice(expected, "rule"), (conv_type, spec)


@pytest.mark.small_layers
def test_the_rule_runs_tiny_layers_direct(tmp_path, monkeypatch):
    """Tiny layers go to direct's serial loop, whatever the rule says for their shape."""
    monkeypatch.setattr(auto, "REPO_ROOT", tmp_path)
    tiny_shuffled = kernels.ConvSpec(n=1, c=24, k=24, size=(8, 8), kernel=1, groups=3)
    seed_3d = kernels.ConvSpec(n=1, c=1, k=1, size=(5, 5, 5), kernel=3)  # else winograd_f4
    for conv_type, spec in (("shuffled_grouped", tiny_shuffled), ("conv3d", seed_3d)):
        assert auto.explain(conv_type, spec) == auto.Choice("direct", "rule"), conv_type


@pytest.mark.parametrize("conv_type", kernels.CONV_TYPES)
@given(data=st.data())
def test_the_choice_always_supports_the_spec(conv_type, data):
    spec = data.draw(cell_specs(conv_type))
    for table in (None, table_choosing("fft", spec, conv_type)):
        auto.set_table(table)
        chosen = auto.choose(conv_type, spec)
        assert chosen in auto.CANDIDATES
        assert kernels.supports(conv_type, chosen, spec) is None


def frame(rows) -> pd.DataFrame:
    """A results table as harness.report.load makes it: (layer, repeat, algorithm, median)."""
    return pd.DataFrame([dict(network="net", mode="call", threads=2.0, conv_type="conv2d",
                              layer=layer, layer_repeat=repeat, algorithm=algorithm,
                              median=median) for layer, repeat, algorithm, median in rows])


def test_network_totals_add_layer_times_times_repeats():
    df = frame([("a", 3, "direct", 2.0), ("b", 1, "direct", 5.0),
                ("a", 3, "winograd_f4", 1.0),                      # not run on b
                ("a", 3, "auto", 1.5), ("b", 1, "auto", 4.0),
                ("a", 3, "torch", 0.5), ("b", 1, "torch", 1.0),
                ("b", 1, "im2col", 3.0), ("a", 3, "im2col", math.nan)])  # no values: not run
    t = networks.network_totals(df, counted=lambda network: None).set_index("algorithm")
    assert t.loc["direct", "total_s"] == 3 * 2.0 + 5.0 and t.loc["direct", "complete"]
    assert t.loc["auto", "total_s"] == 3 * 1.5 + 4.0
    assert t.loc["torch", "total_s"] == 3 * 0.5 + 1.0 and t.loc["torch", "kind"] == "peer"
    assert t.loc["winograd_f4", "total_s"] == 3.0
    assert not t.loc["winograd_f4", "complete"] and t.loc["winograd_f4", "layers"] == 1
    # best of ours: per layer the fastest of ours (auto and peers left out)
    assert t.loc["best of ours", "total_s"] == 3 * 1.0 + 3.0
    assert t.loc["im2col", "total_s"] == 3.0 and not t.loc["im2col", "complete"]
    assert list(t.index[:2]) == ["auto", "best of ours"]
    wide = networks.totals_table(networks.network_totals(df, counted=lambda n: None))
    assert wide.loc[0, "winograd_f4"].endswith("(1/2 layers)")
    assert wide.loc[0, "direct"] == fmt.seconds(11.0) and wide.loc[0, "layers"] == 2
    # a layer outside the network's total (a view) is left out
    only_a = networks.network_totals(df, counted=lambda n: {("conv2d", "a")})
    assert only_a.set_index("algorithm").loc["direct", "total_s"] == 6.0
    # a layer of the network that the results lack makes every total partial
    more = networks.network_totals(df, counted=lambda n: {("conv2d", "a"), ("conv2d", "b"),
                                                          ("conv2d", "c")})
    assert not more["complete"].any() and set(more["of_layers"]) == {3}
    assert networks.totals_figure(networks.network_totals(df, counted=lambda n: None))


def test_missing_repeat_counts_once():
    df = frame([("a", math.nan, "direct", 2.0), ("b", 2, "direct", 1.0)])
    t = networks.network_totals(df, counted=lambda n: None)
    assert t.set_index("algorithm").loc["direct", "total_s"] == 2.0 + 2 * 1.0


def test_tune_from_a_sweep(tmp_path, monkeypatch, capsys):
    from harness import calibrate

    monkeypatch.setattr(calibrate, "calibrate", lambda force=False, quick=False: dict(
        calib_sgemm_gflops_1t=100.0, calib_sgemm_gflops=190.0, calib_bandwidth_gbs=20.0,
        cpu_model="test cpu", cache_path=""))
    shapes = tmp_path / "tiny.txt"
    shapes.write_text('conv2d mb1ic4ih6oc8oh6kh3ph1n"tiny:conv*2"\n'
                      'pointwise mb1ic4ih6oc8oh6kh1n"tiny:pw"\n', encoding="utf-8")
    sweep = tmp_path / "sweep.json"
    assert cli.main(["run", "--set", str(shapes), "--algos", "direct", "im2col", "auto",
                     "--threads", "1", "--debug-single-value", "-o", str(sweep)]) == 0
    out = tmp_path / "tuning.json"
    assert cli.main(["tune", "--from", str(sweep), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    table = auto.load(out)
    assert {k[0] for k in table.entries} == {"conv2d", "pointwise"}
    for entry in table.entries.values():
        assert entry.algorithm == entry.seconds[0][0]               # the fastest
        assert {a for a, _ in entry.seconds} == {"direct", "im2col"}  # auto is left out
        assert entry.threads == 1
        assert entry.algorithm in printed
    from harness.machine import machine_class_of

    assert table.machine_class == machine_class_of(sweep)
    # the report's totals read the sweep's repeat counts
    from harness.report.load import load_results

    totals = networks.network_totals(load_results(sweep).frame, counted=lambda n: None)
    res = load_results(sweep).frame
    direct = res[res["algorithm"] == "direct"].set_index("layer")["median"]
    got = totals.set_index("algorithm").loc["direct", "total_s"]
    assert got == pytest.approx(2 * direct["conv"] + direct["pw"])


def test_report_section_shows_the_totals():
    from harness.report import html
    from harness.report.load import Results

    df = frame([("a", 3, "direct", 2e-3), ("b", 1, "direct", 5e-3), ("a", 3, "auto", 1e-3)])
    section = html.networks_section(Results(paths=[], frame=df, skips=pd.DataFrame()))
    assert section.title == "Whole networks"
    assert fmt.seconds(11e-3) in section.body and "(1/2 layers)" in section.body
    assert "<img" in section.body


def test_tune_times_a_set_in_process():
    from harness import tune
    from harness.shapes import Layer

    layers = [Layer("tiny", "conv", "conv2d", CONV), Layer("tiny", "pw", "pointwise",
              kernels.ConvSpec(n=1, c=8, k=8, size=(6, 6), kernel=1))]
    table = tune.measured_table(layers, threads=1, repeats=1, err=None)
    assert set(table.entries) == {("conv2d", tuning.problem_of(CONV)),
                                  ("pointwise", tuning.problem_of(layers[1].spec))}
    entry = table.exact("conv2d", CONV)
    ran = {a for a, _ in entry.seconds}
    assert ran == {a for a in auto.CANDIDATES if kernels.supports("conv2d", a, CONV) is None}
    assert entry.algorithm == min(entry.seconds, key=lambda kv: kv[1])[0]
    assert "conv2d" in tune.format_table(table)


def test_the_rule_reads_channels_per_group_and_tiles(tmp_path, monkeypatch):
    """The rule's two structural refinements: grouped layers need 64 channels per group for
    Winograd; F(4x4,3x3) needs two register blocks of 4x4 tiles, else F(2x2,3x3)."""
    monkeypatch.setattr(auto, "REPO_ROOT", tmp_path)
    resnext = kernels.ConvSpec.parse("g32mb1ic512ih14oc512oh14kh3ph1")   # 16 per group
    assert auto.explain("grouped", resnext) == auto.Choice("direct", "rule")
    assert auto.explain("grouped", resnext.replace(groups=8)).algorithm == "winograd_f4"
    res5 = kernels.ConvSpec(n=1, c=512, k=512, size=(7, 7), kernel=3, padding=1)
    assert auto.explain("conv2d", res5) == auto.Choice("winograd_f2", "rule")  # 4 tiles
    assert auto.explain("conv2d", res5.replace(n=4)).algorithm == "winograd_f4"  # 16 tiles
    assert auto.explain("conv2d", res5.replace(size=(14, 14))).algorithm == "winograd_f4"
    # ungrouped layers keep the 16-channel threshold
    assert auto.explain("conv2d", res5.replace(c=16, k=16, size=(56, 56))).algorithm == \
        "winograd_f4"


def test_the_memory_guard_judges_auto_by_its_choice_in_each_mode():
    """A plan of auto holds what a plan of the chosen algorithm holds, a call what a call
    holds (kernels.memory's plan mode)."""
    import numba

    from kernels.auto import wisdom

    spec = CONV.replace(size=(32, 32), c=64, k=64)
    threads = numba.get_num_threads()
    wisdom.merge(auto.wisdom_path(), [
        wisdom.entry(wisdom.Key.of("conv2d", spec, threads, "call"), {"direct": 1e-4}, 0.1),
        wisdom.entry(wisdom.Key.of("conv2d", spec, threads, "prepared"), {"fft": 1e-4}, 0.1)])
    for mode, chosen in (("call", "direct"), ("plan", "fft")):
        assert auto.known("conv2d", spec, "prepared" if mode == "plan" else "call") == \
            auto.Choice(chosen, "wisdom")
        assert kernels.memory_estimate("conv2d", "auto", spec, mode=mode) == \
            kernels.memory_estimate("conv2d", chosen, spec, mode=mode)
