"""Results files, merges and the history that do not lie or hang (issue 29, items 5, 8, 10):
merges keep machine classes apart, a damaged or unwritable history database is one line
naming it, FIFOs are refused, write errors name the file, a merged shard file resumes as
the whole sweep, and a sweep holds its file's lock from before it calibrates."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyperf
import pytest

from harness import calibrate, cli, history, results, sweep

ROOT = Path(__file__).resolve().parent.parent
CPU = "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
CALIB = {"calib_sgemm_gflops_1t": 95.0, "calib_sgemm_gflops": 190.0,
         "calib_bandwidth_gbs": 22.0}
TINY_FILE = ('depthwise mb1ic4ih6oc4oh6kh3ph1g4n"tiny:dw"\n'
             'pointwise mb1ic4ih6oc8oh6n"tiny:pw"\n')


def write(path, names=("conv2d/direct/net:a",), isa="avx512", machine_class=None, day=1,
          values=(1e-3, 1.1e-3), runs=2, **extra):
    """A suite like a sweep's on the CPU above, compiled for `isa`."""
    machine_class = machine_class or f"intel-xeon-platinum-8375c-{isa}-2c"
    benches = []
    for name in names:
        meta = dict(name=name, cpu_model=CPU, cpu_model_name=CPU, cpu_count=2, isa=isa,
                    machine_class=machine_class, hostname="h1", threads=1, **CALIB, **extra)
        benches.append(pyperf.Benchmark([
            pyperf.Run([v * (1 + 0.01 * k) for v in values], collect_metadata=False,
                       metadata=dict(meta, date=f"2026-01-{day:02d} 10:00:0{k}"))
            for k in range(runs)]))
    pyperf.BenchmarkSuite(benches).dump(str(path), replace=True)
    return Path(path)


def one_line_error(capsys, code: int, *needles: str) -> str:
    out = capsys.readouterr().err.strip()
    assert code == 2, out
    assert "Traceback" not in out, out
    err = out.splitlines()[-1]
    assert err.startswith("convbench ") and len(err) <= 400, out
    for n in needles:
        assert n in err, (n, out)
    return err


def convbench(*args, timeout=120, preexec_fn=None) -> subprocess.CompletedProcess:
    """`convbench ARGS` in its own process, bounded in time (a FIFO must not hang a test)."""
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=preexec_fn)


# --------------------------------------------------------------------------- 5. classes


def test_merge_refuses_two_machine_classes_of_one_cpu(tmp_path, capsys):
    a = write(tmp_path / "a.json")
    b = write(tmp_path / "b.json", isa="avx2")  # CONVBENCH_ISA=avx2 on the same CPU
    code = cli.main(["merge", str(a), str(b), "-o", str(tmp_path / "m.json")])
    err = one_line_error(capsys, code, "a.json", "b.json", "avx512", "avx2", "classes")
    assert "intel-xeon-2c" not in err and not (tmp_path / "m.json").exists()


def test_merge_keeps_the_machine_class_and_isa(tmp_path):
    a = write(tmp_path / "a.json", day=1)
    b = write(tmp_path / "b.json", day=2)
    out = tmp_path / "m.json"
    assert results.merge([a, b], out, err=open(os.devnull, "w")) == (1, 0)
    (bench,) = results.load_suite(out).get_benchmarks()
    meta = bench.get_metadata()
    assert bench.get_nrun() == 4
    assert meta["machine_class"] == "intel-xeon-platinum-8375c-avx512-2c"
    assert meta["isa"] == "avx512"


def test_history_add_refuses_a_file_of_several_classes(tmp_path, capsys):
    a = write(tmp_path / "a.json")
    b = write(tmp_path / "b.json", isa="avx2")
    mixed = tmp_path / "mixed.json"  # what merge made before it refused
    runs = [*results.load_suite(a).get_benchmarks()[0].get_runs(),
            *results.load_suite(b).get_benchmarks()[0].get_runs()]
    pyperf.BenchmarkSuite([pyperf.Benchmark(runs)]).dump(str(mixed))
    db = tmp_path / "h.sqlite"
    code = history.main(["add", str(mixed), "--commit", "c1", "--db", str(db)])
    out = capsys.readouterr().err
    assert code == 2 and "mixed.json" in out and "2 machine classes" in out, out
    assert not db.exists() or history.load(db).empty


def test_merge_of_two_hosts_runs_names_the_files(tmp_path, capsys):
    a = write(tmp_path / "a.json")
    b = write(tmp_path / "b.json", day=2)
    data = json.loads(b.read_text())
    data["metadata"]["hostname"] = "h2"
    b.write_text(json.dumps(data))
    code = cli.main(["merge", str(a), str(b), "-o", str(tmp_path / "m.json")])
    one_line_error(capsys, code, "a.json", "b.json", "hostname")


# --------------------------------------------------------------------------- 8. history


def make_db(tmp_path, commits=12) -> Path:
    db = tmp_path / "h.sqlite"
    names = [f"conv2d/direct/net:l{i}" for i in range(40)]
    for c in range(commits):
        history.add(db, write(tmp_path / f"r{c}.json", names, day=c + 1), commit=f"c{c:02d}")
    return db


