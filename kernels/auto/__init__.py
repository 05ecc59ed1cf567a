"""The `auto` algorithm: for each problem, the algorithm fastest on this machine class.

What decides, in order (`explain` says which did; `CONVBENCH_AUTO` sets the policy):

- `CONVBENCH_AUTO=rule`: the fallback rule alone (`kernels.auto.rule`): no wisdom read,
  no table, no timing (reproducible runs).
- `measure` (the default):
  1. the machine class's wisdom (`kernels.auto.wisdom`): a choice measured here before
     for the same problem (type, spec, layout, thread count, timing mode);
  2. the tuning table's entry for the problem (`kernels.auto.table`, see below);
  3. a measurement, in this process, on the problem's first `plan`/`run`: the
     candidates that support it, in the rule's order and pruned by their
     multiplication counts (`kernels.auto.candidates`), each run once untimed (it may
     compile) and then timed a few calls (`kernels.measured.timings`, at most
     `ROUNDS` calls each and `BUDGET_S` seconds of timed calls in all); the fastest
     call of each counts. The winner is recorded in the wisdom file, so every later
     process of the machine class reads it instead of measuring;
  4. the rule, where nothing is left to time (one candidate).
- `wisdom`: what is known, never a timing: the wisdom, the table (its entry for the
  problem, else the nearest entry of its family), the rule.

Wisdom comes before the table because it is the more specific: measured on this
machine class at the very thread count and timing mode (call or prepared) that
asks, with the same timer as the plan that runs, where a table entry holds one
(type, problem) from a sweep at one thread count in one mode. A table still answers
before any timing, so a shipped table spares the first-call cost.

Which table: `set_table(table_or_path_or_None)` fixes it for this process (None: no
table); otherwise, on first use, the file named by the environment variable
CONVBENCH_TUNING (which must exist), else `results/tuning/<machine class>.json` under
the repository root, else none. `use_default_table()` goes back to that lookup.
Worker processes inherit the environment, so a sweep's workers decide as the parent.

auto's plan is the chosen algorithm's plan: its prepare step decides (a dictionary
lookup once decided) and returns the chosen cell's execute step with that cell's own
prepared state, so `plan(t, "auto", ...)(x)` runs exactly what `plan(t, chosen,
...)(x)` runs, bit for bit, behind one constant-time call; `run` likewise prepares
with the chosen cell's `prepare`. Its accuracy bound is the loosest (largest scale,
largest floor) of the algorithms it may choose.
"""

from __future__ import annotations

import inspect
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numba

from .. import measured, memory, registry
from ..accuracy import Bound
from ..layout import NCHW, NHWC
from ..spec import ConvSpec
from ..types import CONV_TYPES, make_inputs
from . import candidates, rule, wisdom  # noqa: F401  (rule: the public name)
from .table import Table, build, load, problem_of, save  # noqa: F401  (the public names)

NAME = "auto"
ENV_VAR = "CONVBENCH_TUNING"
POLICY_ENV = "CONVBENCH_AUTO"
POLICIES = ("measure", "wisdom", "rule")
MODES = ("call", "prepared")
REPO_ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 3          # timed calls per candidate, the fastest counts
BUDGET_S = 2.0      # timed seconds per problem, after which the rounds stop
DROP_ABOVE = 2.0    # after a round, a candidate this many times the fastest stops

# every algorithm declared before auto (auto comes last in kernels.ALGORITHM_PACKAGES)
CANDIDATES: tuple[str, ...] = tuple(a for a in registry.ALGORITHMS if a != NAME)

# the timer (a test may put a fake in its place)
timings = measured.timings


@dataclass(frozen=True)
class Choice:
    algorithm: str | None        # None: no algorithm runs the spec
    how: str                     # "rule", "table", "table: nearest <problem>", "wisdom",
                                 # "measured", or why nothing runs

    @property
    def decided_by(self) -> str:
        """rule, table, wisdom or measured (none: nothing runs the spec)."""
        return self.how.partition(":")[0] if self.algorithm else "none"


