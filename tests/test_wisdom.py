"""auto's measured choices: the wisdom file, the policies, plan identity, `convbench tune`
and `convbench wisdom`. Every test has a cache directory of its own (CONVBENCH_CACHE_DIR)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest

import kernels
from harness import cli
from kernels import auto, measured
from kernels.auto import candidates, wisdom

ROOT = Path(__file__).resolve().parents[1]
CONV = kernels.ConvSpec(n=1, c=16, k=16, size=(8, 8), kernel=3, padding=1)


@pytest.fixture(autouse=True)
def own_cache(monkeypatch, tmp_path):
    """The wisdom lives in tmp_path; auto measures (the default policy); no table."""
    monkeypatch.setenv(wisdom.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(auto.POLICY_ENV, "measure")
    monkeypatch.delenv(auto.ENV_VAR, raising=False)
    auto.set_table(None)
    auto.forget()
    yield
    auto.use_default_table()
    auto.forget()


def fake_timer(winner: int = -1, seen: list | None = None):
    """A timer that runs nothing: candidate number `winner` (in the order given) is the
    fastest; each call's candidate names go to `seen`."""
    def timings(calls, **options):
        names = list(calls)
        if seen is not None:
            seen.append(names)
        best = names[winner]
        return {n: (1e-4 if n == best else 2e-4 + 1e-5 * i) for i, n in enumerate(names)}
    return timings


def refuse_to_time(calls, **options):
    raise AssertionError("auto timed candidates where it should not have")


def entry(c: int = 16, threads: int = 2, mode: str = "call", algorithm: str = "direct"):
    spec = CONV.replace(c=c)
    return wisdom.entry(wisdom.Key.of("conv2d", spec, threads, mode),
                        {algorithm: 1e-4, "im2col": 3e-4}, cost_s=0.5)


# --------------------------------------------------------------------------- the file


def test_wisdom_file_round_trip(tmp_path):
    path = tmp_path / "w" / "class.json"
    entries = [entry(), entry(c=8, mode="prepared", algorithm="winograd_f2"), entry(threads=1)]
    wisdom.merge(path, entries, "test-class")
    held = wisdom.load(path)
    assert held.machine_class == "test-class"
    assert held.entries == {e.key: e for e in entries}
    data = json.loads(path.read_text())
    assert data["format"] == wisdom.FORMAT and data["version"] == wisdom.VERSION
    first = data["entries"][0]
    assert first["layout"] == "nchw" and first["seconds"]["im2col"] == 3e-4
    assert set(first) >= {"conv_type", "problem", "threads", "mode", "algorithm",
                          "measured_at", "cost_s"}
    # a newer entry for a key replaces the older; a file without `layout` reads as nchw
    wisdom.merge(path, [entry(algorithm="fft")])
    assert wisdom.load(path).entries[entries[0].key].algorithm == "fft"
    del data["entries"][0]["layout"]
    assert wisdom.from_json(data).entries.keys() == held.entries.keys()
    assert wisdom.load(tmp_path / "missing.json").entries == {}


def test_bad_wisdom_names_the_field(tmp_path):
    with pytest.raises(ValueError, match="^format:"):
        wisdom.from_json({"entries": []})
    good = wisdom.Wisdom("c", {e.key: e for e in [entry()]}).to_json()
    good["entries"][0]["threads"] = 0
    with pytest.raises(ValueError, match=r"^entries\[0\]\.threads: must be a positive"):
        wisdom.from_json(good)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="wisdom forget"):
        wisdom.load(bad)


def test_the_write_is_atomic(tmp_path, monkeypatch):
    """A writer that fails half-way leaves the old file whole and no temporary file."""
    path = tmp_path / "class.json"
    wisdom.merge(path, [entry()])
    before = path.read_text()

    def dump_half(obj, fh, **kw):
        fh.write('{"format": "convbench-wis')
        raise OSError("disk full")

    monkeypatch.setattr(wisdom.json, "dump", dump_half)
    with pytest.raises(OSError, match="disk full"):
        wisdom.merge(path, [entry(c=8)])
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["class.json", "class.json.lock"]


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from kernels import ConvSpec
    from kernels.auto import wisdom

    path, me, other = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    (path.parent / me).touch()
    while not (path.parent / other).exists():   # start together
        time.sleep(0.01)
    for c in range(1, 26):
        spec = ConvSpec(n=1, c=c, k=8, size=(8, 8), kernel=3, padding=1)
        key = wisdom.Key.of("conv2d", spec, 1 if me == "a" else 2, "call")
        wisdom.merge(path, [wisdom.entry(key, {"direct": 1e-4}, 0.1)], "test-class")
