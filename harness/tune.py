"""`convbench tune`: auto's choices ahead of time, per machine class.

    convbench tune --set resnet50 [--threads N] [--modes call,prepared] [--force]
        fills this machine class's wisdom (kernels.auto.wisdom): each layer's problem
        measured here as auto would on its first call, one progress line per problem
        with the choice, the candidates' times and what choosing cost, then the total
    convbench tune --from RESULTS.json [...]    a tuning table from a sweep's timings
    convbench tune --set resnet50 -o FILE       a tuning table timed in-process: min of
                                                --repeats calls of every algorithm

`--from` takes every benchmark of ours (peers and auto itself left out) in one timing
mode (default `call`) and keeps, per (type, problem), the fastest algorithm at the
largest thread count measured: the pyperf medians the report shows. Without it, each
layer of the set is timed here with every algorithm that supports it, the minimum of
`--repeats` calls after one warm-up call; that is ours against ours only (torch never
runs in this process), which is all a choice between our algorithms needs.

The table goes to `results/tuning/<machine class>.json` under the repository root
(`-o` elsewhere), the class of the results file's machine or of this one; its format
is `kernels.auto.table`'s.
"""

from __future__ import annotations

import sys
import time

import kernels
from kernels import auto
from kernels.auto.table import Table


def rows_from_frame(frame, mode: str = "call") -> list[tuple]:
    """(conv_type, spec, threads, algorithm, seconds) of our algorithms' benchmarks in
    `mode` (a harness.report.load frame)."""
    if frame.empty:
        return []
    ours = frame[frame["algorithm"].isin(auto.CANDIDATES) & (frame["mode"] == mode)
                 & frame["median"].notna()]  # a benchmark of warm-ups only has no time
    return list(zip(ours["conv_type"], ours["spec"], ours["threads"], ours["algorithm"],
                    ours["median"]))


def table_from_results(paths, mode: str = "call") -> Table:
    from harness.report.load import load_results
    from harness.results import load_suite, suite_class

    res = load_results(paths)
    classes = sorted({suite_class(load_suite(p), p) for p in paths})
    if len(classes) > 1:
        raise ValueError(f"--from: the files are of {len(classes)} machine classes "
                         f"({', '.join(classes)}); a table is of one")
    rows = rows_from_frame(res.frame, mode)
    if not rows:
        raise ValueError(f"--from: no timed benchmark of ours in {mode} mode in "
                         + ", ".join(str(p) for p in paths))
    return auto.build(rows, machine_class=classes[0],
                      source="convbench tune --from " + " ".join(str(p) for p in paths))


def time_layer(conv_type: str, algorithm: str, spec, repeats: int) -> float:
    """Seconds of the fastest of `repeats` calls, after one warm-up (compile) call."""
    x, weights = kernels.make_inputs(conv_type, spec, seed=0)
    kernels.run(conv_type, algorithm, spec, x, weights)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        kernels.run(conv_type, algorithm, spec, x, weights)
        best = min(best, time.perf_counter() - start)
    return best


def measured_table(layers, threads: int, repeats: int = 5, err=sys.stderr) -> Table:
    """Time every candidate algorithm on each layer in this process (see the module)."""
    import numba

    from harness.machine import machine_class

    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    rows = []
    try:
        for layer in layers:
            for algorithm in auto.CANDIDATES:
                if kernels.supports(layer.conv_type, algorithm, layer.spec):
                    continue
                seconds = time_layer(layer.conv_type, algorithm, layer.spec, repeats)
                print(f"  {layer.conv_type} {layer.label} {algorithm}: "
                      f"{seconds * 1e3:.3f} ms", file=err)
                rows.append((layer.conv_type, layer.spec, threads, algorithm, seconds))
    finally:
        numba.set_num_threads(before)
    return auto.build(rows, machine_class=machine_class(),
                      source=f"convbench tune, in-process min of {repeats}, {threads} threads")


def fill_wisdom(layers, threads: int, modes, force: bool = False, rounds: int = 5,
                out=None) -> float:
    """Measure each (layer, mode) problem the wisdom lacks (`force`: all of them) at
    `threads`, as auto would on its first call; returns the seconds it cost in all."""
    import numba

    if auto.policy() == "rule":
        raise ValueError(f"{auto.POLICY_ENV}: is 'rule', which reads no wisdom; unset it "
                         "to tune")
    out = out or sys.stdout
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    problems = [(layer, mode) for layer in layers for mode in modes]
    total = 0.0
    try:
        for i, (layer, mode) in enumerate(problems, 1):
            start = time.perf_counter()
            choice, entry = auto.tune(layer.conv_type, layer.spec, mode, force, rounds)
            cost = time.perf_counter() - start
            total += cost
            times = ", ".join(f"{a} {s * 1e3:.4g} ms" for a, s in entry.seconds) \
                if entry is not None else "nothing to time"
            print(f"[{i}/{len(problems)}] {layer.conv_type} {layer.label} {mode} "
                  f"{threads}t: {choice.algorithm or '-'} ({choice.how}; {times}) "
                  f"{cost:.2f} s", file=out, flush=True)
    finally:
        numba.set_num_threads(before)
    print(f"tuned {len(problems)} problems in {total:.1f} s; wisdom: {auto.wisdom_path()}",
          file=out)
    return total


def format_table(table: Table) -> str:
    """One line per entry: type, problem, threads, the choice, its time, the runner-up."""
    lines = [f"tuning table of {table.machine_class or 'an unnamed machine class'} "
             f"({len(table.entries)} problems; {table.source})"]
    head = ("type", "problem", "threads", "auto", "ms", "next best")
    rows = []
    for e in sorted(table.entries.values(), key=lambda e: (e.conv_type, e.problem)):
        seconds = dict(e.seconds)
        nxt = e.seconds[1] if len(e.seconds) > 1 else None
        rows.append((e.conv_type, e.problem, str(e.threads), e.algorithm,
                     f"{seconds.get(e.algorithm, float('nan')) * 1e3:.4g}",
                     f"{nxt[0]} x{nxt[1] / seconds[e.algorithm]:.2f}" if nxt else "-"))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    return "\n".join(lines)


def run(args) -> int:
    """`convbench tune` (argparse namespace of harness.cli)."""
    from pathlib import Path

    from harness.plan import load_layers, parse_list, parse_threads

    if args.from_files:
        table = table_from_results([Path(p) for p in args.from_files], args.mode)
    else:
        if not args.set_name:
            raise ValueError("--set: name a shape set to time, or give --from RESULTS.json")
        if args.repeats < 1:
            raise ValueError(f"--repeats: must be at least 1, got {args.repeats}")
        types = parse_list(args.types)
        layers = [la for la in load_layers(args.set_name)
                  if not types or la.conv_type in types]
        threads = max(parse_threads(args.threads))
        if not args.output:  # the wisdom, not a table
            from harness.modes import parse_modes

            fill_wisdom(layers, threads, parse_modes(args.modes), args.force, args.repeats)
            return 0
        table = measured_table(layers, threads, args.repeats)
    output = Path(args.output) if args.output else \
        auto.default_table_path().with_name(f"{table.machine_class}.json")
    auto.save(table, output)
    print(format_table(table))
    print(f"wrote {output}")
    return 0
