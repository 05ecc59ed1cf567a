"""Results files that cannot lose data, and errors that name the file (issue 17, items 1 and 4).

Concurrent sweeps on one file, `merge` of the same runs, `--resume` with other options, a
SIGKILLed sweep's pyperf processes and temporary folder, and each CLI error path a user can
reach with bad input: exit code 2, one line naming the file or value, no traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import harness.shapes
import kernels
from harness import calibrate, cli, results
from harness.shapes import Layer

ROOT = Path(__file__).resolve().parent.parent
CALIBRATION = {"calib_sgemm_gflops_1t": 100.0, "calib_sgemm_gflops": 190.0,
               "calib_bandwidth_gbs": 20.0, "cpu_model": "test cpu"}
FAST = ["--debug-single-value"]
TINY = [Layer("tiny", "dw", "depthwise",
              kernels.ConvSpec(n=1, c=4, k=4, size=(6, 6), kernel=(3, 3), padding=1, groups=4)),
        Layer("tiny", "pw", "pointwise", kernels.ConvSpec(n=1, c=4, k=8, size=(6, 6),
                                                          kernel=(1, 1)))]
TINY_FILE = ('depthwise mb1ic4ih6oc4oh6kh3ph1g4n"tiny:dw"\n'
             'pointwise mb1ic4ih6oc8oh6n"tiny:pw"\n')

# A sweep in its own process, with the fixed calibration; it waits for GO (when given)
# after its imports, so that two of them reach the results file at the same moment.
SWEEP = """
import json, os, sys, time
from harness import calibrate, cli
calibrate.calibrate = lambda force=False, quick=False: dict(json.loads(sys.argv[1]),
                                                            cache_path="")
go = sys.argv[2]
if go:
    open(go + ".ready." + str(os.getpid()), "w").close()
    while not os.path.exists(go):
        time.sleep(0.01)