""")


def test_two_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "class.json"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), me, other], cwd=ROOT)
             for me, other in (("a", "b"), ("b", "a"))]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    held = wisdom.load(path)
    assert len(held.entries) == 50
    assert {k.threads for k in held.entries} == {1, 2}


# --------------------------------------------------------------------------- the policies


def test_rule_policy_never_measures_nor_reads_wisdom(monkeypatch):
    wisdom.merge(auto.wisdom_path(), [entry(threads=numba.get_num_threads(),
                                            algorithm="fft")])
    monkeypatch.setenv(auto.POLICY_ENV, "rule")
    monkeypatch.setattr(auto, "timings", refuse_to_time)
    monkeypatch.setattr(wisdom, "load", lambda path: pytest.fail("wisdom read"))
    x, w = kernels.make_inputs("conv2d", CONV, seed=0)
    rule_first = candidates.supported("conv2d", CONV, auto.CANDIDATES)[0]
    np.testing.assert_array_equal(kernels.run("conv2d", "auto", CONV, x, w),
                                  kernels.run("conv2d", rule_first, CONV, x, w))
    kernels.plan("conv2d", "auto", CONV, w)(x)
    for mode in auto.MODES:
        assert auto.explain("conv2d", CONV, mode) == auto.Choice(rule_first, "rule")
    assert auto.metadata("conv2d", CONV) == {"auto_algorithm": rule_first,
                                             "auto_decided_by": "rule", "auto_policy": "rule"}


def test_a_bad_policy_names_the_variable(monkeypatch):
    monkeypatch.setenv(auto.POLICY_ENV, "fastest")
    with pytest.raises(ValueError, match=f"^{auto.POLICY_ENV}: must be one of"):
        auto.explain("conv2d", CONV)


def test_candidates_follow_the_rule_and_the_counts():
    big = kernels.ConvSpec(n=1, c=64, k=64, size=(28, 28), kernel=3, padding=1)
    timed = candidates.pruned("conv2d", big, auto.CANDIDATES)
    assert timed[0] == "winograd_f4" and "direct" in timed      # the rule's, in its order
    assert 2 <= len(timed) <= candidates.MAX_CANDIDATES
    counts = {a: kernels.multiplications("conv2d", a, big)
              for a in candidates.supported("conv2d", big, auto.CANDIDATES)}
    assert all(counts[a] <= candidates.MAX_COUNT_RATIO * min(counts.values()) for a in timed)
    assert all(kernels.supports("conv2d", a, big) is None for a in timed)


def test_measured_choice_is_a_candidate_and_a_fresh_process_reuses_it(monkeypatch):
    monkeypatch.setattr(auto, "ROUNDS", 1)    # the real timer, one timed call each
    x, w = kernels.make_inputs("conv2d", CONV, seed=0)
    y = kernels.run("conv2d", "auto", CONV, x, w)
    choice = auto.explain("conv2d", CONV)
    timed = candidates.pruned("conv2d", CONV, auto.CANDIDATES)
    assert choice.how == "measured" and choice.algorithm in timed
    assert kernels.supports("conv2d", choice.algorithm, CONV) is None
    np.testing.assert_array_equal(y, kernels.run("conv2d", choice.algorithm, CONV, x, w))
    threads = numba.get_num_threads()
    held = wisdom.load(auto.wisdom_path()).entries[
        wisdom.Key.of("conv2d", CONV, threads, "call")]
    assert held.algorithm == choice.algorithm and {a for a, _ in held.seconds} == set(timed)
    script = textwrap.dedent(f"""
        import numba, kernels
        from kernels import auto

        def refuse(calls, **options):
            raise SystemExit("measured again")

        auto.timings = refuse
        numba.set_num_threads({threads})
        spec = kernels.ConvSpec.parse({str(CONV)!r})
        x, w = kernels.make_inputs("conv2d", spec, seed=0)
        kernels.run("conv2d", "auto", spec, x, w)
        print(auto.explain("conv2d", spec))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert repr(auto.Choice(choice.algorithm, "wisdom")) in out.stdout


