"""Faster than what a user would deploy? Ours against the inference engines, per type and
layout (`harness.report.engines`, the report's first table), printed from a results file:

    python -m harness.checks.engines [RESULTS.json ...] [-- SWEEP OPTIONS]

With no file, it first runs the sweep over the `deploy` layers in both layout contracts
and both timing modes with every inference engine that is installed:

    convbench run --set deploy --layouts nchw nhwc --modes call prepared --peers ENGINES

(options after `--` go to that sweep, e.g. `--threads 2 --fast`; the results file is
written under results/ and named on stderr). An engine that is not installed is named
with its install line and left out.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import subprocess
import sys
from pathlib import Path

from harness.peers import PEERS, peer_missing

NOT_ENGINES = ("scipy",)  # a signal-processing routine, not an inference engine
SWEEP = ["run", "--set", "deploy", "--layouts", "nchw", "nhwc", "--modes", "call",
         "prepared"]


def installed_engines() -> list[str]:
    engines = []
    for peer in PEERS:
        if peer in NOT_ENGINES:
            continue
        why = peer_missing(peer)
        if why:
            print(f"  {peer}: left out, {why}", file=sys.stderr)
        else:
            engines.append(peer)
    return engines


def sweep_command(output: Path, extra=()) -> list[str]:
    return [sys.executable, "-m", "harness", *SWEEP, "--peers", *installed_engines(),
            "-o", str(output), *extra]


def run_sweep(extra=()) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    output = Path("results") / f"engines-deploy-{stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = sweep_command(output, extra)
    print("running: convbench " + " ".join(cmd[3:]), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    print(f"results: {output}", file=sys.stderr)
    return output


def main(argv=None) -> None:
    from harness.report.engines import engines_text
    from harness.report.load import load_results

    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(prog="python -m harness.checks.engines", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="*", type=Path,
                    help="results files (default: run the deploy sweep first)")
    args = ap.parse_args(own)
    for path in args.results:
        if not path.exists():
            ap.error(f"results: no such file {path}")
    paths = args.results or [run_sweep(extra)]
    res = load_results(paths)
    classes = res.run_info.get("machine_class", [])
    print("machine class: " + (", ".join(map(str, classes)) or "not recorded"))
    print(engines_text(res.frame))


if __name__ == "__main__":
    main()
