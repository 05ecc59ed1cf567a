"""Issue target: the `auto` total of a network's conv layers against torch's (oneDNN).

    python -m harness.checks.networks [--sets resnet50 mobilenet_v1 vgg16 c3d]
                                      [--threads 2] [--rounds 2]

Per network: every layer counted in its total (`harness.shapes.totals`: `views:` lines
stay out) is timed with `auto` in one process and with torch in another, alternating
for `--rounds` rounds, per side the lowest median (`harness.checks.types`); each time
is multiplied by the layer's repeat count and summed. The sweep's report draws the same
totals from pyperf results (`harness.report.networks`); this check is the quick way to
the headline number, with the algorithm auto chose per layer.
"""

from __future__ import annotations

import argparse
import math
import sys

import kernels
from harness.checks.common import print_header, time_in_process
from harness.checks.types import time_ours_in_process
from harness.shapes import load_set, totals

DEFAULT_SETS = ("resnet50", "mobilenet_v1", "vgg16", "c3d")


def network_rows(name: str, threads: int, repeat: int, rounds: int) -> list[dict]:
    counted = totals(name)
    counted = counted[counted["layer"] != "total"]
    rows = []
    for layer, in_total in zip(load_set(name), counted["in_total"]):
        if not in_total:
            continue
        spec, conv_type = layer.spec, layer.conv_type
        ours = theirs = math.inf
        for _ in range(rounds):
            ours = min(ours, time_ours_in_process(conv_type, ["auto"], spec, threads,
                                                  repeat)["auto"])
            theirs = min(theirs, time_in_process(conv_type, "torch", spec, threads, repeat))
        rows.append({"layer": layer.label, "type": conv_type, "repeat": layer.repeat,
                     "auto runs": kernels.auto.choose(conv_type, spec),
                     "auto ms": ours * 1e3, "torch ms": theirs * 1e3,
                     "ratio": theirs / ours})
        print(f"  {rows[-1]['layer']}: {rows[-1]['auto runs']} {ours * 1e3:.3g} ms, "
              f"torch {theirs * 1e3:.3g} ms", file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> None:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="*", default=list(DEFAULT_SETS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    print_header(args.threads)
    summary = []
    for name in args.sets:
        df = pd.DataFrame(network_rows(name, args.threads, args.repeat, args.rounds))
        print(f"\n{name}")
        with pd.option_context("display.width", 250, "display.max_columns", 20):
            print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        auto_ms = float((df["auto ms"] * df["repeat"]).sum())
        torch_ms = float((df["torch ms"] * df["repeat"]).sum())
        summary.append({"network": name, "layers": int(df["repeat"].sum()),
                        "auto ms": auto_ms, "torch ms": torch_ms,
                        "torch / auto": torch_ms / auto_ms})
    print("\nnetwork totals (each layer's time x its repeat count)")
    print(pd.DataFrame(summary).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