def test_wisdom_comes_before_the_table_and_the_table_before_timing(monkeypatch):
    threads = numba.get_num_threads()
    monkeypatch.setattr(auto, "timings", refuse_to_time)
    auto.set_table(auto.build([("conv2d", CONV, threads, "im2col", 1e-4)]))
    assert auto.explain("conv2d", CONV) == auto.Choice("im2col", "table")
    wisdom.merge(auto.wisdom_path(), [entry(threads=threads, algorithm="direct")])
    auto.forget()
    assert auto.explain("conv2d", CONV) == auto.Choice("direct", "wisdom")
    # the wisdom policy never times: an unseen problem borrows its nearest table entry's
    # choice, and without a table gets the rule
    monkeypatch.setenv(auto.POLICY_ENV, "wisdom")
    other = CONV.replace(k=8)
    assert auto.explain("conv2d", other) == auto.Choice(
        "im2col", f"table: nearest {wisdom.problem_of(CONV)}")
    auto.set_table(None)
    assert auto.explain("conv2d", other).how == "rule"


# --------------------------------------------------------------------------- plan identity


PLAN_CASES = [
    ("conv2d", CONV),
    ("conv2d", CONV.replace(size=(16, 16))),
    ("depthwise", kernels.ConvSpec(n=1, c=16, k=16, size=(10, 10), kernel=3, padding=1,
                                   groups=16)),
    ("pointwise", kernels.ConvSpec(n=1, c=16, k=24, size=(8, 8), kernel=1)),
    ("grouped", kernels.ConvSpec(n=1, c=32, k=32, size=(8, 8), kernel=3, padding=1,
                                 groups=2)),
]


