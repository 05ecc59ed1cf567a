"""convbench harness: shape sets, pyperf sweeps, peers, calibration, reports, CLI."""
