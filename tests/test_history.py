"""The results history (SQLite) and its change points, on suites made here."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pyperf
import pytest

from harness import changepoint, history

CALIB = {"calib_sgemm_gflops_1t": 95.0, "calib_sgemm_gflops": 190.0,
         "calib_bandwidth_gbs": 22.0}
FLAT = "conv2d/direct/ci:flat"
STEPPED = "pointwise/direct/ci:stepped"


def write_suite(path, times: dict, machine_class="test-cpu-avx2-2c", day=1, seed=0,
                calib_scale=1.0, processes=3, values=4, noise=0.005):
    """A suite like a sweep's: `times` maps benchmark name -> its time in seconds."""
    rng = np.random.default_rng(seed)
    benches = []
    for name, t in times.items():
        conv_type, algo, netlayer = name.split("/")
        network, layer = netlayer.split(":")
        meta = {"name": name, "conv_type": conv_type, "algorithm": algo, "network": network,
                "layer": layer, "threads": 1, "spec": "mb1ic8ih8oc8oh8kh3ph1",
                "machine_class": machine_class, "isa": machine_class.split("-")[-2],
                "set": "ci", **{k: v / calib_scale for k, v in CALIB.items()}}
        runs = [pyperf.Run(list(t * calib_scale
                                * (1 + noise * np.abs(rng.standard_normal(values)))),
                           metadata=dict(meta, date=f"2026-01-{day:02d} 10:00:{p:02d}"),
                           collect_metadata=False) for p in range(processes)]
        benches.append(pyperf.Benchmark(runs))
    pyperf.BenchmarkSuite(benches).dump(str(path), replace=True)
    return path


def make_history(tmp_path, commits=16, step_at=9, factor=1.3, other_class=True):
    """A database of `commits` sweeps; STEPPED gets `factor` slower from commit `step_at`."""
    db = tmp_path / "history.sqlite"
    for i in range(commits):
        times = {FLAT: 1e-3, STEPPED: 2e-3 * (factor if i >= step_at else 1.0)}
        f = write_suite(tmp_path / f"r{i}.json", times, day=i + 1, seed=i)
        history.add(db, f, commit=f"c{i:02d}")
        if other_class:  # a machine twice as slow, no step: a series of its own
            g = write_suite(tmp_path / f"o{i}.json", {FLAT: 2e-3, STEPPED: 4e-3},
                            machine_class="other-cpu-avx512-4c", day=i + 1, seed=100 + i)
            history.add(db, g, commit=f"c{i:02d}")
    return db


# --------------------------------------------------------------------------- change points


def test_planted_step_is_found_at_its_commit():
    rng = np.random.default_rng(0)
    v = 1.0 + 0.01 * rng.standard_normal(40)
    v[25:] *= 1.2
    commits = [f"c{i}" for i in range(40)]
    (s,) = changepoint.steps(v, commits)
    assert (s.index, s.before, s.after) == (25, "c24", "c25")
    assert s.ratio == pytest.approx(1.2, rel=0.03)


def test_a_step_three_runs_before_the_newest_is_found():
    rng = np.random.default_rng(3)
    v = 1.0 + 0.01 * rng.standard_normal(60)
    v[57:] *= 1.15
    assert [s.index for s in changepoint.steps(v, list(range(60)))] == [57]
    assert changepoint.steps(v[:59], list(range(59))) == []  # two runs: not yet


def test_flat_series_and_small_steps_have_none():
    rng = np.random.default_rng(1)
    v = 1.0 + 0.01 * rng.standard_normal(60)
    assert changepoint.steps(v, list(range(60))) == []
    v[30:] *= 1.02  # real, but under the threshold
    assert changepoint.steps(v, list(range(60))) == []


def test_two_steps_and_runs_of_one_commit_stay_together():
    v = np.array([1.0] * 10 + [1.5] * 10 + [1.0] * 10) * (1 + 0.001 * np.arange(30) % 3)
    commits = [f"c{i // 2}" for i in range(30)]  # two runs a commit
    found = changepoint.steps(v, commits)
    assert [s.index for s in found] == [10, 20]
    assert found[0].ratio > 1.4 and found[1].ratio < 0.7
    assert all(commits[s.index] != commits[s.index - 1] for s in found)


def test_a_load_spike_is_not_a_step():
    v = np.full(30, 1.0) + 0.001 * np.arange(30) % 5
    v[12] = 1.6
    assert changepoint.steps(v, list(range(30))) == []


@pytest.mark.parametrize("kw, field", [
    (dict(values=[1.0, 2.0], commits=["a"]), "values"),
    (dict(values=[1.0, -2.0], commits=["a", "b"]), "values"),
    (dict(values=[1.0, 2.0], commits=["a", "b"], threshold=0.9), "threshold"),
    (dict(values=[1.0, 2.0], commits=["a", "b"], alpha=1.5), "alpha"),
    (dict(values=[1.0, 2.0], commits=["a", "b"], min_size=0), "min_size"),
])
def test_bad_input_names_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        changepoint.steps(**kw)


