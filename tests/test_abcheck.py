"""The A/B speed gate (`convbench ab`, `make bench-check`) and the calibration drift check."""

from __future__ import annotations

import json
import subprocess

import pyperf
import pytest

import kernels
from harness import abcheck, calibrate, plan, slowdown
from harness.shapes import Layer
from harness.sweep import SOURCE_ROOT

TINY = [
    Layer("tiny", "pw", "pointwise",
          kernels.ConvSpec(n=1, c=16, k=16, size=(8, 8), kernel=(1, 1)), 1),
    Layer("tiny", "dw", "depthwise",
          kernels.ConvSpec(n=1, c=8, k=8, size=(8, 8), kernel=(3, 3), padding=1, groups=8), 1),
]
CALIBRATION = {"calib_sgemm_gflops_1t": 100.0, "calib_sgemm_gflops": 190.0,
               "calib_bandwidth_gbs": 20.0, "cpu_model": "test cpu"}
# three processes a side, as the gate runs: 4 values each, so the U test on the faster
# halves (6 and 6 values) can reach p < 0.01
PYPERF = ["--processes", "3", "--values", "4", "--warmups", "1", "--loops", "8"]


def git(root, *args):
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    (root / "a.txt").write_text("one\n")
    git(root, "add", "a.txt")
    git(root, "commit", "-qm", "one")
    first = git(root, "rev-parse", "HEAD")
    (root / "a.txt").write_text("two\n")
    git(root, "commit", "-qam", "two")
    return root, first


def test_worktree_checks_out_the_reference_once(repo):
    root, first = repo
    commit = abcheck.resolve(root, first[:8])
    assert commit == first
    path = abcheck.worktree(root, commit)
    assert path == root / ".convbench-cache" / f"ref-{first[:12]}"
    assert (path / "a.txt").read_text() == "one\n"
    (path / "marker").write_text("")  # untracked files (the Numba cache) survive reuse
    assert abcheck.worktree(root, commit) == path and (path / "marker").exists()
    assert (root / "a.txt").read_text() == "two\n"  # the working tree is untouched


def test_reference_errors_say_why(repo, tmp_path):
    root, _ = repo
    with pytest.raises(abcheck.ReferenceUnavailable, match="not in this clone"):
        abcheck.resolve(root, "0123456789abcdef0123456789abcdef01234567")
    with pytest.raises(abcheck.ReferenceUnavailable, match="make baseline"):
        abcheck.recorded_reference(root)
    (root / "results" / "baseline").mkdir(parents=True)
    (root / abcheck.REFERENCE_FILE).write_text("# comment\n\nabc123 accepted\n")
    assert abcheck.recorded_reference(root) == "abc123"


def test_recorded_reference_is_in_this_repository():
    root = SOURCE_ROOT
    if not (root / ".git").exists() or (root / ".git" / "shallow").exists():
        pytest.skip("not a full git clone")
    assert abcheck.resolve(root, abcheck.recorded_reference(root))


def test_per_process_options():
    args, rounds = abcheck._per_process(["--processes", "3", "--values", "4", "-w", "1"])
    assert rounds == 3 and args == ["--values", "4", "-w", "1"]
    assert abcheck._per_process(["--processes=5"]) == ([], 5)


def test_ab_flags_the_slowed_side_only(tmp_path, monkeypatch):
    """Both sides are this tree; the slowdown switch reaches the working tree's side only,
    so exactly the slowed benchmark is flagged, and confirmed by the second pass."""
    monkeypatch.setattr(calibrate, "calibrate", lambda **kw: dict(CALIBRATION, cache_path=""))
    monkeypatch.setenv(slowdown.ENV, "pointwise/direct=3")
    the_plan = plan.plan("tiny", algos=["direct"], threads=["1"], layers=TINY)
    assert [j.name for j in the_plan.jobs] == ["pointwise/direct/tiny:pw",
                                               "depthwise/direct/tiny:dw"]
    res = abcheck.check(the_plan, out=tmp_path, pyperf_args=PYPERF, threshold=1.5,
                        alpha=0.01, ref_root=SOURCE_ROOT)
    assert res.flagged == ["pointwise/direct/tiny:pw"]
    assert res.confirmed == ["pointwise/direct/tiny:pw"] and res.exit_code == 1
    assert "FAIL: 1 regression(s) confirmed" in (tmp_path / "check.md").read_text()
    ref = pyperf.BenchmarkSuite.load(str(tmp_path / "ref-1.json"))
    new = pyperf.BenchmarkSuite.load(str(tmp_path / "new-1.json"))
    for suite, side in ((ref, "ref"), (new, "new")):
        for bench in suite:
            runs = bench.get_runs()
            assert len(runs) == 3 and all(r.get_metadata()["ab_side"] == side for r in runs)
            slowed = {r.get_metadata().get("slowdown") for r in runs}
            expect = {3.0} if side == "new" and "pointwise" in bench.get_name() else {None}
            assert slowed == expect, (side, bench.get_name(), slowed)
    # the second pass timed the flagged benchmark only
    again = pyperf.BenchmarkSuite.load(str(tmp_path / "new-2.json"))
    assert again.get_benchmark_names() == ["pointwise/direct/tiny:pw"]