_UNSET = object()
_table: object = _UNSET
# (CONVBENCH_AUTO as set, conv_type, spec, threads, mode) -> Choice
_decided: dict[tuple, Choice] = {}
_guessed: dict[tuple, Choice] = {}           # the same, for choices made without timing
_wisdom: dict[Path, tuple] = {}              # path -> (file identity, Wisdom)


def _forget_choices() -> None:
    _decided.clear()
    _guessed.clear()


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
    _forget_choices()


def use_default_table() -> None:
    """Forget set_table: the next choice looks up the table as on first use."""
    global _table
    _table = _UNSET
    _forget_choices()


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


def policy() -> str:
    """CONVBENCH_AUTO: measure (default), wisdom or rule (see the module)."""
    value = os.environ.get(POLICY_ENV, "").strip() or "measure"
    if value not in POLICIES:
        raise ValueError(f"{POLICY_ENV}: must be one of {', '.join(POLICIES)}, got {value!r}")
    return value


def wisdom_path() -> Path:
    """This machine class's wisdom file (kernels.auto.wisdom)."""
    return wisdom.default_path()


def current_wisdom() -> wisdom.Wisdom:
    """The wisdom file's content, read again whenever the file changed."""
    path = wisdom_path()
    try:
        st = path.stat()
        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        identity = None
    cached = _wisdom.get(path)
    if cached is None or cached[0] != identity:
        cached = _wisdom[path] = (identity, wisdom.load(path))
    return cached[1]


def forget() -> None:
    """Forget every choice made in this process (the wisdom file stays)."""
    _forget_choices()
    _wisdom.clear()


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")


def _none_runs(conv_type: str, spec: ConvSpec) -> Choice:
    why = registry.supports(conv_type, "direct", spec) if "direct" in CANDIDATES else None
    return Choice(None, f"no algorithm runs {conv_type} on this spec"
                        + (f" (direct: {why})" if why else ""))


def _decide(conv_type: str, spec: ConvSpec, mode: str, threads: int, weights=None,
            may_measure: bool = True) -> Choice:
    how = policy()
    runs = candidates.supported(conv_type, spec, CANDIDATES)
    if not runs:
        return _none_runs(conv_type, spec)
    if how == "rule":
        return Choice(runs[0], "rule")
    known = current_wisdom().entries.get(wisdom.Key.of(conv_type, spec, threads, mode))
    if known is not None and known.algorithm in runs:
        return Choice(known.algorithm, "wisdom")
    table = current_table()
    entry = table.exact(conv_type, spec) if table is not None else None
    if entry is not None and entry.algorithm in runs:
        return Choice(entry.algorithm, "table")
    if how == "measure" and may_measure:
        timed = candidates.pruned(conv_type, spec, CANDIDATES)
        if len(timed) > 1:
            entry = measure(conv_type, spec, mode, timed, weights, threads=threads)
            return Choice(entry.algorithm, "measured")
    for entry in table.nearest(conv_type, spec) if table is not None else ():
        if entry.algorithm in runs:
            return Choice(entry.algorithm, f"table: nearest {entry.problem}")
    return Choice(runs[0], "rule")


def measure(conv_type: str, spec: ConvSpec, mode: str, algorithms, weights=None,
            rounds: int = ROUNDS, threads: int | None = None) -> wisdom.Entry:
    """Time `algorithms` on `spec` in `mode` at `threads` (default: the current thread
    count), here and now, and record the result in the wisdom file (see the module);
    returns the entry."""
    _check_mode(mode)
    before = numba.get_num_threads()
    if threads is None or threads == before:
        return _measure(conv_type, spec, mode, algorithms, weights, rounds)
    numba.set_num_threads(threads)
    try:
        return _measure(conv_type, spec, mode, algorithms, weights, rounds)
    finally:
        numba.set_num_threads(before)


