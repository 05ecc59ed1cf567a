"""Memory layouts a sweep times: every problem in `nchw` (the default) and/or `nhwc`
(channels-last; kernels.layout). A benchmark's layout is in its metadata (`layout`) and,
for `nhwc`, in its name (`harness.results`), so NCHW names stay what they were before
there were layouts and the A/B gate and the history keep matching them.

The names are kernels.LAYOUTS', listed here too so that reading results does not import
(and compile) the kernels; tests/test_plan.py checks the two agree.
"""

from __future__ import annotations

LAYOUTS = ("nchw", "nhwc")
DEFAULT_LAYOUT = "nchw"  # a job, a benchmark or a results file without a layout is `nchw`


def parse_layouts(values) -> tuple[str, ...]:
    """['nchw,nhwc'] -> ('nchw', 'nhwc'); empty -> (DEFAULT_LAYOUT,)."""
    items: list[str] = []
    for v in values or ():
        items.extend(s.strip() for s in str(v).split(",") if s.strip())
    for layout in items:
        if layout not in LAYOUTS:
            raise ValueError(f"--layouts: unknown layout {layout!r}; known: "
                             f"{', '.join(LAYOUTS)}")
    return tuple(dict.fromkeys(items)) or (DEFAULT_LAYOUT,)


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
    return layout
