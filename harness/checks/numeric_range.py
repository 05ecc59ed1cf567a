"""Numeric range of every algorithm on the issue's layer (conv2d c=k=16, 14x14, 3x3,
padding 1; depthwise on the same shape): overflow headroom, tiny values, NaN/Inf spread.

    python -m harness.checks.numeric_range [--json FILE] [--types conv2d,depthwise]

Columns (see kernels.numerics): safe peak = largest peak |reference output| reached by
scaling the input (weights unscaled) with all outputs finite and within the algorithm's
bound; fails at = the next peak tried ("-" when the float32 input overflows first);
tiny err = max |y - ref| / max |ref| with input x1e-30 and weights x1e-10 (outputs
~4e-40, float32 subnormals); NaN / Inf spread = non-finite outputs of the algorithm
over the reference's after one input element is set to NaN / +Inf; Inf kept = share of
the reference's infinite outputs returned as the same infinity (the rest become NaN).
The fft's documented range (kernels.numerics.fft_product_limit) is printed below the table.
"""

from __future__ import annotations

import argparse
import json

import kernels
from kernels.numerics import fft_product_limit, numeric_profile

SPEC = kernels.ConvSpec(n=1, c=16, k=16, size=14, kernel=3, padding=1)


def spec_for(conv_type: str) -> kernels.ConvSpec:
    return SPEC.replace(groups=SPEC.c) if conv_type == "depthwise" else SPEC


def table(types=("conv2d", "depthwise"), algorithms=kernels.ALGORITHMS) -> list[dict]:
    """One row dict per (conv type, algorithm), as kernels.numerics.numeric_profile."""
    return [numeric_profile(t, a, spec_for(t)) for t in types for a in algorithms]


def _g(v) -> str:
    return "-" if v is None else f"{v:.3g}"


def render(rows: list[dict]) -> str:
    head = (f"{'type':<10} {'algorithm':<12} {'safe peak':>10} {'fails at':>10} "
            f"{'tiny err':>9} {'NaN spread':>14} {'Inf spread':>14} {'Inf kept':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if "skipped" in r:
            lines.append(f"{r['conv_type']:<10} {r['algorithm']:<12} skipped: {r['skipped']}")
            continue
        nan = f"{r['nan_outputs']}/{r['nan_ref']} {r['nan_spread']:.2f}x"
        inf = f"{r['inf_outputs']}/{r['inf_ref']} {r['inf_spread']:.2f}x"
        lines.append(f"{r['conv_type']:<10} {r['algorithm']:<12} {_g(r['max_safe_peak']):>10} "
                     f"{_g(r['first_failing_peak']):>10} {r['tiny_rel_error']:>9.2g} "
                     f"{nan:>14} {inf:>14} {r['inf_kept']:>8.0%}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.checks.numeric_range",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", metavar="FILE", help="also write the rows as a JSON list")
    ap.add_argument("--types", default="conv2d,depthwise",
                    help="comma-separated conv types (default conv2d,depthwise)")
    args = ap.parse_args(argv)
    rows = table(tuple(t for t in args.types.split(",") if t))
    print(f"spec: {SPEC} (depthwise: groups={SPEC.c})")
    print(render(rows))
    if "fft" in kernels.ALGORITHMS:
        print(f"fft: finite while c/g * r_h * r_w * max|x| * max|w| <= "
              f"{fft_product_limit(SPEC):.3g} on this layer (float32 max / "
              f"(4 t_h t_w); kernels.numerics)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
