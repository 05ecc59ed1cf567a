"""The regression gate on synthetic pyperf suites, and the test-only slowdown switch."""

from __future__ import annotations

import json
import time

import numpy as np
import pyperf
import pytest

from harness import compare, machine, slowdown, stats

CALIB = {"calib_sgemm_gflops_1t": 95.0, "calib_sgemm_gflops": 190.0,
         "calib_bandwidth_gbs": 22.0, "cpu_model": "Test CPU 9000"}

CELLS = [  # (type, algorithm, network:layer, median seconds)
    ("conv2d", "direct", "ci:c1", 2.0e-3),
    ("pointwise", "direct", "ci:p1", 5.0e-4),
    ("depthwise", "direct", "ci:d1", 3.0e-4),
    ("conv3d", "direct", "ci:v1", 4.0e-3),
]


def make_suite(path, cells=CELLS, scale=None, calib_scale=1.0, seed=0, processes=6,
               values=3, noise=0.01, calib=True, threads=2):
    """A pyperf suite like `convbench run` writes: several worker runs per benchmark.

    `scale` maps a benchmark name to a slowdown factor; `calib_scale` makes the
    machine's calibrated rates that many times slower.
    """
    rng = np.random.default_rng(seed)
    scale = scale or {}
    benches = []
    for conv_type, algo, netlayer, median in cells:
        name = f"{conv_type}/{algo}/{netlayer}"
        network, layer = netlayer.split(":")
        meta = {"name": name, "conv_type": conv_type, "algorithm": algo,
                "network": network, "layer": layer, "threads": threads,
                "spec": "mb1ic8ih8oc8oh8kh3ph1", "multiplications": 1000}
        if calib:
            meta.update({k: (v / calib_scale if k.startswith("calib") else v)
                         for k, v in CALIB.items()})
        runs = []
        for _ in range(processes):
            vals = median * scale.get(name, 1.0) * calib_scale * (
                1.0 + noise * rng.standard_normal(values))
            runs.append(pyperf.Run(list(np.abs(vals)), metadata=meta,
                                   collect_metadata=False))
        benches.append(pyperf.Benchmark(runs))
    suite = pyperf.BenchmarkSuite(benches)
    suite.dump(str(path), replace=True)
    return path


@pytest.fixture
def base(tmp_path):
    return make_suite(tmp_path / "base.json", seed=1)


def test_equal_runs_pass(base, tmp_path):
    new = make_suite(tmp_path / "new.json", seed=2)
    df, verdict = compare.compare_suites(base, new, threshold=1.15, alpha=0.001)
    assert not verdict.failed and verdict.exit_code == 0
    assert set(df["status"]) <= {"same", "slower (below threshold)"}
    assert verdict.geomean == pytest.approx(1.0, abs=0.02)
    assert compare.main([str(base), str(new), "-q"]) == 0


def test_identical_file_passes(base):
    df, verdict = compare.compare_suites(base, base)
    assert not verdict.failed
    assert (df["ratio"] == 1.0).all()