def damage_results_pages(db: Path) -> None:
    """Overwrite every page of the results table and its indexes (the header page and
    the meta table stay intact)."""
    con = sqlite3.connect(db)
    page = con.execute("PRAGMA page_size").fetchone()[0]
    roots = [r for (r,) in con.execute("SELECT rootpage FROM sqlite_master WHERE tbl_name = "
                                       "'results' AND rootpage > 0")]
    con.close()
    first = min(roots)
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        for p in range(first, size // page + 1):
            fh.seek((p - 1) * page)
            fh.write(bytes([0xA5]) * page)


def test_a_damaged_history_database_is_one_line(tmp_path, capsys):
    db = make_db(tmp_path)
    damage_results_pages(db)
    new = write(tmp_path / "new.json", [f"conv2d/direct/net:l{i}" for i in range(40)],
                day=20)
    code = cli.main(["history", "add", str(new), "--commit", "c99", "--db", str(db)])
    one_line_error(capsys, code, str(db), "damaged")
    code = cli.main(["history", "report", "--db", str(db)])
    one_line_error(capsys, code, str(db), "damaged")
    # the report keeps its other sections and says why the history is missing
    from harness.report import build_report

    page = build_report(new, tmp_path / "r.html", history=db).read_text()
    assert "damaged history database" in page and 'id="summary"' in page


def test_a_read_only_or_full_history_database_says_so(tmp_path, capsys, monkeypatch):
    db = make_db(tmp_path, commits=2)
    new = write(tmp_path / "new.json", [f"conv2d/direct/net:n{i}" for i in range(400)],
                day=20)
    real = sqlite3.connect

    def read_only(path, *a, **kw):  # what a read-only disk gives SQLite
        return real(f"file:{path}?mode=ro", *a, uri=True, **kw)

    monkeypatch.setattr(history.sqlite3, "connect", read_only)
    code = cli.main(["history", "add", str(new), "--commit", "c9", "--db", str(db)])
    err = one_line_error(capsys, code, str(db), "read-only")
    assert "not a history database" not in err

    def full(path, *a, **kw):  # what a full disk gives SQLite: no page can be added
        con = real(path, *a, **kw)
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        con.execute(f"PRAGMA max_page_count = {max(pages, 1)}")
        return con

    monkeypatch.setattr(history.sqlite3, "connect", full)
    code = cli.main(["history", "add", str(new), "--commit", "c9", "--db", str(db)])
    err = one_line_error(capsys, code, str(db), "disk is full")
    assert "not a history database" not in err
    monkeypatch.setattr(history.sqlite3, "connect", real)
    assert len(history.load(db)) == 2 * 40  # nothing half-added


# --------------------------------------------------------------------------- 10. FIFOs


@pytest.mark.parametrize("command", ["report", "tune", "merge"])
def test_a_fifo_skips_file_is_refused_not_waited_on(tmp_path, command):
    f = write(tmp_path / "r.json", ["conv2d/direct/net:a"], mode="call", conv_type="conv2d",
              algorithm="direct", spec="mb1ic4ih6oc8oh6kh3ph1")
    fifo = results.sidecar_path(f)
    os.mkfifo(fifo)
    args = {"report": ["report", f, "-o", tmp_path / "r.html", "--history", "none"],
            "tune": ["tune", "--from", f, "-o", tmp_path / "t.json"],
            "merge": ["merge", f, "-o", tmp_path / "m.json"]}[command]
    proc = convbench(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(fifo) in proc.stderr and "not a regular file" in proc.stderr, proc.stderr
    assert not results.lock_path(tmp_path / "m.json").exists()


# --------------------------------------------------------------------------- 10. messages


def test_a_full_disk_names_the_file_it_could_not_write(tmp_path):
    names = [f"conv2d/direct/net:l{i}" for i in range(120)]
    a = write(tmp_path / "a.json", names)
    out = tmp_path / "m.json"

    def small_files():  # writes past 16 KiB fail (EFBIG) as on a full disk (ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))

    assert a.stat().st_size > 16384
    proc = convbench("merge", a, "-o", out, preexec_fn=small_files)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("convbench merge: cannot write ") and str(out) in last, last
    assert not out.exists() and list(tmp_path.glob(".m.json*")) == []


def test_write_errors_name_the_file(tmp_path, monkeypatch):
    def no_space(self, *a, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", no_space)
    with pytest.raises(ValueError, match=r"cannot write .*r\.skips\.json: No space left"):
        results.write_sidecar(tmp_path / "r.json", [])
    suite = pyperf.BenchmarkSuite.load(str(write(tmp_path / "s.json")))
    monkeypatch.setattr(pyperf.BenchmarkSuite, "dump", no_space)
    with pytest.raises(ValueError, match=r"cannot write .*r\.json: No space left"):
        results.write_suite(suite, tmp_path / "r.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_resume_of_a_missing_file_says_it_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "missing.json"
    err = one_line_error(capsys, cli.main(["run", "--resume", str(missing)]), str(missing),
                         "no such file")
    assert "--set is required" not in err
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    one_line_error(capsys, cli.main(["run", "--resume", str(fifo)]), str(fifo),
                   "not a regular file")


def test_results_without_values_are_left_out_not_an_error(tmp_path, capsys):
    f = write(tmp_path / "w.json", ["conv2d/direct/net:a", "conv2d/im2col/net:a"],
              conv_type="conv2d", mode="call", spec="mb1ic4ih6oc8oh6kh3ph1")
    data = results.load_suite(f)
    benches = [pyperf.Benchmark([pyperf.Run([], warmups=[(1, 1e-3)], collect_metadata=False,
                                            metadata=r.get_metadata())
                                 for r in b.get_runs()]) for b in data.get_benchmarks()]
    pyperf.BenchmarkSuite(benches).dump(str(f), replace=True)
    assert cli.main(["report", str(f), "-o", str(tmp_path / "w.html"), "--history",
                     "none"]) == 0
    page = (tmp_path / "w.html").read_text()
    assert "benchmarks without values" in page and "no benchmark with timed values" in page
    code = cli.main(["tune", "--from", str(f), "-o", str(tmp_path / "t.json")])
    one_line_error(capsys, code, str(f), "no timed benchmark")


# --------------------------------------------------------------------------- 10. shards


def test_a_merged_shard_file_resumes_as_the_whole_sweep(tmp_path):
    options = {"set": "tiny", "types": None, "algos": ["direct"], "peers": None,
               "threads": [1], "rtol": None, "pyperf": ["--debug-single-value"]}
    shards = []
    for i in (1, 2):
        opts = json.dumps(dict(options, shard=f"{i}/2"), sort_keys=True)
        shards.append(write(tmp_path / f"s{i}.json", [f"conv2d/direct/net:l{i}"],
                            sweep_options=opts))
    out = tmp_path / "m.json"
    results.merge(shards, out, err=open(os.devnull, "w"))
    whole = dict(options, shard=None)
    sweep.check_resume(out, whole)  # no "options differ: shard"
    assert sweep.recorded_options(results.load_suite(out)) == whole
    with pytest.raises(ValueError, match="shard"):
        sweep.check_resume(shards[0], whole)  # a shard alone is still a shard
    # the merged file's runs are the shards' runs: the history counts them once
    db = tmp_path / "h.sqlite"
    assert sum(history.add(db, s, commit="c1").added for s in shards) == 2
    assert history.add(db, out, commit="c1").added == 0


# --------------------------------------------------------------------------- 10. the lock

PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("free")
except OSError:
    print("held")
"""


def test_a_sweep_holds_its_lock_while_it_calibrates(tmp_path, monkeypatch, capsys):
    """Another sweep of the file must stop before it calibrates (no two calibrations load
    the machine at once, and the winner records figures measured alone)."""
    shapes = tmp_path / "tiny.txt"
    shapes.write_text(TINY_FILE)
    out = tmp_path / "c.json"
    seen = []

    def probing_calibrate(*a, **kw):
        seen.append(subprocess.run([sys.executable, "-c", PROBE,
                                    str(results.lock_path(out))], capture_output=True,
                                   text=True, timeout=60).stdout.strip())
        raise ValueError("calibration: stopped by the test")

    monkeypatch.setattr(calibrate, "calibrate", probing_calibrate)
    code = cli.main(["run", "--set", str(shapes), "--algos", "direct", "--threads", "1",
                     "-o", str(out), "--debug-single-value"])
    one_line_error(capsys, code, "stopped by the test")
    assert seen == ["held"]


def test_compare_and_tune_refuse_a_file_of_several_classes(tmp_path, capsys):
    a = write(tmp_path / "a.json")
    b = write(tmp_path / "b.json", isa="avx2")
    mixed = tmp_path / "mixed.json"
    runs = [*results.load_suite(a).get_benchmarks()[0].get_runs(),
            *results.load_suite(b).get_benchmarks()[0].get_runs()]
    pyperf.BenchmarkSuite([pyperf.Benchmark(runs)]).dump(str(mixed))
    from harness import compare

    with pytest.raises(compare.CompareError, match="mixed.json.*2 machine classes"):
        compare.compare_suites(a, mixed)
    code = cli.main(["tune", "--from", str(mixed), "-o", str(tmp_path / "t.json")])
    one_line_error(capsys, code, "mixed.json", "2 machine classes")


def test_a_fifo_as_the_report_or_history_page_is_refused(tmp_path):
    f = write(tmp_path / "r.json", ["conv2d/direct/net:a"], mode="call", conv_type="conv2d",
              algorithm="direct", spec="mb1ic4ih6oc8oh6kh3ph1")
    db = tmp_path / "h.sqlite"
    history.add(db, f, commit="c1")
    page = tmp_path / "page.html"
    os.mkfifo(page)
    for args in (["report", f, "-o", page, "--history", "none"],
                 ["history", "report", "--db", db, "--html", page]):
        proc = convbench(*args)
        assert proc.returncode == 2, proc.stderr
        assert str(page) in proc.stderr and "not a regular file" in proc.stderr, proc.stderr