@pytest.mark.parametrize("conv_type,spec", PLAN_CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("policy", ["measure", "rule"])
def test_autos_plan_is_the_chosen_algorithms_plan(conv_type, spec, policy, monkeypatch):
    """Bit-identical outputs, and the plan runs the chosen cell's own execute step on the
    chosen cell's own state (no dispatch left per call)."""
    monkeypatch.setenv(auto.POLICY_ENV, policy)
    monkeypatch.setattr(auto, "timings", fake_timer(winner=-1))   # not the rule's guess
    x, w = kernels.make_inputs(conv_type, spec, seed=1)
    planned = kernels.plan(conv_type, "auto", spec, w)
    chosen = auto.explain(conv_type, spec, "prepared").algorithm
    theirs = kernels.plan(conv_type, chosen, spec, w)
    np.testing.assert_array_equal(planned(x), theirs(x))
    execute, state = planned._state
    assert execute is theirs._execute and type(state) is type(theirs._state)
    y = kernels.run(conv_type, "auto", spec, x, w)
    np.testing.assert_array_equal(y, kernels.run(conv_type, auto.choose(conv_type, spec), spec,
                                                 x, w))
    if policy == "measure" and len(candidates.pruned(conv_type, spec, auto.CANDIDATES)) > 1:
        assert auto.explain(conv_type, spec).how == "measured"
        assert chosen == candidates.pruned(conv_type, spec, auto.CANDIDATES)[-1]


def test_measured_timings_keep_to_rounds_budget_and_drop():
    calls = {"a": 0, "b": 0}

    def a():
        calls["a"] += 1

    def b():
        calls["b"] += 1
        sum(range(20000))

    best = measured.timings({"a": a, "b": b}, rounds=5, drop_above=2.0)
    assert set(best) == {"a", "b"} and best["a"] < best["b"]
    assert calls["a"] == 6 and calls["b"] == 2     # warm-up + 5; warm-up + 1, then dropped
    calls.update(a=0, b=0)
    measured.timings({"a": a, "b": b}, rounds=5, budget_s=0.0)
    assert calls == {"a": 2, "b": 2}               # warm-up + the one round a budget allows


# --------------------------------------------------------------------------- the commands


def tiny_set(tmp_path) -> Path:
    shapes = tmp_path / "tiny.txt"
    shapes.write_text('conv2d mb1ic16ih8oc16oh8kh3ph1n"tiny:conv"\n'
                      'conv2d mb1ic16ih8oc16oh8kh3ph1n"tiny:same"\n'
                      'pointwise mb1ic16ih8oc24oh8kh1n"tiny:pw"\n', encoding="utf-8")
    return shapes


def test_tune_fills_the_wisdom(tmp_path, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(auto, "timings", fake_timer(winner=-1, seen=seen))
    shapes = tiny_set(tmp_path)
    assert cli.main(["tune", "--set", str(shapes), "--threads", "1", "--modes",
                     "call,prepared"]) == 0
    out = capsys.readouterr().out
    assert "[1/6] conv2d tiny:conv call 1t:" in out and "tuned 6 problems in" in out
    held = wisdom.load(auto.wisdom_path())
    conv = [e for e in held.entries.values() if e.key.conv_type == "conv2d"]
    assert {(e.key.mode, e.key.threads) for e in conv} == {("call", 1), ("prepared", 1)}
    assert all(e.algorithm == e.seconds[0][0] for e in held.entries.values())
    timed_before = len(seen)
    assert timed_before <= 4          # the repeated layer is not timed again
    # a second run finds everything in the wisdom and times nothing; --force times again
    assert cli.main(["tune", "--set", str(shapes), "--threads", "1"]) == 0
    assert len(seen) == timed_before and "(wisdom;" in capsys.readouterr().out
    assert cli.main(["tune", "--set", str(shapes), "--threads", "1", "--modes", "call",
                     "--force"]) == 0
    assert len(seen) > timed_before
    monkeypatch.setenv(auto.POLICY_ENV, "rule")
    assert cli.main(["tune", "--set", str(shapes), "--threads", "1"]) == 2
    assert auto.POLICY_ENV in capsys.readouterr().err


def test_wisdom_commands(tmp_path, capsys):
    from kernels.machine import machine_class

    wisdom.merge(auto.wisdom_path(), [entry(), entry(mode="prepared", algorithm="fft")],
                 machine_class())
    assert cli.main(["wisdom", "show"]) == 0
    out = capsys.readouterr().out
    assert "2 problems" in out and wisdom.problem_of(CONV) in out
    assert "direct 0.1 ms, im2col 0.3 ms" in out and "prepared" in out
    exported = tmp_path / "out" / "w.json"
    assert cli.main(["wisdom", "export", str(exported)]) == 0
    assert wisdom.load(exported).entries == wisdom.load(auto.wisdom_path()).entries
    assert cli.main(["wisdom", "forget"]) == 0
    assert not auto.wisdom_path().exists()
    capsys.readouterr()
    assert cli.main(["wisdom", "show"]) == 0 and "0 problems" in capsys.readouterr().out
    assert cli.main(["wisdom", "import", str(exported)]) == 0
    assert len(wisdom.load(auto.wisdom_path()).entries) == 2
    # another machine class's wisdom, an unknown algorithm, a missing file: refused
    foreign = tmp_path / "foreign.json"
    wisdom.merge(foreign, [entry()], "another-class")
    assert cli.main(["wisdom", "import", str(foreign)]) == 2
    assert "machine_class:" in capsys.readouterr().err
    odd = tmp_path / "odd.json"
    wisdom.merge(odd, [entry(algorithm="magic")], machine_class())
    assert cli.main(["wisdom", "import", str(odd)]) == 2
    assert "magic" in capsys.readouterr().err
    assert cli.main(["wisdom", "import", str(tmp_path / "none.json")]) == 2
    assert cli.main(["wisdom", "export"]) == 2
    assert "file:" in capsys.readouterr().err