def test_2x_slowdown_fails(base, tmp_path, capsys):
    slow = "pointwise/direct/ci:p1"
    new = make_suite(tmp_path / "new.json", seed=2, scale={slow: 2.0})
    md = tmp_path / "out.md"
    df, verdict = compare.compare_suites(base, new)
    assert verdict.failed and verdict.regressions == [slow]
    assert df.iloc[0]["name"] == slow and df.iloc[0]["status"] == "regression"
    assert df.iloc[0]["ratio"] == pytest.approx(2.0, rel=0.05)
    assert compare.main([str(base), str(new), "--markdown", str(md)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and f"`{slow}`" in out
    text = md.read_text()
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert slow in table[0], "worst first"


def test_threshold_controls_the_gate(base, tmp_path):
    new = make_suite(tmp_path / "new.json", seed=2, scale={"conv2d/direct/ci:c1": 1.3})
    assert compare.main([str(base), str(new), "-q", "--threshold", "1.2"]) == 1
    assert compare.main([str(base), str(new), "-q", "--threshold", "1.5"]) == 0


def test_noise_without_significance_passes(base, tmp_path):
    # a ratio above threshold but drawn from wildly overlapping values is not significant
    new = make_suite(tmp_path / "new.json", seed=2, noise=0.6,
                     scale={"conv2d/direct/ci:c1": 1.2})
    df, verdict = compare.compare_suites(base, new, threshold=1.1, alpha=1e-6)
    assert "conv2d/direct/ci:c1" not in verdict.regressions


def test_uniformly_slower_machine_passes(base, tmp_path):
    new = make_suite(tmp_path / "new.json", seed=2, calib_scale=1.5)
    df, verdict = compare.compare_suites(base, new)
    assert not verdict.failed
    assert df["factor"].dropna().to_numpy() == pytest.approx(1.5)
    assert verdict.geomean == pytest.approx(1.0, abs=0.02)
    assert any("slower than BASE" in n for n in verdict.notes)
    # without normalisation the same runs are (rightly) a 1.5x regression
    _, raw = compare.compare_suites(base, new, normalise="none")
    assert raw.failed and len(raw.regressions) == len(CELLS)


def test_slower_machine_still_catches_a_real_regression(base, tmp_path):
    new = make_suite(tmp_path / "new.json", seed=2, calib_scale=1.5,
                     scale={"depthwise/direct/ci:d1": 2.0})
    _, verdict = compare.compare_suites(base, new)
    assert verdict.regressions == ["depthwise/direct/ci:d1"]


def test_calibration_noise_is_ignored():
    b = dict(CALIB)
    n = {k: (v * 0.97 if k.startswith("calib") else v) for k, v in CALIB.items()}
    assert compare.calibration_factor(b, n, threads=2) == 1.0
    assert compare.calibration_factor(b, {}, threads=2) is None
    slow = {k: (v / 2 if k.startswith("calib") else v) for k, v in CALIB.items()}
    assert compare.calibration_factor(b, slow, threads=1) == pytest.approx(2.0)


def test_missing_calibration_is_noted(tmp_path):
    b = make_suite(tmp_path / "b.json", calib=False, seed=1)
    n = make_suite(tmp_path / "n.json", calib=False, seed=2)
    _, verdict = compare.compare_suites(b, n)
    assert not verdict.failed
    assert any("calibration missing" in note for note in verdict.notes)


def test_peer_normalisation_and_peers_do_not_gate(tmp_path):
    cells = CELLS + [("conv2d", "torch", "ci:c1", 1.0e-3)]
    b = make_suite(tmp_path / "b.json", cells=cells, seed=1, calib=False)
    # the whole machine 1.4x busier, the peer included
    n = make_suite(tmp_path / "n.json", cells=cells, seed=2, calib=False,
                   scale={f"{t}/{a}/{nl}": 1.4 for t, a, nl, _ in cells})
    _, verdict = compare.compare_suites(b, n, normalise="peers")
    assert not verdict.failed
    # a slower peer alone never fails the gate
    n2 = make_suite(tmp_path / "n2.json", cells=cells, seed=2, calib=False,
                    scale={"conv2d/torch/ci:c1": 3.0})
    df, verdict = compare.compare_suites(b, n2)
    assert not verdict.failed
    assert df.set_index("name").loc["conv2d/torch/ci:c1", "status"] == "slower (peer)"


def test_missing_and_new_benchmarks_are_reported(base, tmp_path, capsys):
    cells = CELLS[1:] + [("grouped", "direct", "ci:g1", 1.0e-3)]
    new = make_suite(tmp_path / "new.json", cells=cells, seed=2)
    df, verdict = compare.compare_suites(base, new)
    assert not verdict.failed
    assert verdict.missing == ["conv2d/direct/ci:c1"]
    assert verdict.new == ["grouped/direct/ci:g1"]
    statuses = df.set_index("name")["status"]
    assert statuses["conv2d/direct/ci:c1"] == "missing"
    assert statuses["grouped/direct/ci:g1"] == "new"
    assert list(df["status"][-2:]) == ["missing", "new"]
    assert compare.main([str(base), str(new)]) == 0
    out = capsys.readouterr().out
    assert "missing from NEW" in out and "new in NEW" in out


def test_disjoint_suites_are_an_error(base, tmp_path, capsys):
    new = make_suite(tmp_path / "new.json", cells=[("grouped", "direct", "ci:g1", 1e-3)])
    assert compare.main([str(base), str(new)]) == 2
    assert "share no benchmark" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    ('{"benchmarks": [', "malformed JSON"),
    ("", "malformed JSON"),
    ('{"hello": "world"}', "not a pyperf suite"),
    ("[1, 2, 3]", "not a pyperf suite"),
])
def test_malformed_json_is_a_clear_error(base, tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert compare.main([str(base), str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and "bad.json" in err and "Traceback" not in err
    with pytest.raises(compare.CompareError):
        compare.compare_suites(bad, base)


def test_missing_file_is_a_clear_error(base, tmp_path, capsys):
    assert compare.main([str(base), str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_bad_usage_exits_2(capsys):
    assert compare.main(["only-one.json"]) == 2


def test_few_values_fall_back_to_the_ratio(tmp_path):
    b = make_suite(tmp_path / "b.json", processes=1, values=2, seed=1)
    n = make_suite(tmp_path / "n.json", processes=1, values=2, seed=2,
                   scale={"conv2d/direct/ci:c1": 2.0})
    _, verdict = compare.compare_suites(b, n)
    assert verdict.regressions == ["conv2d/direct/ci:c1"]
    assert any("too few values" in note for note in verdict.notes)
    assert stats.min_p_value(6, 6) == pytest.approx(2 / 924)


def test_machine_class():
    assert machine.machine_class("AMD EPYC 9R14 96-Core Processor", 2, "avx512") == (
        "amd-epyc-9r14-avx512-2c")
    assert machine.machine_class("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", 4,
                                 "avx2") == "intel-xeon-platinum-8375c-avx2-4c"
    assert machine.machine_class("AMD EPYC", 2, "") == "amd-epyc-2c"  # files before the ISA
    name = machine.machine_class()
    assert name and "/" not in name and " " not in name
    from kernels.target import TARGET
    assert f"-{TARGET.isa}-" in name


ZEN3_FLAGS = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush "
              "mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc "
              "rep_good nopl nonstop_tsc cpuid extd_apicid aperfmperf pni pclmulqdq ssse3 fma "
              "cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand "
              "hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a misalignsse 3dnowprefetch "
              "bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt clwb sha_ni "
              "xsaveopt xsavec xgetbv1 clzero xsaveerptr rdpru wbnoinvd arat npt nrip_save "
              "umip pku ospke vaes vpclmulqdq rdpid fsrm")
ZEN4_FLAGS = ZEN3_FLAGS + (" avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl "
                           "avx512_bf16 avx512vbmi avx512_vbmi2 avx512_vnni avx512_bitalg "
                           "avx512_vpopcntdq")


def _cpuinfo(flags, cores=2, model="AMD EPYC"):
    return "\n\n".join(f"processor\t: {i}\nvendor_id\t: AuthenticAMD\nmodel name\t: {model}\n"
                       f"flags\t\t: {flags}" for i in range(cores)) + "\n"


def test_machine_class_from_cpuinfo_tells_the_generations_apart():
    # both generations report the model name "AMD EPYC"; only the flags differ
    assert machine.machine_class_from_cpuinfo(_cpuinfo(ZEN3_FLAGS)) == "amd-epyc-avx2-2c"
    assert machine.machine_class_from_cpuinfo(_cpuinfo(ZEN4_FLAGS)) == "amd-epyc-avx512-2c"
    arm = "processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes pmull sha1\n"
    assert machine.machine_class_from_cpuinfo(arm, cores=4).endswith("-neon-4c")


def _with_class(path, machine_class):
    data = json.loads(path.read_text())
    for bench in data["benchmarks"]:
        for run in bench["runs"]:
            run.setdefault("metadata", {})["machine_class"] = machine_class
    path.write_text(json.dumps(data))
    return path


def test_compare_refuses_to_gate_across_machine_classes(tmp_path, capsys):
    base = _with_class(make_suite(tmp_path / "b.json", seed=1), "amd-epyc-avx512-2c")
    new = _with_class(make_suite(tmp_path / "n.json", seed=2,
                                 scale={"conv2d/direct/ci:c1": 2.0}), "amd-epyc-avx2-2c")
    with pytest.raises(compare.CompareError, match="refusing to gate across classes"):
        compare.compare_suites(base, new)
    assert compare.main([str(base), str(new)]) == 2
    err = capsys.readouterr().err
    assert "amd-epyc-avx512-2c" in err and "amd-epyc-avx2-2c" in err and "vector ISA" in err
    # for information only: the table, and never a failure
    df, verdict = compare.compare_suites(base, new, cross_class=True)
    assert "conv2d/direct/ci:c1" in verdict.regressions and not verdict.failed
    assert any("never gated" in n for n in verdict.notes)
    assert compare.main([str(base), str(new), "--cross-class"]) == 0
    # the same class gates as before
    same = _with_class(make_suite(tmp_path / "s.json", seed=2,
                                  scale={"conv2d/direct/ci:c1": 2.0}), "amd-epyc-avx512-2c")
    assert compare.main([str(base), str(same)]) == 1


def test_markdown_is_valid_table(base, tmp_path):
    new = make_suite(tmp_path / "new.json", seed=2)
    df, verdict = compare.compare_suites(base, new)
    text = compare.to_markdown(df, verdict)
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + len(CELLS)
    assert all(line.count("|") == rows[0].count("|") for line in rows)
    json.dumps(df.to_dict(orient="records"))  # plain values for the HTML report


# ------------------------------------------------------------ slowdown switch

def test_slowdown_parse_and_match():
    env = {slowdown.ENV: "conv2d/direct=1.3, pointwise/*=2"}
    assert slowdown.factor("conv2d", "direct", env) == 1.3
    assert slowdown.factor("pointwise", "im2col", env) == 2.0
    assert slowdown.factor("conv3d", "direct", env) == 1.0
    assert slowdown.factor("conv2d", "direct", {}) == 1.0
    for bad in ("conv2d=1.3", "conv2d/direct=x", "conv2d/direct=0.5"):
        with pytest.raises(ValueError):
            slowdown.parse(bad)


def test_slowdown_wrap_is_identity_when_off():
    def f():
        return 42

    assert slowdown.wrap("conv2d", "direct", f, environ={}) is f


def test_slowdown_wrap_slows_by_the_factor():
    def work():
        t = time.perf_counter() + 0.01
        while time.perf_counter() < t:
            pass
        return 7

    slow = slowdown.wrap("conv2d", "direct", work, environ={slowdown.ENV: "conv2d/direct=2"})
    assert slow is not work and slow() == 7
    t0 = time.perf_counter()
    slow()
    elapsed = time.perf_counter() - t0
    assert 0.018 < elapsed < 0.05


def test_suite_normalisation_absorbs_a_busier_machine(base, tmp_path):
    # every benchmark 1.4x slower but the (cached) calibration unchanged: a busier machine
    busy = {f"{t}/{a}/{nl}": 1.4 for t, a, nl, _ in CELLS}
    new = make_suite(tmp_path / "new.json", seed=2, scale=busy)
    assert compare.compare_suites(base, new)[1].failed
    _, verdict = compare.compare_suites(base, new, normalise="suite")
    assert not verdict.failed
    assert any("normalised by calibration instead: 1.4" in n for n in verdict.notes)
    # ... and still catches one kernel slowed on top of it
    busy["conv3d/direct/ci:v1"] = 1.4 * 2.0
    new = make_suite(tmp_path / "new2.json", seed=2, scale=busy)
    _, verdict = compare.compare_suites(base, new, normalise="suite")
    assert verdict.regressions == ["conv3d/direct/ci:v1"]


def test_min_estimator(base, tmp_path):
    new = make_suite(tmp_path / "new.json", seed=2, scale={"conv2d/direct/ci:c1": 2.0})
    df, verdict = compare.compare_suites(base, new, estimator="min")
    assert verdict.regressions == ["conv2d/direct/ci:c1"] and verdict.estimator == "min"
    assert compare.main([str(base), str(new), "-q", "--estimator", "min"]) == 1
    with pytest.raises(compare.CompareError):
        compare.compare_suites(base, new, estimator="mean")


def test_rerun_confirms_a_regression(base, tmp_path, capsys):
    slow = "pointwise/direct/ci:p1"
    fluke = make_suite(tmp_path / "fluke.json", seed=2, scale={"conv3d/direct/ci:v1": 1.6})
    real1 = make_suite(tmp_path / "r1.json", seed=3, scale={slow: 1.5})
    real2 = make_suite(tmp_path / "r2.json", seed=4, scale={slow: 1.5})
    # a one-off slow benchmark (another job on the machine) is not confirmed by the re-run
    assert compare.main([str(base), str(fluke), str(real1), "-q"]) == 0
    assert compare.main([str(base), str(real1), str(real2), "-q"]) == 1
    assert f"confirmed in all 2 runs: {slow}" in capsys.readouterr().out


def test_gate_study_analysis_counts(tmp_path):
    from harness import gate_study

    make_suite(tmp_path / "baseline.json", seed=1)
    for i in (1, 2, 3):
        make_suite(tmp_path / f"aa-{i:02d}.json", seed=10 + i)
        make_suite(tmp_path / f"slow-{i:02d}.json", seed=20 + i,
                   scale={"conv2d/direct/ci:c1": 1.3, "pointwise/direct/ci:p1": 2.0})
    summary = gate_study.analyse(tmp_path, "conv2d/direct=1.3,pointwise/direct=2",
                                 thresholds=(1.15,), alphas=(0.01,), estimator="min")
    (row,) = summary["results"]
    for mode in ("single", "confirmed"):
        m = row[mode]
        assert m["aa_false_alarms"] == 0 and m["wrong_flags"] == 0
        assert m["caught"] == {"conv2d/direct": 3, "pointwise/direct": 3}
        assert m["caught_all"] == m["slowed_trials"] == 3
    assert "conv2d/direct caught" in gate_study.report(summary)


def test_gate_study_analysis_of_ab_trials(tmp_path):
    """--ab trials: each has its own reference side; A/A is ref vs new, A/B ref vs slow."""
    from harness import gate_study

    slow = {"conv2d/direct/ci:c1": 1.3, "pointwise/direct/ci:p1": 2.0}
    for i in (1, 2, 3):
        make_suite(tmp_path / f"ref-{i:02d}.json", seed=30 + i)
        make_suite(tmp_path / f"new-{i:02d}.json", seed=40 + i)
        make_suite(tmp_path / f"slow-{i:02d}.json", seed=50 + i, scale=slow)
    summary = gate_study.analyse(tmp_path, "conv2d/direct=1.3,pointwise/direct=2",
                                 thresholds=(1.15,), alphas=(0.01,), normalise="none",
                                 estimator="min", ab=True)
    (row,) = summary["results"]
    m = row["confirmed"]
    assert m["aa_trials"] == 3 and m["aa_false_alarms"] == 0 and m["wrong_flags"] == 0
    assert m["caught"] == {"conv2d/direct": 3, "pointwise/direct": 3}


# ------------------------------------------------------------ one decision rule (stats)

def test_judge_flags_a_planted_slowdown_and_not_identical_samples():
    rng = np.random.default_rng(3)
    base_values = 1e-3 * (1 + 0.01 * rng.standard_normal(18))
    slow = stats.judge(base_values, 1.3 * base_values[::-1], estimator="median")
    assert slow.verdict == stats.SLOWER and slow.ratio == pytest.approx(1.3)
    assert slow.p < stats.DEFAULT_ALPHA and slow.significant and slow.decidable
    same = stats.judge(base_values, base_values.copy())
    assert same.verdict == stats.SAME and same.ratio == 1.0 and same.p == 1.0
    fast = stats.judge(base_values, base_values / 1.3, estimator="min")
    assert fast.verdict == stats.FASTER


def test_judge_lets_the_ratio_decide_when_the_test_cannot():
    # 2 values each: the U test cannot reach p < 0.01 (min p 1/3), so the ratio decides
    j = stats.judge([1.0, 1.01], [1.3, 1.31], threshold=1.15, alpha=0.01)
    assert not j.decidable and j.significant and j.verdict == stats.SLOWER
    with pytest.raises(ValueError, match="alpha"):
        stats.judge([1.0], [1.0], alpha=1.5)
    with pytest.raises(ValueError, match="threshold"):
        stats.judge([1.0], [1.0], threshold=0.9)
    with pytest.raises(ValueError, match="estimator"):
        stats.judge([1.0], [1.0], estimator="mean")


def test_one_default_alpha():
    assert stats.DEFAULT_ALPHA == 0.01 and stats.DEFAULT_THRESHOLD == 1.15
    args = compare.build_parser().parse_args(["a.json", "b.json"])
    assert args.alpha == stats.DEFAULT_ALPHA and args.threshold == stats.DEFAULT_THRESHOLD


@pytest.mark.parametrize("estimator", ["median", "min"])
def test_gate_report_and_gate_study_agree(base, tmp_path, estimator):
    """compare_suites, the report's comparison and the gate study's grid all decide by
    stats.judge: on the same files they flag the same benchmarks."""
    from harness import gate_study
    from harness.report.compare import compare_runs

    slowed = "conv2d/direct/ci:c1"
    new = make_suite(tmp_path / "new.json", seed=2, scale={slowed: 1.3})
    df, verdict = compare.compare_suites(base, new, estimator=estimator)
    assert verdict.regressions == [slowed]
    # the rule itself, on the same (normalisation factor 1) values
    records = {p: {b.get_name(): b.get_values() for b in pyperf.BenchmarkSuite.load(str(p))}
               for p in (base, new)}
    judged = {name for name in records[base]
              if stats.judge(records[base][name], records[new][name],
                             estimator=estimator).verdict == stats.SLOWER}
    assert judged == {slowed}
    if estimator == "median":  # the report compares with the gate's defaults
        report = compare_runs(base, new)
        assert set(report.table.loc[report.table["status"] == "regression", "name"]) == {
            slowed}
        assert report.alpha == stats.DEFAULT_ALPHA
    # the gate study judges one permissive table at every grid point
    loose, _ = compare.compare_suites(base, new, threshold=1.0, alpha=0.5,
                                      estimator=estimator)
    assert gate_study.flagged_names(loose, stats.DEFAULT_THRESHOLD, stats.DEFAULT_ALPHA,
                                    estimator) == {slowed}
    assert gate_study.flagged_names(loose, 1.5, stats.DEFAULT_ALPHA, estimator) == set()
