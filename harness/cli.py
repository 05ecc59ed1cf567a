"""`convbench`: the command line of the suite.

    convbench list                         the type x algorithm matrix, with reasons
    convbench shapes NETWORK [--totals]    multiply-adds per layer / in total
    convbench verify --set NAME            every cell once against the reference
    convbench run --set NAME [...]         a pyperf sweep into results/
    convbench calibrate [--force]          sgemm GFLOP/s and memory bandwidth of this machine
    convbench tune --set NAME              measure auto's choices ahead of time (harness.tune)
    convbench wisdom show|export|import|forget   auto's measured choices (harness.wisdom)
    convbench merge A.json B.json -o OUT   join shard files
    convbench bench [--set quick]          calibrate, run with peers, build the report
    convbench ab --set ci [...]            the working tree vs the reference commit, A/B here
    convbench report ... / compare ...     the report builder and the comparison tool
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from harness.messages import clip
from harness.stats import DEFAULT_ALPHA, DEFAULT_THRESHOLD

# Options handed to pyperf unchanged (see `python -m pyperf --help`).
_PYPERF_FLAGS = ("--fast", "--rigorous", "--debug-single-value", "--verbose", "--quiet")
_PYPERF_VALUES = (("--processes", "-p", int, "N"), ("--values", "-n", int, "N"),
                  ("--warmups", "-w", int, "N"), ("--loops", "-l", int, "N"),
                  ("--min-time", None, float, "SECONDS"), ("--timeout", None, int, "SECONDS"),
                  ("--affinity", None, str, "CPUS"))

# What `convbench bench` uses when no pyperf option is given: 3 worker processes
# (plus pyperf's loop-calibration one), 3 values each, keeping `quick` short on 2 cores.
# `make bench`: resident workers (harness.resident), two processes of one warm-up and three
# values of at least 50 ms each: a quick set in minutes. `make bench-full` and `convbench run`
# keep pyperf's process per benchmark.
BENCH_PYPERF_DEFAULT = ["--processes", "2", "--values", "3", "--warmups", "1",
                        "--min-time", "0.05"]


def _add_pyperf_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("pyperf options (passed to pyperf unchanged)")
    for flag in _PYPERF_FLAGS:
        g.add_argument(flag, action="store_true", dest="pp_" + flag[2:].replace("-", "_"))
    for long, short, typ, metavar in _PYPERF_VALUES:
        names = [long] + ([short] if short else [])
        g.add_argument(*names, type=typ, default=None, metavar=metavar,
                       dest="pp_" + long[2:].replace("-", "_"))


def _pyperf_args(args) -> list[str]:
    out: list[str] = []
    for flag in _PYPERF_FLAGS:
        if getattr(args, "pp_" + flag[2:].replace("-", "_")):
            out.append(flag)
    for long, *_ in _PYPERF_VALUES:
        v = getattr(args, "pp_" + long[2:].replace("-", "_"))
        if v is not None:
            out.extend((long, str(v)))
    return out


def _add_selection(p: argparse.ArgumentParser, peers_default=None) -> None:
    p.add_argument("--set", dest="set_name", help="shape set (convbench list shows them)")
    p.add_argument("--types", nargs="+", metavar="TYPE", help="only these conv types")
    p.add_argument("--algos", nargs="+", metavar="ALGO", help="only these algorithms")
    p.add_argument("--peers", nargs="+", default=peers_default, metavar="PEER",
                   help="peers timed as extra algorithms: torch, scipy, onnxruntime, "
                        "openvino, litert, ncnn, mnn")
    p.add_argument("--rtol", type=float, default=None,
                   help="verification tolerance (default: the algorithm's accuracy bound, "
                        "kernels.accuracy)")


def _add_layouts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layouts", nargs="+", default=None, metavar="LAYOUT",
                   help="memory layouts of input and output, e.g. nchw nhwc: `nchw` (the "
                        "default) or `nhwc` channels-last (NDHWC in 3-D); names of nhwc "
                        "benchmarks end in @nhwc")


def _add_modes(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--modes", nargs="+", default=[default], metavar="MODE",
                   help="timing modes, e.g. call,prepared: `call` times kernels.run on raw "
                        "weights, `prepared` a plan whose weight work is done before "
                        f"timing (default {default})")


def _add_timer(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--timer", choices=("pyperf", "resident"), default=default,
                   help="pyperf: a pyperf run (its own worker processes) per benchmark; "
                        "resident: a few long-lived workers time one benchmark after another "
                        f"(harness.resident; much faster, same results format) (default "
                        f"{default})")


def expected_seconds(the_plan, pyperf_args, timer: str) -> float:
    """A rough forecast of a sweep's time, printed at its start: per benchmark, the timed
    values at their minimum time and each process's start-up (pyperf) or set-up
    (resident), from the process costs measured on 2-core machines."""
    from harness.resident import options_from

    o = options_from(pyperf_args)
    timed = o["processes"] * (o["warmups"] + o["values"] + 2) * o["min_time"]
    if timer == "pyperf":  # a pyperf process, a calibration worker, the timing workers
        per = timed + 1.5 + o["processes"] * 0.8
    else:
        per = timed + 0.3
    return len(the_plan.jobs) * per


def _fmt_minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convbench",
        description="Numba convolution kernels benchmarked with pyperf against oneDNN.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("list", help="the type x algorithm matrix, with the reason of each gap")

    p = sub.add_parser("shapes", help="multiply-adds of a network's layers")
    p.add_argument("network")
    p.add_argument("--totals", action="store_true",
                   help="the network totals and the published figure")

    p = sub.add_parser("verify", help="run every cell of a set once against the reference")
    _add_selection(p)
    _add_layouts(p)
    _add_modes(p, "call,prepared")

    p = sub.add_parser("run", help="time a shape set with pyperf")
    _add_selection(p)
    _add_layouts(p)
    _add_modes(p, "call")
    p.add_argument("--threads", nargs="+", metavar="N",
                   help="thread counts, e.g. 1,2 (default: all cores)")
    p.add_argument("-o", "--output", help="results file (default results/HOST-DATE-SET.json)")
    p.add_argument("--resume", metavar="FILE", help="continue FILE, skipping its benchmarks")
    p.add_argument("--shard", metavar="I/N", help="run the I-th of N deterministic shares")
    p.add_argument("--dry-run", action="store_true", help="list the benchmarks and skips only")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="farm the sweep out as shards to the Dask scheduler at ADDRESS "
                        "(e.g. tcp://host:8786; harness.distributed)")
    p.add_argument("--shards", type=int, metavar="N",
                   help="with --dask: shards to cut the sweep into (default: 4 a worker)")
    p.add_argument("--retries", type=int, default=2,
                   help="with --dask: times a failed shard is retried (default %(default)s)")
    p.add_argument("--machine-class", metavar="CLASS",
                   help="with --dask: run on the workers of this machine class only")
    _add_timer(p, "pyperf")
    _add_pyperf_options(p)

    p = sub.add_parser("calibrate", help="measure sgemm GFLOP/s and memory bandwidth (cached)")
    p.add_argument("--force", action="store_true", help="measure again")
    p.add_argument("--quick", action="store_true", help="small sizes (a rough figure)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("tune", help="fill auto's wisdom for a shape set ahead of time, or "
                                    "write a tuning table (harness.tune)")
    p.add_argument("--from", dest="from_files", nargs="+", metavar="RESULTS",
                   help="build it from these sweep results (no timing)")
    p.add_argument("--mode", default="call", help="with --from: the timing mode to read "
                                                  "(default %(default)s)")
    p.add_argument("--set", dest="set_name", help="shape set to time in this process")
    p.add_argument("--types", nargs="+", metavar="TYPE", help="only these conv types")
    p.add_argument("--threads", nargs="+", metavar="N",
                   help="thread count to time with (default: all cores; the largest given)")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed calls per cell, the fastest kept (default %(default)s)")
    _add_modes(p, "call,prepared")
    p.add_argument("--force", action="store_true",
                   help="with --set: measure problems the wisdom already holds again")
    p.add_argument("-o", "--output",
                   help="write a tuning table to this file instead of filling the wisdom "
                        "(with --from: default results/tuning/<machine class>.json)")

    p = sub.add_parser("wisdom", help="auto's measured choices on this machine class "
                                      "(harness.wisdom)")
    p.add_argument("action", choices=("show", "export", "import", "forget"),
                   help="show: per problem the choice and the candidates' times; "
                        "export/import FILE; forget: delete it")
    p.add_argument("file", nargs="?", help="with export and import: the wisdom file")

    p = sub.add_parser("merge", help="join shard result files")
    p.add_argument("inputs", nargs="+")
    p.add_argument("-o", "--output", required=True)

    p = sub.add_parser("bench", help="calibrate, run a set with the peers, build the report")
    p.add_argument("--set", dest="set_name", default="quick")
    p.add_argument("--types", nargs="+", metavar="TYPE", help="only these conv types")
    p.add_argument("--algos", nargs="+", metavar="ALGO", help="only these algorithms")
    p.add_argument("--threads", nargs="+", metavar="N")
    p.add_argument("-o", "--output")
    p.add_argument("--resume", metavar="FILE")
    p.add_argument("--no-peers", action="store_true", help="time the kernels only")
    _add_layouts(p)
    _add_modes(p, "call,prepared")
    _add_timer(p, "resident")
    _add_pyperf_options(p)

    p = sub.add_parser(
        "ab", help="time the working tree against a reference commit here, interleaved, and "
                   "gate on regressions (make bench-check)",
        description="The A/B speed gate: every benchmark of the set timed in a worktree of "
                    "the reference commit and in this tree, worker process by worker process "
                    "(ABAB...), then compared (ratio of minimums, Mann-Whitney U); flagged "
                    "benchmarks are timed again and only regressions both passes show fail "
                    "(exit 1). CONVBENCH_SLOWDOWN slows this tree's side only.")
    _add_selection(p)
    _add_layouts(p)
    p.add_argument("--threads", nargs="+", metavar="N", help="thread counts (default: all)")
    p.add_argument("--ref", metavar="REV",
                   help="reference commit (default: the one in results/baseline/reference.txt)")
    p.add_argument("--out", default="results/bench-check",
                   help="folder for the suites and check.md (default results/bench-check)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help="ratio above which a significant slowdown fails "
                        f"(default {DEFAULT_THRESHOLD})")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                   help=f"Mann-Whitney U significance level (default {DEFAULT_ALPHA})")
    p.add_argument("--estimator", choices=("min", "median"), default="min",
                   help="ratio of minimums (default) or medians")
    _add_pyperf_options(p)

    sub.add_parser("report", help="build the HTML report (harness.report)", add_help=False)
    sub.add_parser("compare", help="compare result files (harness.compare)", add_help=False)
    sub.add_parser("history", help="speed over commits: add results, report steps "
                                   "(harness.history)", add_help=False)
    return parser


# --------------------------------------------------------------------------- list


def format_matrix() -> str:
    """The type x algorithm matrix: 'yes' or a numbered reason for each cell."""
    import kernels
    from kernels import registry

    algos = list(registry.ALGORITHMS)
    reasons: dict[str, int] = {}
    rows = []
    for t in kernels.CONV_TYPES:
        row = [t]
        for a in algos:
            why = registry.cell_reason(t, a)
            if why is None:
                row.append("yes")
            else:
                row.append(f"[{reasons.setdefault(why, len(reasons) + 1)}]")
        rows.append(row)
    header = ["type"] + algos
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    runs = sum(r.count("yes") for r in rows)
    lines.append("")
    lines.append(f"{runs} of {len(rows) * len(algos)} cells run; "
                 "yes = runs (some specs may still be refused by supports()); [n] = reason:")
    for why, i in reasons.items():
        lines.append(f"  [{i}] {why}")
    from harness.peers import PEERS, peer_missing, peer_modes

    lines.append("")
    lines.append("peers (timed as extra algorithms with --peers; their timing modes):")
    for peer in PEERS:
        why = peer_missing(peer)
        lines.append(f"  {peer} ({', '.join(peer_modes(peer))}): "
                     + (why or "installed"))
    try:
        import harness.shapes as shapes

        if hasattr(shapes, "available_sets"):
            lines.append("shape sets: " + ", ".join(shapes.available_sets()))
    except Exception as exc:  # the shape sets are optional for the matrix
        lines.append(f"shape sets: unavailable ({exc})")
    return "\n".join(lines)


def cmd_list(args) -> int:
    print(format_matrix())
    return 0


# --------------------------------------------------------------------------- shapes


def _shapes_module():
    import harness.shapes as shapes

    if not hasattr(shapes, "load_set"):
        raise ValueError("harness.shapes is not available yet")
    return shapes


def _layer_table(network: str):
    """Rows of (network, layer, conv_type, spec, repeat, each, times repeat, counted) + total."""
    shapes = _shapes_module()
    if hasattr(shapes, "totals"):
        df = shapes.totals(network)
        rows = [(str(r.network), str(r.layer), str(r.conv_type), str(r.spec), int(r.repeat),
                 r.multiply_adds_each, int(r.multiply_adds), bool(r.in_total))
                for r in df.itertuples(index=False)]
        published = df.attrs.get("published")
        if published is None and hasattr(shapes, "published_total"):
            published = shapes.published_total(network)
        return rows[:-1], rows[-1][6], published
    from kernels.counts import direct_multiplications

    rows = []
    for layer in shapes.load_set(network):
        each = int(direct_multiplications(layer.conv_type, layer.spec))
        rep = int(getattr(layer, "repeat", 1) or 1)
        rows.append((layer.network, layer.name, layer.conv_type, str(layer.spec), rep, each,
                     each * rep, True))
    published = shapes.published_total(network) if hasattr(shapes, "published_total") else None
    return rows, sum(r[6] for r in rows if r[7]), published


def _published_line(total: int, published) -> str:
    if published is None:
        return "published: no published figure for this set"
    value = getattr(published, "value", published)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return f"published: {published}"
    fc = float(getattr(published, "fc", 0.0) or 0.0)
    conv = value - fc
    line = f"published: {value / 1e9:.4g} G multiply-adds"
    if getattr(published, "source", ""):
        line += f" ({published.source})"
    if fc:
        line += f"; {fc / 1e9:.4g} G of it not convolution, so {conv / 1e9:.4g} G conv-only"
    ratio = total / conv if conv else float("nan")
    line += f"\nours / published conv-only = {ratio:.4f}"
    tol = getattr(published, "tolerance", None)
    if tol is not None:
        verdict = "agrees" if abs(ratio - 1) <= tol else "DISAGREES"
        line += f" ({verdict} within the file's tolerance of {tol:.0%})"
    return line


def cmd_shapes(args) -> int:
    rows, total, published = _layer_table(args.network)
    if not args.totals:
        header = ("layer", "type", "spec", "repeat", "multiply-adds", "x repeat")
        table = [(f"{n}:{la}", t, sp, str(rep), f"{int(each):,}",
                  f"{tot:,}" + ("" if counted else " (view, not in total)"))
                 for n, la, t, sp, rep, each, tot, counted in rows]
        widths = [max(len(r[i]) for r in table + [header]) for i in range(len(header))]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
        for r in table:
            print("  ".join(c.rjust(w) if i >= 3 else c.ljust(w)
                            for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    counted = [r for r in rows if r[7]]
    print(f"total: {total:,} multiply-adds ({total / 1e9:.4g} G) in {len(counted)} layer lines, "
          f"{sum(r[4] for r in counted)} layers with repeats (direct count, padded taps "
          "included)")
    print(_published_line(total, published))
    return 0


# --------------------------------------------------------------------------- verify


def cmd_verify(args) -> int:
    from harness.plan import plan as make_plan
    from harness.verify import check_cell

    if not args.set_name:
        print("convbench verify: --set is required", file=sys.stderr)
        return 2
    plan = make_plan(args.set_name, args.types, args.algos, args.peers or (),
                     threads=(1,), modes=args.modes, layouts=args.layouts)
    rows, failed = [], 0
    checks: dict = {}
    for i, job in enumerate(plan.jobs, 1):
        print(f"[{i}/{len(plan.jobs)}] {job.name}", file=sys.stderr, flush=True)
        key = (job.conv_type, job.algorithm, str(job.spec), job.mode, job.layout)
        if key not in checks:
            checks[key] = check_cell(job.conv_type, job.algorithm, job.spec, args.rtol,
                                     job.mode, layout=job.layout)
        c = checks[key]
        failed += not c["ok"]
        rows.append((job.name, f"{c['max_error']:.2e}", f"{c['tolerance']:.0e}",
                     f"{c['first_call_s']:.2f}", "ok" if c["ok"] else "FAIL " + c["error"]))
    header = ("benchmark", "max rel error", "tolerance", "first call s", "status")
    widths = [max([len(header[i])] + [len(r[i]) for r in rows]) for i in range(4)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths + [0])).rstrip())
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths + [0])).rstrip())
    print(f"\n{len(rows) - failed} passed, {failed} failed, {len(plan.skips)} cells skipped "
          "(do not apply)")
    for e in plan.skips:
        print(f"  skipped {e['name']}: {e['reason']}")
    return 1 if failed else 0


# --------------------------------------------------------------------------- run


def _run(args, peers, pyperf_args) -> tuple[int, Path | None]:
    from harness import plan, results, sweep

    set_name = args.set_name
    if args.resume:
        output = Path(args.resume)
        if args.output and Path(args.output) != output:
            print("convbench run: --resume writes to its own file; drop -o", file=sys.stderr)
            return 2, None
        if not output.exists():
            raise ValueError(f"--resume {clip(output, 150)}: no such file (a new sweep is "
                             "--set NAME, with -o FILE to name its results)")
        results.require_regular(output, "results file")
        if not set_name and output.is_file() and output.stat().st_size:
            md = results.load_suite(output).get_metadata()
            set_name = md.get("set")
            if set_name is None:
                options = sweep.recorded_options(results.load_suite(output)) or {}
                set_name = options.get("set")
    else:
        output = None
    if not set_name:
        print("convbench run: --set is required", file=sys.stderr)
        return 2, None
    shard = plan.parse_shard(getattr(args, "shard", None))
    the_plan = plan.plan(set_name, getattr(args, "types", None),
                         getattr(args, "algos", None), peers, threads=args.threads,
                         shard=shard, modes=getattr(args, "modes", None),
                         layouts=getattr(args, "layouts", None))
    if getattr(args, "dry_run", False):
        for job in the_plan.jobs:
            print(job.name)
        for e in the_plan.skips:
            print(f"skip {e['name']}: {e['reason']}")
        print(f"{len(the_plan.jobs)} benchmarks, {len(the_plan.skips)} skipped cells",
              file=sys.stderr)
        return 0, None
    if output is None:
        output = Path(args.output) if args.output else results.default_output(set_name,
                                                                                shard=shard)
    if output.exists() and not args.resume:
        raise ValueError(f"{clip(output, 150)} already exists: pass --resume to "
                         "continue it")
    timer = getattr(args, "timer", None) or "pyperf"
    options = sweep.sweep_options(the_plan, pyperf_args, getattr(args, "types", None),
                                  getattr(args, "algos", None), peers, shard,
                                  getattr(args, "rtol", None), timer=timer)
    if getattr(args, "dask", None):
        return _run_on_dask(args, set_name, peers, output, options), output
    from harness.calibrate import calibrate

    # the lock first, held to the end: a second sweep of this file stops before it
    # calibrates, so neither measures the machine while the other loads it
    with results.results_lock(output):
        if args.resume:
            sweep.check_resume(output, options)
        calibration = calibrate()
        print(f"calibration: sgemm {calibration['calib_sgemm_gflops_1t']} GFLOP/s (1 thread), "
              f"{calibration['calib_sgemm_gflops']} GFLOP/s (all), triad "
              f"{calibration['calib_bandwidth_gbs']} GB/s", file=sys.stderr)
        print(f"{len(the_plan.jobs)} benchmarks, {len(the_plan.skips)} skipped cells -> "
              f"{output}", file=sys.stderr)
        print(f"expect about {_fmt_minutes(expected_seconds(the_plan, pyperf_args, timer))} "
              f"(an estimate: {timer} timer; cells that compile or run long take more)",
              file=sys.stderr)
        res = sweep.sweep(the_plan, output, pyperf_args, resume=bool(args.resume),
                          calibration=calibration, rtol=getattr(args, "rtol", None),
                          command=getattr(args, "command_line", ""), options=options,
                          timer=timer)
    for line in sweep.summary_lines(res):
        print(line)
    return res.exit_code, output


def _run_on_dask(args, set_name: str, peers, output: Path, options: dict) -> int:
    """The sweep as shards on a Dask cluster (harness.distributed); its exit code."""
    from harness import distributed, plan

    if getattr(args, "shard", None):
        raise ValueError("--shard: --dask cuts the sweep into shards itself (--shards N)")
    run_args = distributed.client_argv(getattr(args, "argv", [])[1:])
    if args.set_name is None:  # resumed: the set comes from the file
        run_args = ["--set", set_name, *run_args]

    def plan_of(shard):
        return plan.plan(set_name, getattr(args, "types", None), getattr(args, "algos", None),
                         peers, threads=args.threads, shard=shard,
                         modes=getattr(args, "modes", None),
                         layouts=getattr(args, "layouts", None))

    res = distributed.run(args.dask, run_args, plan_of, output, options, shards=args.shards,
                          resume=bool(args.resume), machine_class=args.machine_class,
                          retries=args.retries)
    for line in res.lines():
        print(line)
    return res.exit_code


def cmd_run(args) -> int:
    code, _ = _run(args, args.peers or (), _pyperf_args(args))
    return code


# --------------------------------------------------------------------------- calibrate, merge


def cmd_calibrate(args) -> int:
    from harness.calibrate import calibrate
    from harness.machine import machine_class
    from kernels.target import TARGET

    result = calibrate(force=args.force, quick=args.quick)
    result = dict(result, **TARGET.describe(), machine_class=machine_class())
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    print(f"cpu:        {result['cpu_model']} ({result.get('cpu_count', '?')} cpus), "
          f"machine class {result['machine_class']}")
    print(f"kernels:    {TARGET.isa} ({TARGET.vector_bits}-bit vectors, {TARGET.registers} "
          f"registers, Numba CPU {TARGET.cpu_name}"
          + (", chosen by CONVBENCH_ISA" if TARGET.overridden else "") + ")"
          + (f"; register blocks {result['blocks']}" if result.get("blocks") else ""))
    from kernels.target import CACHES

    print(f"caches:     L1d {CACHES.l1d >> 10} KiB, L2 {CACHES.l2 >> 10} KiB, L3 "
          f"{CACHES.l3 >> 20} MiB shared ({CACHES.source}; the blocking budgets scale "
          f"with them)")
    print(f"sgemm:      {result['calib_sgemm_gflops_1t']:.1f} GFLOP/s on 1 thread, "
          f"{result['calib_sgemm_gflops']:.1f} GFLOP/s on all threads")
    print(f"bandwidth:  {result['calib_bandwidth_gbs']:.1f} GB/s (STREAM triad)")
    print(f"measured:   {result.get('date', '?')}; cached in {result.get('cache_path', '')}")
    return 0


def cmd_tune(args) -> int:
    from harness import tune

    return tune.run(args)


def cmd_wisdom(args) -> int:
    from harness import wisdom

    return wisdom.run(args)


def cmd_merge(args) -> int:
    from harness import results

    n, k = results.merge(args.inputs, args.output)
    print(f"{n} benchmarks -> {args.output}; {k} skipped/failed cells -> "
          f"{results.sidecar_path(args.output)}")
    return 0


# --------------------------------------------------------------------------- bench


def cmd_bench(args) -> int:
    from harness.peers import PEERS, peer_missing

    peers = ()  # (the sweep calibrates, under its file's lock, and prints the figures)
    if not args.no_peers:
        # every peer: one that is not installed is planned as a skip whose reason says how
        # to install it, so the report shows which engines were missing
        peers = PEERS
        for peer in PEERS:
            why = peer_missing(peer)
            if why:
                print(f"{why}: no {peer} peer")
    pyperf_args = _pyperf_args(args) or list(BENCH_PYPERF_DEFAULT)
    code, output = _run(args, peers, pyperf_args)
    if output is None or not output.exists():
        return code or 1
    html = Path("reports") / (output.stem + ".html")
    try:  # the report's Winograd error-vs-tile-size plot reads this file beside the results
        from kernels.accuracy_table import channel_sweep, write_csv

        accuracy = output.with_name(output.stem + ".accuracy.csv")
        write_csv(channel_sweep(), accuracy)
        print(f"accuracy: {accuracy}")
    except Exception as exc:  # an extra section, never a reason to lose the sweep
        print(f"accuracy: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
    try:  # the report's numeric-range table reads this file beside the results
        from harness.checks.numeric_range import table

        numerics = output.with_name(output.stem + ".numerics.json")
        numerics.write_text(json.dumps(table(), indent=1) + "\n", encoding="utf-8")
        print(f"numerics: {numerics}")
    except Exception as exc:  # an extra section, never a reason to lose the sweep
        print(f"numerics: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
    try:
        report = importlib.import_module("harness.report")
    except ImportError as exc:
        print(f"report: skipped, harness.report is not available ({exc})")
        report = None
    if report is not None and not hasattr(report, "build_report"):
        print("report: skipped, harness.report has no build_report yet")
    elif report is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        try:
            report.build_report(str(output), str(html))
            print(f"report:  {html}")
        except Exception as exc:  # the timings are safe on disk; say what went wrong
            print(f"report: failed ({type(exc).__name__}: {exc})", file=sys.stderr)
            code = code or 1
    print(f"results: {output}")
    return code


# --------------------------------------------------------------------------- ab


def cmd_ab(args) -> int:
    from harness import abcheck, plan

    if not args.set_name:
        print("convbench ab: --set is required", file=sys.stderr)
        return 2
    # `call` mode only: the reference commit's worker may predate timing modes (it would
    # time a `prepared` job as `call`), and the gate's names must match across commits
    # --layouts nhwc needs a reference commit that knows layouts: an older worker ignores
    # the job's layout and would time NCHW under the @nhwc name
    the_plan = plan.plan(args.set_name, args.types, args.algos, args.peers or (),
                         threads=args.threads, layouts=args.layouts)
    try:
        res = abcheck.check(the_plan, ref=args.ref, out=Path(args.out),
                            pyperf_args=_pyperf_args(args), threshold=args.threshold,
                            alpha=args.alpha, estimator=args.estimator, rtol=args.rtol)
    except abcheck.ReferenceUnavailable as exc:
        print(f"convbench ab: SKIPPED, no reference to compare with: {exc}")
        return 0
    except abcheck.ReferenceNotAncestor as exc:
        print(f"convbench ab: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"convbench ab: interrupted; what was timed is in {args.out}", file=sys.stderr)
        return 130
    print(res.markdown)
    return res.exit_code


# --------------------------------------------------------------------------- dispatch


def _delegate(module: str, argv: list[str]) -> int:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        print(f"convbench: {module} is not available ({exc})", file=sys.stderr)
        return 2
    if not hasattr(mod, "main"):
        print(f"convbench: {module} has no main() yet", file=sys.stderr)
        return 2
    code = mod.main(argv)
    return int(code or 0)


COMMANDS = {"list": cmd_list, "shapes": cmd_shapes, "verify": cmd_verify, "run": cmd_run,
            "calibrate": cmd_calibrate, "tune": cmd_tune, "merge": cmd_merge, "bench": cmd_bench,
            "ab": cmd_ab, "wisdom": cmd_wisdom}


def _reexec_for_isa(argv: list[str]) -> None:
    """Under CONVBENCH_ISA, restart with the peers' and the BLAS's ISA variables set: they
    are read when the libraries load, before any code here could set them."""
    import os

    if not os.environ.get("CONVBENCH_ISA"):
        return
    from kernels.target import TARGET, peer_environment

    missing = {k: v for k, v in peer_environment(TARGET.isa).items() if k not in os.environ}
    if missing:
        os.execve(sys.executable, [sys.executable, "-m", "harness", *argv],
                  {**os.environ, **missing})


def main(argv=None) -> int:
    if argv is None:  # the command line, not a test: may restart under CONVBENCH_ISA
        _reexec_for_isa(sys.argv[1:])
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("report", "compare", "history"):
        return _delegate(f"harness.{argv[0]}", argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    args.command_line = " ".join(["convbench", *argv])
    args.argv = argv
    try:
        return COMMANDS[args.command](args)
    except (ValueError, OverflowError) as exc:
        print(f"convbench {args.command}: {clip(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user gave that cannot be read or written
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"convbench {args.command}: {clip(where + (exc.strerror or str(exc)))}",
              file=sys.stderr)
        return 2


