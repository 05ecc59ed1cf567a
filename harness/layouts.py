"""Memory layouts a sweep times: every problem in `nchw` (the default) and/or `nhwc`
(channels-last; kernels.layout). A benchmark's layout is in its metadata (`layout`) and,
for `nhwc`, in its name (`harness.results`), so NCHW names stay what they were before
there were layouts and the A/B gate and the history keep matching them.

The names are the peers' layout contracts (harness.peers.layouts), read without
importing (and compiling) the kernels; tests/test_layouts.py checks that kernels.LAYOUTS
agrees.
"""

from __future__ import annotations

from harness.peers.layouts import DEFAULT_LAYOUT, LAYOUTS, check_layout

__all__ = ["DEFAULT_LAYOUT", "LAYOUTS", "check_layout", "parse_layouts"]


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
