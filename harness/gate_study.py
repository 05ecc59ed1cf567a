"""How far can the regression gate be trusted? A/A runs and deliberately slowed runs.

    python -m harness.gate_study --runs 10 --out results/gate-study

1. sweeps the CI set once for a baseline (or takes `--baseline FILE`);
2. then, alternating so that a drift of the machine's load hits both kinds
   alike, sweeps it N times on the same commit (A/A) and N times with the
   test-only slowdown switch (`CONVBENCH_SLOWDOWN`, by default conv2d/direct
   1.3x and pointwise/direct 2x, see `harness.slowdown`);
3. compares every sweep with the baseline by `harness.compare` at each
   (threshold, alpha) of a grid and prints, per setting, the false-alarm
   rate (A/A sweeps that fail the gate, and slowed sweeps that flag a
   benchmark that was not slowed) and the detection rate of each slowed
   kernel (slowed sweeps where one of its benchmarks is flagged).

Every sweep file stays in `--out`, so `--analyse-only` re-reads them with
another grid without measuring again. Sweeps use the pyperf options given
after `--` (default: the CI gate's own, `CI_PYPERF_ARGS`).

`--ab` studies the gate `make bench-check` runs (`harness.abcheck`): each
trial times the set on three sides interleaved process by process, in two
worktrees of the committed HEAD: `ref`, `new` (the same code: the A/A
comparison is ref vs new) and `slow` (the `new` tree with the slowdown
switch: the A/B comparison is ref vs slow). Times are not normalised (one
machine, one sitting). As in the stored mode, "confirmed" judges each trial
with the next trial of its kind as the re-run that the gate makes of
flagged benchmarks.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import compare, slowdown, stats
from .machine import machine_class

DEFAULT_SLOW = "conv2d/direct=1.3,pointwise/direct=2.0"
# the options of `make bench-check`: one thread (a 2-thread kernel on a busy 2-core machine
# waits at every barrier for a descheduled thread, which is noise, not speed), and pyperf
# cut to 3 worker processes x 4 values of >= 20 ms each after 1 warm-up
CI_RUN_ARGS = "--threads 1"
CI_PYPERF_ARGS = ["--processes", "3", "--values", "4", "--warmups", "1", "--min-time", "0.02"]
THRESHOLDS = (1.05, 1.10, 1.15, 1.20, 1.25)
ALPHAS = (0.05, 0.01, 0.001, 0.0001)

_RUNNER_SCRIPT = """
import json, sys
from harness import plan, sweep
set_name, out, run_args, pyperf_args = sys.argv[1], sys.argv[2], *map(json.loads, sys.argv[3:])
algos = run_args[run_args.index("--algos") + 1] if "--algos" in run_args else None
res = sweep.sweep(plan.plan(set_name, algos=algos), out, pyperf_args)
sys.exit(res.exit_code)
"""


def sweep(path: Path, set_name: str, run_args: list[str], pyperf_args: list[str],
          slow: str | None) -> float:
    """One `convbench run` of the set into `path`; returns its wall time in seconds."""
    env = dict(os.environ)
    env.pop(slowdown.ENV, None)
    if slow:
        env[slowdown.ENV] = slow
    cmd = [sys.executable, "-m", "harness", "run", "--set", set_name, *run_args,
           "-o", str(path), *pyperf_args]
    if importlib.util.find_spec("harness.cli") is None:  # before the CLI: the runner's API
        cmd = [sys.executable, "-c", _RUNNER_SCRIPT, set_name, str(path),
               json.dumps(run_args), json.dumps(pyperf_args)]
    if path.exists():
        path.unlink()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not path.exists():
        tail = "\n".join(proc.stdout.splitlines()[-30:])
        raise RuntimeError(f"sweep failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return wall


def _slowed_names(names, slow: str) -> dict[str, float]:
    """benchmark name -> slowdown factor, for the benchmarks the switch slows."""
    rules = slowdown.parse(slow)
    out = {}
    for name in names:
        parts = name.split("/")
        if len(parts) < 3:
            continue
        cell = f"{parts[0]}/{parts[1]}"
        for pattern, f in rules:
            if fnmatch.fnmatchcase(cell, pattern):
                out[name] = f
                break
    return out


def _trials(out: Path, ab: bool) -> tuple[list, list]:
    """(A/A pairs, slowed pairs) of (base file, new file) found in `out`."""
    def suites(pattern):
        return sorted(p for p in out.glob(pattern) if not p.name.endswith(".skips.json"))

    if ab:
        refs = suites("ref-*.json")
        tags = [p.stem.split("-", 1)[1] for p in refs]
        aa = [(out / f"ref-{t}.json", out / f"new-{t}.json") for t in tags
              if (out / f"new-{t}.json").exists()]
        slowed = [(out / f"ref-{t}.json", out / f"slow-{t}.json") for t in tags
                  if (out / f"slow-{t}.json").exists()]
        return aa, slowed
    base = out / "baseline.json"
    if not base.exists():
        return [], []
    return ([(base, p) for p in suites("aa-*.json")], [(base, p) for p in suites("slow-*.json")])


def analyse(out: Path, slow: str, thresholds=THRESHOLDS, alphas=ALPHAS,
            normalise: str = "calib", estimator: str = "median", ab: bool = False) -> dict:
    aa, slowed = _trials(out, ab)
    if not (aa or slowed):
        raise SystemExit(f"{out}: needs " + ("ref-*/new-*/slow-*.json trials" if ab else
                                             "baseline.json and aa-*.json / slow-*.json sweeps"))
    tables = {}
    for base, path in aa + slowed:
        tables[path.name] = compare.compare_suites(base, path, threshold=1.0, alpha=0.5,
                                                   normalise=normalise,
                                                   estimator=estimator)[0]
    aa = [p for _, p in aa]
    slowed = [p for _, p in slowed]
    names = set()
    for df in tables.values():
        names.update(df["name"])
    slowed_names = _slowed_names(names, slow)
    kernels = sorted({"/".join(n.split("/")[:2]) for n in slowed_names})
    results = []
    for thr, alpha in itertools.product(thresholds, alphas):
        flagged = {}
        for path in aa + slowed:
            df = tables[path.name]
            flagged[path] = flagged_names(df, thr, alpha, estimator)
        row = dict(threshold=thr, alpha=alpha)
        # single: each sweep judged alone. confirmed: as `make bench-check` does, a flagged
        # sweep is re-run and only flags repeated by the re-run count; each sweep is judged
        # with the next sweep of its kind as its re-run (cyclically: 10 sweeps, 10 trials)
        for mode in ("single", "confirmed"):
            if mode == "single":
                aa_trials = [[p] for p in aa]
                slow_trials = [[p] for p in slowed]
            else:
                aa_trials = [[p, aa[(i + 1) % len(aa)]] for i, p in enumerate(aa)
                             ] if len(aa) > 1 else []
                slow_trials = [[p, slowed[(i + 1) % len(slowed)]] for i, p in enumerate(slowed)
                               ] if len(slowed) > 1 else []
            aa_fail = 0
            wrong = 0
            caught = {k: 0 for k in kernels}
            caught_all = 0
            for trial in aa_trials:
                aa_fail += bool(set.intersection(*(flagged[p] for p in trial)))
            for trial in slow_trials:
                hits = set.intersection(*(flagged[p] for p in trial))
                wrong += bool(hits - set(slowed_names))
                cells = {"/".join(n.split("/")[:2]) for n in hits & set(slowed_names)}
                for k in cells:
                    caught[k] += 1
                caught_all += cells == set(kernels)
            row[mode] = dict(aa_trials=len(aa_trials), aa_false_alarms=aa_fail,
                             slowed_trials=len(slow_trials), wrong_flags=wrong,
                             caught=caught, caught_all=caught_all)
        results.append(row)
    # the largest ratio each A/A sweep reached, and the smallest ratio of each slowed bench
    worst_aa = [float(tables[p.name].loc[tables[p.name]["gated"], "ratio"].max()) for p in aa]
    slow_ratios = {n: [float(tables[p.name].set_index("name").loc[n, "ratio"])
                       for p in slowed if n in set(tables[p.name]["name"])]
                   for n in sorted(slowed_names)}
    return dict(results=results, worst_aa_ratio=worst_aa, slowed_ratios=slow_ratios,
                slowed_benchmarks=slowed_names, n_benchmarks=len(names))


def flagged_names(df, threshold: float, alpha: float, estimator: str = "median") -> set:
    """The gated benchmarks of a comparison table that the gate's rule (`stats.decide`)
    calls slower at (threshold, alpha): the table's ratios and p-values do not depend on
    either, so one table serves the whole grid."""
    gated = df[df["gated"] & df["ratio"].notna()]
    return {name for name, ratio, p, nb, nn in zip(
        gated["name"], gated["ratio"], gated["p_value"], gated["n_base"], gated["n_new"])
        if stats.decide(ratio, p, stats.tested_size(int(nb), estimator),
                        stats.tested_size(int(nn), estimator), threshold=threshold,
                        alpha=alpha).verdict == stats.SLOWER}


def report(summary: dict, chosen: tuple[float, float] | None = None) -> str:
    lines = []
    res = summary["results"]
    kernels = sorted(res[0]["single"]["caught"]) if res else []
    lines.append(f"{summary['n_benchmarks']} benchmarks; slowed: "
                 + ", ".join(f"{n} x{f}" for n, f in sorted(summary["slowed_benchmarks"].items())))
    aa = summary["worst_aa_ratio"]
    if aa:
        lines.append("worst gated ratio per A/A sweep: " + ", ".join(f"{r:.3f}" for r in aa))
    for n, rs in summary["slowed_ratios"].items():
        lines.append(f"{n}: ratios " + ", ".join(f"{r:.2f}" for r in rs))
    for mode in ("single", "confirmed"):
        lines.append("")
        lines.append(f"-- {mode}: " + ("each sweep judged alone" if mode == "single" else
                                       "a flag counts only if a re-run (the next sweep "
                                       "of its kind) repeats it"))
        lines.append(f"{'threshold':>9} {'alpha':>7} {'A/A false alarms':>16} "
                     f"{'wrong flags':>11} " + " ".join(f"{k + ' caught':>24}" for k in kernels)
                     + f" {'all caught':>10}")
        for r in res:
            m = r[mode]
            mark = " <= chosen" if chosen and (r["threshold"], r["alpha"]) == chosen else ""
            n = m["slowed_trials"]
            lines.append(
                f"{r['threshold']:>9.2f} {r['alpha']:>7g} {m['aa_false_alarms']:>10}/"
                f"{m['aa_trials']:<5} {m['wrong_flags']:>6}/{n:<4} "
                + " ".join(f"{m['caught'][k]:>19}/{n:<4}" for k in kernels)
                + f" {m['caught_all']:>6}/{n:<3}{mark}")
    return "\n".join(lines)


def ab_trials(args, out: Path, run_args: list[str], pyperf_args: list[str],
              t_start: float) -> None:
    """`--runs` A/B trials: ref, new and slow sides of the committed HEAD, interleaved."""
    from harness import abcheck, plan
    from harness.calibrate import calibrate
    from harness.sweep import SOURCE_ROOT

    root = SOURCE_ROOT
    commit = abcheck.resolve(root, "HEAD")
    sides = (abcheck.Side("ref", abcheck.worktree(root, commit), commit,
                          drop_env=(slowdown.ENV,)),
             abcheck.Side("new", abcheck.worktree(root, commit, "study"), commit,
                          drop_env=(slowdown.ENV,)),
             abcheck.Side("slow", abcheck.worktree(root, commit, "study"), commit,
                          extra_env={slowdown.ENV: args.slow}))
    opts = argparse.ArgumentParser(add_help=False)
    opts.add_argument("--threads", nargs="+")
    opts.add_argument("--algos", nargs="+")
    opts.add_argument("--types", nargs="+")
    known, _ = opts.parse_known_args(run_args)
    the_plan = plan.plan(args.set, known.types, known.algos, threads=known.threads)
    calibration = calibrate()
    print(f"A/B study: {len(the_plan.jobs)} benchmarks x {args.runs} trials, commit "
          f"{commit[:12]}, machine class {machine_class()}", flush=True)
    for i in range(1, args.runs + 1):
        tag = f"{i:02d}"
        if all((out / f"{s.label}-{tag}.json").exists() for s in sides):
            continue
        if args.budget and time.perf_counter() - t_start > args.budget:
            print("time budget spent; analysing what was measured", flush=True)
            break
        with open(out / "trials.log", "a", encoding="utf-8") as log:
            res = abcheck.run_pass(the_plan, sides, out, tag, pyperf_args, calibration,
                                   err=log)
        verdicts = []
        for kind in ("new", "slow"):
            _, v = compare.compare_suites(out / f"ref-{tag}.json", out / f"{kind}-{tag}.json",
                                          args.threshold, args.alpha, normalise="none",
                                          estimator=args.estimator)
            verdicts.append(f"{kind}: geomean {v.geomean:.3f} "
                            + ("FAIL " + ", ".join(v.regressions) if v.failed else "pass"))
        print(f"trial {tag}: {res.seconds:.0f} s; " + "; ".join(verdicts), flush=True)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pyperf_args = None
    if "--" in argv:
        i = argv.index("--")
        argv, pyperf_args = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(prog="python -m harness.gate_study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=10, help="A/A sweeps and slowed sweeps, each")
    p.add_argument("--set", default="ci", help="shape set (default ci)")
    p.add_argument("--slow", default=DEFAULT_SLOW,
                   help=f"the slowdown switch for the slowed sweeps (default {DEFAULT_SLOW})")
    p.add_argument("--run-args", default=CI_RUN_ARGS,
                   help=f"`convbench run` options (default {CI_RUN_ARGS!r}), "
                        f"e.g. '--threads 1 --algos direct'")
    p.add_argument("--out", type=Path, default=Path("results/gate-study"))
    p.add_argument("--baseline", type=Path, help="use this suite as the baseline")
    p.add_argument("--analyse-only", action="store_true", help="re-read the sweeps in --out")
    p.add_argument("--ab", action="store_true",
                   help="study the A/B gate of make bench-check (ref/new/slow sides "
                        "interleaved in each trial) instead of stored-baseline sweeps")
    p.add_argument("--threshold", type=float, default=stats.DEFAULT_THRESHOLD)
    p.add_argument("--alpha", type=float, default=stats.DEFAULT_ALPHA)
    p.add_argument("--normalise", default="calib", choices=compare.NORMALISE)
    p.add_argument("--estimator", default="median", choices=tuple(stats.ESTIMATORS))
    p.add_argument("--budget", type=float, default=0,
                   help="stop starting sweeps after this many seconds (0: no limit)")
    args = p.parse_args(argv)
    pyperf_args = CI_PYPERF_ARGS if pyperf_args is None else pyperf_args
    slowdown.parse(args.slow)  # fail early on a bad switch
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    run_args = args.run_args.split()
    t_start = time.perf_counter()
    if args.ab and not args.analyse_only:
        ab_trials(args, out, run_args, pyperf_args, t_start)
    elif not args.analyse_only:
        base = out / "baseline.json"
        if args.baseline:
            base.write_bytes(args.baseline.read_bytes())
        elif not base.exists():
            wall = sweep(base, args.set, run_args, pyperf_args, None)
            print(f"baseline sweep: {wall:.0f} s", flush=True)
        for i in range(1, args.runs + 1):
            for kind, slow in (("aa", None), ("slow", args.slow)):
                path = out / f"{kind}-{i:02d}.json"
                if path.exists():
                    continue
                if args.budget and time.perf_counter() - t_start > args.budget:
                    print("time budget spent; analysing what was measured", flush=True)
                    break
                wall = sweep(path, args.set, run_args, pyperf_args, slow)
                _, v = compare.compare_suites(out / "baseline.json", path, args.threshold,
                                              args.alpha, normalise=args.normalise,
                                              estimator=args.estimator)
                print(f"{path.name}: {wall:.0f} s, geomean {v.geomean:.3f}, "
                      f"{'FAIL ' + ', '.join(v.regressions) if v.failed else 'pass'}",
                      flush=True)
    texts, summaries = [], {}
    chosen = (args.estimator, args.normalise)
    norms = ("none",) if args.ab else ("calib", "suite")
    if args.ab:
        chosen = (args.estimator, "none")
    modes = [chosen] + [m for m in itertools.product(("median", "min"), norms) if m != chosen]
    for est, norm in modes:
        key = f"estimator={est} normalise={norm}"
        summaries[key] = analyse(out, args.slow, normalise=norm, estimator=est, ab=args.ab)
        texts.append(f"== {key}\n" + report(summaries[key], chosen=(args.threshold, args.alpha)
                                             if (est, norm) == chosen else None))
    text = "\n\n".join(texts)
    print(text)
    (out / "summary.txt").write_text(text + "\n")
    (out / "summary.json").write_text(json.dumps(summaries, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
