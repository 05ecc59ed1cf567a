"""The `auto` algorithm: for each (type, spec), the algorithm fastest on this machine class.

The choice (`choose`, `explain`) comes from the machine class's tuning table
(`kernels.auto.table`, written by `convbench tune`): the problem's own entry, else
the nearest entry of its family; without a table, or for a problem with no family
in it, from the fallback rule (`kernels.auto.rule`). A choice is always an algorithm
whose cell supports the spec (`kernels.supports`).

Which table: `set_table(table_or_path_or_None)` fixes it for this process (None: no
table, the rule only); otherwise, on first use, the file named by the environment
variable CONVBENCH_TUNING (which must exist), else `results/tuning/<machine class>.json`
under the repository root (`kernels.machine.machine_class`), else none.
`use_default_table()` goes back to that lookup. Worker processes inherit the
environment, so a sweep's workers read the table its parent would.

auto's cells are thin dispatchers to `kernels.run(type, chosen, spec, x, weights)`.
Its accuracy bound is the loosest (largest scale, largest floor) of the algorithms
it may choose: which one runs depends on the table, so only that bound holds for
every table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import memory, registry
from ..accuracy import Bound
from ..layout import NHWC
from ..spec import ConvSpec
from ..types import CONV_TYPES
from . import rule
from .table import Table, build, load, problem_of, save  # noqa: F401  (the public names)

NAME = "auto"
ENV_VAR = "CONVBENCH_TUNING"
REPO_ROOT = Path(__file__).resolve().parents[2]

# every algorithm declared before auto (auto comes last in kernels.ALGORITHM_PACKAGES)
CANDIDATES: tuple[str, ...] = tuple(a for a in registry.ALGORITHMS if a != NAME)


@dataclass(frozen=True)
class Choice:
    algorithm: str | None        # None: no algorithm runs the spec
    how: str                     # "table", "table: nearest <problem>", "rule", or why not


_UNSET = object()
_table: object = _UNSET
_choices: dict[tuple[str, ConvSpec], Choice] = {}


def default_table_path() -> Path:
    """results/tuning/<machine class>.json under the repository root."""
    from ..machine import machine_class

    return REPO_ROOT / "results" / "tuning" / f"{machine_class()}.json"


def table_path() -> Path:
    """The file the default lookup reads: CONVBENCH_TUNING, else default_table_path()."""
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env) if env else default_table_path()


def set_table(table: Table | str | os.PathLike | None) -> None:
    """Use `table` (a Table, or a path to load) from now on; None: no table (the rule)."""
    global _table
    _table = load(table) if isinstance(table, (str, os.PathLike)) else table
    _choices.clear()


def use_default_table() -> None:
    """Forget set_table: the next choice looks up the table as on first use."""
    global _table
    _table = _UNSET
    _choices.clear()


def current_table() -> Table | None:
    """The table choices come from (loaded on first use), or None."""
    global _table
    if _table is _UNSET:
        path = table_path()
        if path.is_file():
            _table = load(path)
        elif os.environ.get(ENV_VAR, "").strip():
            raise ValueError(f"{ENV_VAR}: no tuning table at {path} (unset it to use "
                             "the machine class's default or the fallback rule)")
        else:
            _table = None
    return _table


def _runs(conv_type: str, algorithm: str, spec: ConvSpec) -> bool:
    return algorithm in CANDIDATES and registry.supports(conv_type, algorithm, spec) is None


def _decide(conv_type: str, spec: ConvSpec) -> Choice:
    table = current_table()
    if table is not None:
        entry = table.exact(conv_type, spec)
        if entry and _runs(conv_type, entry.algorithm, spec):
            return Choice(entry.algorithm, "table")
        for entry in table.nearest(conv_type, spec):
            if _runs(conv_type, entry.algorithm, spec):
                return Choice(entry.algorithm, f"table: nearest {entry.problem}")
    for algorithm in (*rule.preferences(conv_type, spec), *CANDIDATES):
        if _runs(conv_type, algorithm, spec):
            return Choice(algorithm, "rule")
    why = registry.supports(conv_type, "direct", spec) if "direct" in CANDIDATES else None
    return Choice(None, f"no algorithm runs {conv_type} on this spec"
                        + (f" (direct: {why})" if why else ""))


def explain(conv_type: str, spec: ConvSpec) -> Choice:
    """The algorithm auto runs for (conv_type, spec) and where the choice came from."""
    key = (conv_type, spec)
    choice = _choices.get(key)
    if choice is None:
        choice = _choices[key] = _decide(conv_type, spec)
    return choice


def choose(conv_type: str, spec: ConvSpec) -> str:
    """The algorithm auto runs for (conv_type, spec) (ValueError if none can)."""
    choice = explain(conv_type, spec)
    if choice.algorithm is None:
        raise ValueError(f"algorithm: auto: {choice.how}")
    return choice.algorithm


def _loosest(names) -> Bound:
    bounds = [registry.algorithm_bound(a) for a in names]
    return Bound(scale=max(b.scale for b in bounds), floor=max(b.floor for b in bounds))


registry.declare_algorithm(
    NAME, summary="the fastest algorithm on this machine class (tuning table, else a rule)",
    accuracy=_loosest(CANDIDATES))


def _register(conv_type: str) -> None:
    def supports(spec):
        choice = explain(conv_type, spec)
        return None if choice.algorithm else choice.how

    def multiplications(spec):
        return registry.multiplications(conv_type, choose(conv_type, spec), spec)

    @registry.cell(conv_type, NAME, supports=supports, multiplications=multiplications)
    def run(spec, x, weights):
        return registry.run(conv_type, choose(conv_type, spec), spec, x, weights)

    # channels-last runs the chosen algorithm channels-last (natively where it can), and
    # holds what that one holds for the layout
    @registry.native_layout(conv_type, NAME, NHWC, extra_bytes=lambda spec: (
        registry.layout_extra_bytes(conv_type, explain(conv_type, spec).algorithm or "direct",
                                    spec, NHWC)))
    def run_nhwc(spec, x, weights):
        return registry.run(conv_type, choose(conv_type, spec), spec, x, weights, NHWC)


def _memory_estimate(conv_type: str, spec: ConvSpec) -> dict:
    """What the chosen algorithm holds (kernels.memory), so that `supports` and the memory
    guard judge auto by what it runs; direct's when nothing runs the spec."""
    chosen = explain(conv_type, spec).algorithm or "direct"
    return memory.ESTIMATORS.get(chosen, memory.ESTIMATORS["direct"])(conv_type, spec)


memory.ESTIMATORS[NAME] = _memory_estimate

for _t in CONV_TYPES:
    if any(registry.cell_reason(_t, a) is None for a in CANDIDATES):
        _register(_t)
    else:
        registry.not_applicable(_t, NAME, f"no algorithm runs {_t}")
