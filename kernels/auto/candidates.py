"""Which algorithms `auto` times for a problem: the rule's order, pruned by the counts.

Timing every algorithm on a problem's first call would cost seconds per layer (and a
compile of each), so the candidates are those that support the spec (the memory
limit included), in the rule's order (its preferences first, then the others by
multiplication count, fewest first), less those that cannot win by their counts: more
than `MAX_COUNT_RATIO` times the fewest multiplications among them (the rule's own
first choice is always kept), and at most `MAX_CANDIDATES` of them.
"""

from __future__ import annotations

from .. import registry
from ..spec import ConvSpec
from . import rule

MAX_COUNT_RATIO = 4.0
MAX_CANDIDATES = 4


def supported(conv_type: str, spec: ConvSpec, among) -> list[str]:
    """The algorithms of `among` that run `spec`, the rule's preferences first."""
    ordered = dict.fromkeys((*[a for a in rule.preferences(conv_type, spec) if a in among],
                             *among))
    return [a for a in ordered if registry.supports(conv_type, a, spec) is None]


def pruned(conv_type: str, spec: ConvSpec, among) -> list[str]:
    """The candidates worth timing, best guess first (see the module)."""
    runs = supported(conv_type, spec, among)
    if len(runs) <= 1:
        return runs
    counts = {a: registry.multiplications(conv_type, a, spec) for a in runs}
    fewest = min(counts.values())
    first, rest = runs[0], runs[1:]
    preferred = [a for a in rest if a in rule.preferences(conv_type, spec)]
    others = sorted((a for a in rest if a not in preferred), key=lambda a: counts[a])
    keep = [first] + [a for a in (*preferred, *others)
                      if counts[a] <= MAX_COUNT_RATIO * fewest]
    return keep[:MAX_CANDIDATES]