def _measure(conv_type: str, spec: ConvSpec, mode: str, algorithms, weights,
             rounds: int) -> wisdom.Entry:
    key = wisdom.Key.of(conv_type, spec, numba.get_num_threads(), mode)
    start = time.perf_counter()
    x, made = make_inputs(conv_type, spec, seed=0)
    weights = made if weights is None else weights
    if mode == "call":
        calls = {a: (lambda a=a: registry.run(conv_type, a, spec, x, weights))
                 for a in algorithms}
    else:
        plans = {a: registry.plan(conv_type, a, spec, weights) for a in algorithms}
        calls = {a: (lambda p=p: p(x)) for a, p in plans.items()}
    seconds = timings(calls, rounds=rounds, budget_s=BUDGET_S, drop_above=DROP_ABOVE)
    entry = wisdom.entry(key, seconds, time.perf_counter() - start)
    _record(entry)
    return entry


def _record(entry: wisdom.Entry) -> None:
    from ..machine import machine_class

    _guessed.clear()
    path = wisdom_path()
    try:
        wisdom.merge(path, [entry], machine_class())
    except OSError as exc:  # a read-only cache: the choice still holds in this process
        warnings.warn(f"wisdom: could not write {path} ({exc}); auto's measured choice "
                      "holds in this process only", stacklevel=3)


def tune(conv_type: str, spec: ConvSpec, mode: str = "call", force: bool = False,
         rounds: int = ROUNDS) -> tuple[Choice, wisdom.Entry | None]:
    """Fill the wisdom for one problem ahead of time (`convbench tune`): measure it at the
    current thread count unless the wisdom holds it already (`force`: measure anyway).
    Returns the choice and the wisdom entry (None where nothing was left to time)."""
    _check_mode(mode)
    key = wisdom.Key.of(conv_type, spec, numba.get_num_threads(), mode)
    held = None if force else current_wisdom().entries.get(key)
    if held is not None:
        choice = Choice(held.algorithm, "wisdom")
    else:
        timed = candidates.pruned(conv_type, spec, CANDIDATES)
        if len(timed) <= 1:
            return (Choice(timed[0], "rule") if timed else _none_runs(conv_type, spec)), None
        held = measure(conv_type, spec, mode, timed, rounds=rounds)
        choice = Choice(held.algorithm, "measured")
    _decided[_key(conv_type, spec, mode, key.threads)] = choice
    return choice, held


def _key(conv_type: str, spec: ConvSpec, mode: str, threads: int | None) -> tuple:
    threads = numba.get_num_threads() if threads is None else int(threads)
    return (os.environ.get(POLICY_ENV), conv_type, spec, threads, mode)


def explain(conv_type: str, spec: ConvSpec, mode: str = "call",
            threads: int | None = None) -> Choice:
    """The algorithm auto runs for (conv_type, spec) in `mode` at `threads` (default: the
    current thread count) and what decided it; decides now if this process has not,
    which under the measure policy may time the candidates."""
    key = _key(conv_type, spec, mode, threads)
    choice = _decided.get(key)
    if choice is None:
        _check_mode(mode)
        choice = _decided[key] = _decide(conv_type, spec, mode, key[3])
    return choice


def known(conv_type: str, spec: ConvSpec, mode: str = "call",
          threads: int | None = None) -> Choice:
    """What auto runs or would run without timing anything: the choice this process made,
    else what the wisdom, the table or the rule say (what `supports`, the counts and
    the memory guard judge auto by)."""
    key = _key(conv_type, spec, mode, threads)
    choice = _decided.get(key) or _guessed.get(key)
    if choice is None:
        _check_mode(mode)
        choice = _guessed[key] = _decide(conv_type, spec, mode, key[3], may_measure=False)
    return choice


def choose(conv_type: str, spec: ConvSpec, mode: str = "call") -> str:
    """The algorithm auto runs for (conv_type, spec) (ValueError if none can)."""
    choice = explain(conv_type, spec, mode)
    if choice.algorithm is None:
        raise ValueError(f"algorithm: auto: {choice.how}")
    return choice.algorithm