def test_false_alarm_rate_is_low_and_steps_are_caught():
    rng = np.random.default_rng(2)
    noise = 1.0 + 0.01 * rng.standard_normal(200)
    assert changepoint.false_alarm_rate(noise, length=60, series=40) <= 0.05
    assert changepoint.detection_rate(noise, 1.3, length=60, series=40) >= 0.9


# --------------------------------------------------------------------------- the database


def test_add_is_idempotent_and_pandas_reads_it(tmp_path):
    db = tmp_path / "h.sqlite"
    f = write_suite(tmp_path / "a.json", {FLAT: 1e-3, STEPPED: 2e-3})
    first = history.add(db, f, commit="abc")
    again = history.add(db, f, commit="abc")
    assert (first.added, first.already) == (2, 0)
    assert (again.added, again.already) == (0, 2)
    frame = pd.read_sql("SELECT * FROM results", sqlite3.connect(db))
    assert sorted(frame["benchmark"]) == sorted([FLAT, STEPPED])
    row = frame.set_index("benchmark").loc[STEPPED]
    assert row["commit_sha"] == "abc" and row["machine_class"] == "test-cpu-avx2-2c"
    assert row["isa"] == "avx2" and row["mode"] == "run" and row["threads"] == 1
    assert row["n_values"] == 12 and row["calib_bandwidth_gbs"] == 22.0
    assert row["min_s"] == pytest.approx(2e-3, rel=0.01)
    assert row["run_date"].startswith("2026-01-01")
    version = sqlite3.connect(db).execute(
        "SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert version == str(history.SCHEMA_VERSION)


def test_another_schema_version_is_refused(tmp_path):
    db = tmp_path / "h.sqlite"
    history.connect(db).close()
    with sqlite3.connect(db) as con:
        con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(ValueError, match="schema_version 99"):
        history.load(db)


def test_machine_classes_are_separate_series(tmp_path):
    db = make_history(tmp_path, commits=6, step_at=99)
    frame = history.series(history.load(db))
    assert frame.groupby(history.SERIES_KEY).ngroups == 4
    for _, group in frame.groupby(history.SERIES_KEY):
        assert group["machine_class"].nunique() == 1 and len(group) == 6
        assert list(group["commit_sha"]) == [f"c{i:02d}" for i in range(6)]


def test_report_finds_the_planted_step_only(tmp_path, capsys):
    db = make_history(tmp_path)
    frame, steps = history.report(db)
    assert len(steps) == 1
    s = steps.iloc[0]
    assert (s["benchmark"], s["machine_class"]) == (STEPPED, "test-cpu-avx2-2c")
    assert (s["before"], s["after"]) == ("c08", "c09")
    assert s["ratio"] == pytest.approx(1.3, rel=0.02)
    assert history.main(["report", "--db", str(db), "--html", str(tmp_path / "h.html")]) == 0
    out = capsys.readouterr().out
    assert "largest slowdowns" in out and "c08..c09" in out and "x 1.3" in out
    assert "largest speed-ups" not in out
    page = (tmp_path / "h.html").read_text()
    assert "data:image/png;base64," in page and "c08..c09" in page


def test_calibration_absorbs_a_slower_machine_of_the_class(tmp_path):
    db = tmp_path / "h.sqlite"
    for i in range(12):  # the host of the class got 1.4x slower (and calibrated so) at 6
        f = write_suite(tmp_path / f"r{i}.json", {FLAT: 1e-3}, day=i + 1, seed=i,
                        calib_scale=1.4 if i >= 6 else 1.0)
        history.add(db, f, commit=f"c{i:02d}")
    frame, steps = history.report(db)
    assert steps.empty
    assert frame["min_s"].max() / frame["min_s"].min() > 1.35  # raw times did step
    assert frame["norm_s"].max() / frame["norm_s"].min() < 1.05


def test_cli_add_and_errors(tmp_path, capsys):
    from harness import cli

    db = tmp_path / "h.sqlite"
    f = write_suite(tmp_path / "a.json", {FLAT: 1e-3})
    assert cli.main(["history", "add", str(f), "--commit", "abc", "--mode", "bench-check",
                     "--db", str(db)]) == 0
    assert "1 rows added" in capsys.readouterr().out
    assert history.load(db)["mode"].tolist() == ["bench-check"]
    assert history.main(["report", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert history.main(["add", str(bad), "--commit", "x", "--db", str(db)]) == 2


def test_html_report_section_with_and_without_history(tmp_path):
    from harness.report.history import history_section

    assert history_section(None) is None
    assert history_section(tmp_path / "missing.sqlite") is None
    db = make_history(tmp_path, commits=16, step_at=10, other_class=False)
    section = history_section(db)
    assert section.id == "history" and "c09..c10" in section.body


def test_build_report_adds_the_section_only_with_a_history(tmp_path):
    from harness.report import build_report

    f = write_suite(tmp_path / "run.json", {FLAT: 1e-3, STEPPED: 2e-3})
    plain = build_report(f, tmp_path / "plain.html", history=tmp_path / "none.sqlite")
    assert 'id="history"' not in plain.read_text()
    db = make_history(tmp_path, commits=16, step_at=10, other_class=False)
    page = build_report(f, tmp_path / "with.html", history=db).read_text()
    assert 'id="history"' in page and "c09..c10" in page
