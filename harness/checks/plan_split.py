"""How much of each call is weight-only work: `kernels.run` against a prepared `kernels.plan`.

In-process, minimum of `--reps` calls each (after one warm-up call), so a rough
figure on a busy machine, not a benchmark: the sweeps' `prepared` mode measures
properly. Prints per (layer, algorithm) the call time, the prepared call time,
the share of the call the plan saves, and how long planning took.

    python -m harness.checks.plan_split [--reps 20] [--algos direct im2col ...]
"""

from __future__ import annotations

import argparse
import time

import kernels

LAYERS = (
    ("conv2d", 'mb1ic512ih7oc512oh7kh3ph1n"resnet50:res5a_branch2b"'),
    ("conv2d", 'mb1ic64ih56oc64oh56kh3ph1n"resnet50:res2a_branch2b"'),
    ("conv3d", 'mb1ic512id2ih7oc512od2oh7kd3kh3pd1ph1n"c3d:conv5a"'),
)


def best_of(fn, args: tuple, reps: int) -> float:
    """Fastest of `reps` calls fn(*args), after one warm-up call."""
    fn(*args)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--algos", nargs="+", default=list(kernels.ALGORITHMS))
    args = ap.parse_args(argv)
    print(f"{'layer':34} {'algorithm':12} {'call ms':>9} {'prepared ms':>12} {'saved':>6} "
          f"{'plan ms':>9}")
    for conv_type, text in LAYERS:
        spec = kernels.ConvSpec.parse(text)
        x, w = kernels.make_inputs(conv_type, spec, seed=0)
        for algo in args.algos:
            if kernels.supports(conv_type, algo, spec) is not None:
                continue
            # the separable conv3d call SVDs 262K slices: a few calls say enough
            reps = 2 if (algo == "separable" and conv_type == "conv3d") else args.reps
            call = best_of(kernels.run, (conv_type, algo, spec, x, w), reps)
            t0 = time.perf_counter()
            plan = kernels.plan(conv_type, algo, spec, w)
            planning = time.perf_counter() - t0
            prepared = best_of(plan, (x,), args.reps)
            print(f"{spec.name or str(spec):34} {algo:12} {call * 1e3:9.2f} "
                  f"{prepared * 1e3:12.2f} {1 - prepared / call:6.0%} {planning * 1e3:9.1f}")


if __name__ == "__main__":
    main()