def metadata(conv_type: str, spec: ConvSpec, mode: str = "call",
             threads: int | None = None) -> dict:
    """What a benchmark of auto records: the algorithm that ran and what decided it."""
    choice = explain(conv_type, spec, mode, threads)
    return {"auto_algorithm": choice.algorithm or "", "auto_decided_by": choice.decided_by,
            "auto_policy": policy()}


def _chosen_form(conv_type: str, spec: ConvSpec, mode: str, weights, layout: str):
    """The chosen algorithm's form for `layout` (its prepare, prepare_for_plan and execute
    steps): the per-call path is one dictionary lookup."""
    key = (os.environ.get(POLICY_ENV), conv_type, spec, numba.get_num_threads(), mode)
    choice = _decided.get(key)
    if choice is None:
        choice = _decided[key] = _decide(conv_type, spec, mode, key[3], weights)
    if choice.algorithm is None:
        raise ValueError(f"algorithm: auto: {choice.how}")
    return registry._runnable_form(conv_type, choice.algorithm, spec, layout)


def _loosest(names) -> Bound:
    bounds = [registry.algorithm_bound(a) for a in names]
    return Bound(scale=max(b.scale for b in bounds), floor=max(b.floor for b in bounds))


registry.declare_algorithm(
    NAME, summary="the fastest algorithm on this machine class (measured once and kept as "
                  "wisdom; a tuning table or a rule otherwise)",
    accuracy=_loosest(CANDIDATES))


def _execute(spec, x, state):
    execute, inner = state  # the chosen cell's execute step and its own state
    return execute(spec, x, inner)


def _register(conv_type: str) -> None:
    def supports(spec):
        choice = known(conv_type, spec)
        return None if choice.algorithm else choice.how

    def multiplications(spec):
        return registry.multiplications(conv_type, known(conv_type, spec).algorithm, spec)

    def forms(layout: str):
        """prepare and prepare_for_plan for `layout`: the chosen algorithm's own steps
        and state, so auto's plan is that algorithm's plan in every layout."""
        def prepare(spec, weights):
            form = _chosen_form(conv_type, spec, "call", weights, layout)
            return form.execute, form.prepare(spec, weights)

        def prepare_for_plan(spec, weights):
            form = _chosen_form(conv_type, spec, "prepared", weights, layout)
            return form.execute, form.prepare_for_plan(spec, weights)

        return prepare, prepare_for_plan

    prepare, prepare_for_plan = forms(NCHW)
    registry.cell(conv_type, NAME, prepare=prepare, prepare_for_plan=prepare_for_plan,
                  supports=supports, multiplications=multiplications)(_execute)
    # channels-last runs the chosen algorithm's channels-last form (native or through the
    # transposes), and holds what that one holds for the layout
    prepare, prepare_for_plan = forms(NHWC)
    registry.native_layout(conv_type, NAME, NHWC, prepare=prepare,
                           prepare_for_plan=prepare_for_plan, extra_bytes=lambda spec: (
                               registry.layout_extra_bytes(
                                   conv_type, explain(conv_type, spec).algorithm or "direct",
                                   spec, NHWC)))(_execute)


def _memory_estimate(conv_type: str, spec: ConvSpec, mode: str = "call") -> dict:
    """What the chosen algorithm holds (kernels.memory), so that `supports` and the memory
    guard judge auto by what it runs (a plan: the choice for the prepared mode); direct's
    when nothing runs the spec."""
    chosen = known(conv_type, spec, "prepared" if mode == "plan" else "call").algorithm
    fn = memory.ESTIMATORS.get(chosen or "direct", memory.ESTIMATORS["direct"])
    # as memory.estimate calls it: with `mode` where the estimator takes one
    return fn(conv_type, spec, mode=mode) if "mode" in inspect.signature(fn).parameters \
        else fn(conv_type, spec)


memory.ESTIMATORS[NAME] = _memory_estimate

for _t in CONV_TYPES:
    if any(registry.cell_reason(_t, a) is None for a in CANDIDATES):
        _register(_t)
    else:
        registry.not_applicable(_t, NAME, f"no algorithm runs {_t}")