def test_calibration_drift_recalibrates(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONVBENCH_CACHE_DIR", str(tmp_path))
    measured = []

    def fake_measure(quick=False):
        measured.append(1)
        return dict(CALIBRATION, calib_probe_gflops=100.0, date="then", quick=quick)

    monkeypatch.setattr(calibrate, "measure", fake_measure)
    monkeypatch.setattr(calibrate, "probe_gflops", lambda: 97.0)
    calibrate.calibrate()
    assert len(measured) == 1
    assert calibrate.calibrate()["calib_sgemm_gflops"] == 190.0 and len(measured) == 1
    monkeypatch.setattr(calibrate, "probe_gflops", lambda: 55.0)  # a neighbour on the cores
    result = calibrate.calibrate()
    assert len(measured) == 2 and "45% slower" in result["recalibrated_because"]
    assert "re-calibrating" in capsys.readouterr().err
    cached = json.loads(calibrate.cache_path().read_text())
    assert cached["recalibrated_because"] == result["recalibrated_because"]


# --------------------------------------------------------------------------- the change


def test_reference_must_be_an_ancestor_of_head(repo):
    root, first = repo
    assert abcheck.check_ancestor(root, first) == 1
    git(root, "checkout", "-q", "-b", "side", first)
    (root / "b.txt").write_text("side\n")
    git(root, "add", "b.txt")
    git(root, "commit", "-qm", "side")
    side = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", "-")
    with pytest.raises(abcheck.ReferenceNotAncestor, match="not an ancestor of HEAD.*make begin"):
        abcheck.check_ancestor(root, side)


def test_begin_records_head_as_the_reference(repo):
    root, _ = repo
    head = abcheck.record_reference(root)
    assert head == git(root, "rev-parse", "HEAD")
    assert abcheck.recorded_reference(root) == head


# A slowdown planted in code (not through the environment): pointwise/direct takes 3x as long
# in every tree that holds this commit, reference side included.
PLANTED = '''

_unplanted_wrap = wrap


def wrap(conv_type, algorithm, fn, environ=None):  # planted by the gate's test
    fn = _unplanted_wrap(conv_type, algorithm, fn, environ)
    return slowed(fn, {factor}) if (conv_type, algorithm) == ("pointwise", "direct") else fn
'''


def test_gate_judges_the_change_not_an_older_slowdown(tmp_path, monkeypatch):
    """A slowdown that landed in an earlier commit (say from a machine of another class, where
    it did not show) must not fail the next, unrelated change; a slowdown in the change itself
    still fails."""
    if not (SOURCE_ROOT / ".git").exists():
        pytest.skip("not a git clone")
    monkeypatch.setattr(calibrate, "calibrate", lambda **kw: dict(CALIBRATION, cache_path=""))
    monkeypatch.delenv(slowdown.ENV, raising=False)
    root = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--shared", str(SOURCE_ROOT), str(root)], check=True)
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    before = git(root, "rev-parse", "HEAD")
    module = root / "harness" / "slowdown.py"
    source = module.read_text()
    module.write_text(source + PLANTED.format(factor=3.0))       # the earlier, landed slowdown
    git(root, "commit", "-qam", "an earlier change: pointwise 3x slower")
    abcheck.record_reference(root)                               # make begin: this change starts
    (root / "NOTES.txt").write_text("an unrelated change\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "the change under test: unrelated to speed")

    the_plan = plan.plan("tiny", algos=["direct"], threads=["1"], layers=TINY[:1])
    args = dict(pyperf_args=["--processes", "2", "--values", "4", "--warmups", "1",
                             "--loops", "8"], threshold=1.5, alpha=0.05, root=root)
    passed = abcheck.check(the_plan, out=tmp_path / "change", **args)
    assert passed.exit_code == 0 and not passed.confirmed, passed.markdown
    # judged against the commit before the planted slowdown, the same tree fails: the
    # slowdown is real, it is just not this change's
    old = abcheck.check(the_plan, ref=before, out=tmp_path / "old", **args)
    assert old.confirmed == ["pointwise/direct/tiny:pw"] and old.exit_code == 1
    # and a slowdown in the change itself (uncommitted edits count) still fails
    module.write_text(module.read_text() + PLANTED.format(factor=3.0).replace(
        "_unplanted_wrap", "_unplanted_again"))
    failed = abcheck.check(the_plan, out=tmp_path / "slowed", **args)
    assert failed.confirmed == ["pointwise/direct/tiny:pw"] and failed.exit_code == 1
