"""Where the fixed cost of `kernels.run` goes, on a layer so small that the cost is all
overhead (the seed's 2x2 -> 4x4 transposed example by default).

    python -m harness.checks.overhead [--type transposed2d] [--algo im2col] [--spec DESC]

Each stage of `kernels.registry.run` is timed alone, in this process, with timeit
(best of 7 rounds of N calls, per call): input validation (`types.check_inputs`), the
cell checks (the type's rules, the cell's `supports` and the memory estimate against
the limit, cached per cell, spec and limit: the limit is read anew each call), the cell
itself (allocation and the kernel), and, for comparison, a bare `np.empty` of the
output, `auto`'s dispatch and torch's call. The stages add up to roughly the whole;
in-process figures are noisy (compare them with each other, not across machines).
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np

import kernels
from kernels import memory, registry
from kernels.types import check_inputs

SEED_SPEC = 'mb1ic1ih2oc1oh4kh3n"seed:s6_2x2_to_4x4"'


def per_call(fn, number: int = 2000) -> float:
    """Seconds per call: the best of 7 timeit rounds of `number` calls."""
    fn()
    return min(timeit.repeat(fn, number=number, repeat=7)) / number


def stages(conv_type: str, algorithm: str, spec) -> dict[str, float]:
    x, w = kernels.make_inputs(conv_type, spec, seed=0)
    xc, wc = check_inputs(conv_type, spec, x, w)
    cell = registry._CELLS[(conv_type, algorithm)]  # the registered runner, unwrapped
    out = {
        "kernels.run (total)": per_call(lambda: kernels.run(conv_type, algorithm, spec, x, w)),
        "validation (check_inputs)": per_call(lambda: check_inputs(conv_type, spec, x, w)),
        "cell checks (shape rules, supports, memory; cached)": per_call(
            lambda: registry._runnable_form(conv_type, algorithm, spec, "nchw")),
        "  of which reading the memory limit": per_call(memory.memory_limit),
        "cell: allocation + kernel": per_call(lambda: cell.run(spec, xc, wc)),
        "  of which np.empty(output)": per_call(
            lambda: np.empty(spec.output_shape, np.float32)),
        "kernels.run via auto": per_call(lambda: kernels.run(conv_type, "auto", spec, x, w)),
    }
    try:
        from harness.peers import torch_function

        out["torch (for comparison)"] = per_call(torch_function(conv_type, spec, x, w))
    except Exception as exc:  # torch is optional
        out[f"torch: not run ({type(exc).__name__})"] = float("nan")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--type", default="transposed2d")
    p.add_argument("--algo", default="im2col")
    p.add_argument("--spec", default=SEED_SPEC)
    args = p.parse_args(argv)
    spec = kernels.ConvSpec.parse(args.spec, transposed=args.type == "transposed2d")
    print(f"{args.type} / {args.algo} on {spec}")
    for name, seconds in stages(args.type, args.algo, spec).items():
        print(f"  {name:<50} {seconds * 1e6:8.2f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
