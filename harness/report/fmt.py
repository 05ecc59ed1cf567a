"""Number formatting for the report: times with units, counts with SI prefixes."""

from __future__ import annotations

import math


def _bad(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def g(v: float, digits: int = 3) -> str:
    """`digits` significant digits without exponent notation between 1e-3 and 1e6."""
    if _bad(v):
        return "–"
    text = f"{v:.{digits}g}"
    if "e" in text and 1e-3 <= abs(v) < 1e6:
        text = f"{v:.0f}" if abs(v) >= 1 else f"{v:.{digits + 2}f}".rstrip("0")
    return text


def seconds(v, digits: int = 3) -> str:
    """1.23 ms, 45.6 µs, 789 ns, 1.20 s."""
    if _bad(v):
        return "–"
    a = abs(v)
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"), (1e-12, "ps")):
        if a >= scale or unit == "ps":
            return f"{g(v / scale, digits)} {unit}"
    return f"{v:.3g} s"  # pragma: no cover


def count(v, digits: int = 3) -> str:
    """86.4 k, 1.23 M, 4.56 G."""
    if _bad(v):
        return "–"
    a = abs(v)
    for scale, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= scale:
            return f"{g(v / scale, digits)} {unit}"
    return g(v, digits)


def num(v, digits: int = 3) -> str:
    return g(v, digits)


def pct(v, digits: int = 3) -> str:
    if _bad(v):
        return "–"
    return f"{g(v, digits)}%"


def ratio(v) -> str:
    """1.23×"""
    if _bad(v):
        return "–"
    return f"{g(v)}×"
