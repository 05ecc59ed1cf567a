"""Timing modes: what the timed call includes.

`call` times `kernels.run` on raw weights, as `torch.nn.functional.conv2d` is called:
packing, Winograd filter transforms and SVDs are inside the timed region. `prepared`
times the data path only: the weight work is done once, outside the timed region
(`kernels.plan`), as an inference engine does when it loads a model. A benchmark's mode
is in its metadata (`mode`) and, for `prepared`, in its name (`harness.results`).
"""

from __future__ import annotations

MODES = ("call", "prepared")
DEFAULT_MODE = "call"  # a job, a benchmark or a results file without a mode is `call`


def parse_modes(values) -> tuple[str, ...]:
    """['call,prepared'] -> ('call', 'prepared'); empty -> (DEFAULT_MODE,)."""
    items: list[str] = []
    for v in values or ():
        items.extend(s.strip() for s in str(v).split(",") if s.strip())
    for m in items:
        if m not in MODES:
            raise ValueError(f"--modes: unknown mode {m!r}; known: {', '.join(MODES)}")
    return tuple(dict.fromkeys(items)) or (DEFAULT_MODE,)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
    return mode
