"""Speed and accuracy checks behind the issues' targets: `python -m harness.checks.NAME`.

Each times kernels.run beside PyTorch in the same process (medians, ratios),
so the figures quoted in docs/figures.md and the issues can be reproduced.
"""