sys.exit(cli.main(sys.argv[3:]))
"""


@pytest.fixture(autouse=True)
def tiny_set(monkeypatch):
    real = harness.shapes.load_set

    def load_set(name):
        if name.endswith(".txt"):
            return real(name)
        if name != "tiny":
            raise ValueError(f"shape set: unknown set {name!r}; available sets are tiny")
        return list(TINY)

    monkeypatch.setattr(harness.shapes, "load_set", load_set)
    monkeypatch.setattr(calibrate, "calibrate", lambda force=False, quick=False: dict(
        CALIBRATION, cache_path=""))


def sweep_process(args, go: Path | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SWEEP, json.dumps(CALIBRATION),
                             str(go or ""), *args], cwd=str(ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def names_in(path) -> list[str]:
    return results.load_suite(path).get_benchmark_names()


def one_line_error(capsys, code: int, *needles: str) -> str:
    """The command failed with 2, no traceback, and a last stderr line (the error) that
    is short and names `needles`."""
    out = capsys.readouterr().err.strip()
    assert code == 2, out
    assert "Traceback" not in out, out
    err = out.splitlines()[-1]
    assert err.startswith("convbench ") and len(err) <= 400, out
    for n in needles:
        assert n in err, (n, out)
    return err


# --------------------------------------------------------------------------- 1. one writer


def test_two_sweeps_on_one_file_do_not_lose_one(tmp_path):
    shapes_file = tmp_path / "tiny.txt"
    shapes_file.write_text(TINY_FILE)
    out = tmp_path / "c.json"
    go = tmp_path / "go"
    procs = {t: sweep_process(["run", "--set", str(shapes_file), "--types", t, "--algos",
                               "direct", "--threads", "1", "-o", str(out), *FAST], go)
             for t in ("depthwise", "pointwise")}
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.ready.*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    done = {t: (p.wait(timeout=240), p.stderr.read()) for t, p in procs.items()}
    codes = sorted(code for code, _ in done.values())
    assert codes == [0, 2], done
    (winner,) = [t for t, (code, _) in done.items() if code == 0]
    (loser_err,) = [err for code, err in done.values() if code == 2]
    assert str(out) in loser_err and "another sweep" in loser_err, loser_err
    assert "Traceback" not in loser_err
    assert names_in(out) == [f"{winner}/direct/tiny:{'dw' if winner == 'depthwise' else 'pw'}"]
    # nothing left behind: no lock file, no temporary folder
    assert not results.lock_path(out).exists() and not results.tmp_dir(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_merge_of_the_same_runs_counts_them_once(tmp_path, capsys):
    out = tmp_path / "k.json"
    assert cli.main(["run", "--set", "tiny", "--algos", "direct", "--threads", "1",
                     "-o", str(out), *FAST]) == 0
    before = {b.get_name(): (b.get_nrun(), b.get_nvalue()) for b in results.load_suite(out)}
    merged = tmp_path / "m.json"
    capsys.readouterr()
    assert cli.main(["merge", str(out), str(out), "-o", str(merged)]) == 0
    after = {b.get_name(): (b.get_nrun(), b.get_nvalue()) for b in results.load_suite(merged)}
    assert after == before
    err = capsys.readouterr().err
    assert "the same runs, counted once" in err and str(out) in err
    # a copy of the file is the same runs too
    copy = tmp_path / "copy.json"
    copy.write_bytes(out.read_bytes())
    merged2 = tmp_path / "m2.json"
    assert cli.main(["merge", str(out), str(copy), "-o", str(merged2)]) == 0
    assert {b.get_name(): b.get_nvalue() for b in results.load_suite(merged2)} == {
        k: v[1] for k, v in before.items()}


def test_resume_with_other_options_is_refused(tmp_path, capsys):
    out = tmp_path / "r.json"
    base = ["run", "--set", "tiny", "--types", "depthwise", "--algos", "direct"]
    assert cli.main([*base, "--threads", "1", "-o", str(out), *FAST]) == 0
    md = results.load_suite(out).get_benchmarks()[0].get_metadata()
    assert json.loads(md["sweep_options"])["pyperf"] == FAST
    capsys.readouterr()
    code = cli.main([*base, "--threads", "1", "--resume", str(out), "-p", "3"])
    err = one_line_error(capsys, code, str(out), "pyperf", "--debug-single-value", "-p")
    assert "threads" not in err                 # only what differs
    code = cli.main(["run", "--set", "tiny", "--algos", "direct", "--threads", "1",
                     "--resume", str(out), *FAST])
    one_line_error(capsys, code, "types", "depthwise")
    # the same options resume (nothing left to time)
    assert cli.main([*base, "--threads", "1", "--resume", str(out), *FAST]) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_killed_sweep_leaves_no_pyperf_process_and_no_temporary_folder(tmp_path):
    out = tmp_path / "killed.json"
    # a long run (its worker would time on for half a minute), killed once a worker times
    shapes_file = tmp_path / "tiny.txt"
    shapes_file.write_text(TINY_FILE)
    proc = sweep_process(["run", "--set", str(shapes_file), "--types", "pointwise", "--algos",
                          "direct", "--threads", "1", "-o", str(out), "-p", "1", "-n", "600",
                          "-w", "0", "-l", "20000"])
    try:
        deadline = time.monotonic() + 120
        while not [p for p in ours(out) if "--worker" in p[1]]:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no pyperf worker started"
            time.sleep(0.1)
        assert list(results.tmp_dir(out).iterdir())      # the job's temporary folder
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 3
    while ours(out) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = ours(out)
    for pid, _ in left:  # (never leave them running, even when the test fails)
        os.kill(pid, signal.SIGKILL)
    assert not left, "pyperf processes outlived the killed sweep"
    # the next writer of the file cleans the temporary folder
    with results.results_lock(out):
        assert not results.tmp_dir(out).exists()
    assert not results.lock_path(out).exists()


def ours(marker: Path) -> list[tuple[int, str]]:
    """Live processes whose command line names `marker` (the sweep's pyperf processes)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(marker) in cmd and "harness.worker" in cmd and state != "Z":
            found.append((int(d.name), cmd))
    return found


# --------------------------------------------------------------------------- 4. messages


def test_output_under_a_file_is_a_message(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    target = tmp_path / "afile" / "out.json"
    code = cli.main(["run", "--set", "tiny", "--algos", "direct", "-o", str(target), *FAST])
    one_line_error(capsys, code, str(tmp_path / "afile"))


def test_output_in_proc_is_a_message(capsys):
    code = cli.main(["run", "--set", "tiny", "--algos", "direct", "-o", "/proc/x.json", *FAST])
    one_line_error(capsys, code, "/proc/")


def test_report_on_a_json_list_is_a_message(tmp_path, capsys):
    bad = tmp_path / "list.json"
    bad.write_text("[1, 2, 3]")
    code = cli.main(["report", str(bad), "-o", str(tmp_path / "r.html")])
    one_line_error(capsys, code, str(bad))


TRUNCATED = '{"version": "1.0", "benchmarks": [{"runs": [{'
# (an empty file is one a sweep created and has not written yet: --resume continues it)


@pytest.mark.parametrize("command,content", [
    ("report", ""), ("report", TRUNCATED), ("merge", ""), ("merge", TRUNCATED),
    ("resume", TRUNCATED)], ids=["report-empty", "report-truncated", "merge-empty",
                                 "merge-truncated", "resume-truncated"])
def test_empty_or_truncated_results_name_the_file(tmp_path, capsys, command, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    if command == "report":
        args = ["report", str(bad), "-o", str(tmp_path / "r.html")]
    elif command == "merge":
        args = ["merge", str(bad), "-o", str(tmp_path / "m.json")]
    else:
        args = ["run", "--resume", str(bad), "--set", "tiny", "--algos", "direct", *FAST]
    one_line_error(capsys, cli.main(args), str(bad))


def test_huge_repeat_mark_is_a_message(tmp_path, capsys):
    f = tmp_path / "net.txt"
    f.write_text('conv2d mb1ic4ih6oc8oh6kh3ph1n"net:a*99999999999999999999"\n')
    code = cli.main(["shapes", str(f), "--totals"])
    one_line_error(capsys, code, "net.txt:1", "repeat")


def test_non_utf8_shape_file_names_the_file(tmp_path, capsys):
    f = tmp_path / "latin.txt"
    f.write_bytes(b'# caf\xe9\nconv2d mb1ic4ih6oc8oh6kh3ph1n"net:a"\n')
    code = cli.main(["shapes", str(f)])
    one_line_error(capsys, code, "latin.txt:1", "UTF-8")


def test_a_megabyte_line_gives_a_short_message(tmp_path, capsys):
    f = tmp_path / "big.txt"
    f.write_text("conv2d mb1ic4ih6oc8oh6kh3ph1" + "x" * 1_000_000 + 'n"net:a"\n')
    code = cli.main(["shapes", str(f)])
    one_line_error(capsys, code, "big.txt:1")
