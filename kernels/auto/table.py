"""The tuning table: for each problem measured on one machine class, the fastest algorithm.

File format (JSON, written by `convbench tune --from RESULTS` or `convbench tune --set NAME
-o FILE`, read by `load`):

    {"format": "convbench-tuning", "version": 1, "machine_class": "amd-epyc-avx512-2c",
     "source": "what it was measured from", "entries": [
        {"conv_type": "conv2d", "problem": "mb1ic64ih56oc64oh56kh3ph1", "threads": 2,
         "algorithm": "winograd_f4", "seconds": {"direct": 6.8e-4, "winograd_f4": 3.9e-4}}]}

A problem is the spec's benchdnn descriptor without its layer name, batch included
(a batch of 8 can favour another algorithm than a batch of 1). Each (conv_type,
problem) appears once; `build` keeps the largest thread count measured.

`lookup` answers a problem the table holds with its entry, and an unseen one with the
nearest entry of its family: same type, kernel, stride, dilation, transposition and
grouping kind (one group, depthwise, several), nearest in log2 of input channels,
output channels, output pixels and batch (summed). A problem with no family in the
table gets None (the caller's fallback rule).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..spec import ConvSpec

FORMAT = "convbench-tuning"
VERSION = 1


@dataclass(frozen=True)
class Entry:
    conv_type: str
    problem: str                 # descriptor without the layer name
    algorithm: str               # the fastest measured
    threads: int = 0
    seconds: tuple = ()          # ((algorithm, seconds), ...) as measured, fastest first

    @property
    def spec(self) -> ConvSpec:
        return ConvSpec.parse(self.problem)


def problem_of(spec: ConvSpec) -> str:
    """The table's key for a spec: its descriptor without the layer name."""
    return str(spec.replace(name=""))


def _grouping(spec: ConvSpec) -> str:
    if spec.groups == 1:
        return "one"
    return "depthwise" if spec.groups == spec.c == spec.k else "many"


def family(conv_type: str, spec: ConvSpec) -> tuple:
    """What an unseen problem must share with a table entry to borrow its choice."""
    return (conv_type, spec.kernel, spec.stride, spec.dilation, spec.transposed,
            _grouping(spec))


def distance(a: ConvSpec, b: ConvSpec) -> float:
    """Summed |log2| ratios of input channels, output channels, output pixels and batch."""
    def pixels(s):
        return math.prod(s.out_size)

    return sum(abs(math.log2(f(a) / f(b))) for f in (
        lambda s: s.c, lambda s: s.k, pixels, lambda s: s.n))


@dataclass
class Table:
    entries: dict                # (conv_type, problem) -> Entry
    machine_class: str = ""
    source: str = ""

    def __post_init__(self):
        self._families: dict[tuple, list[Entry]] = {}
        for e in self.entries.values():
            self._families.setdefault(family(e.conv_type, e.spec), []).append(e)

    def exact(self, conv_type: str, spec: ConvSpec) -> Entry | None:
        return self.entries.get((conv_type, problem_of(spec)))

    def nearest(self, conv_type: str, spec: ConvSpec) -> list[Entry]:
        """The entries of the spec's family, nearest first (empty: no family here)."""
        same = self._families.get(family(conv_type, spec), [])
        return sorted(same, key=lambda e: (distance(spec, e.spec), e.problem))

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "machine_class": self.machine_class,
                "source": self.source, "entries": [
                    {"conv_type": e.conv_type, "problem": e.problem, "threads": e.threads,
                     "algorithm": e.algorithm, "seconds": dict(e.seconds)}
                    for e in sorted(self.entries.values(),
                                    key=lambda e: (e.conv_type, e.problem))]}


def build(rows, *, machine_class: str = "", source: str = "") -> Table:
    """A table from measurements: rows of (conv_type, spec or problem, threads, algorithm,
    seconds). Per (conv_type, problem), the largest thread count's fastest algorithm."""
    best_threads: dict[tuple, int] = {}
    times: dict[tuple, dict[str, float]] = {}
    for conv_type, spec, threads, algorithm, seconds in rows:
        if not (seconds == seconds and seconds > 0):  # NaN, zero: not a measurement
            continue
        problem = problem_of(spec if isinstance(spec, ConvSpec) else ConvSpec.parse(spec))
        key = (conv_type, problem)
        threads = int(threads)
        if threads > best_threads.get(key, 0):
            best_threads[key] = threads
            times[key] = {}
        if threads == best_threads[key]:
            old = times[key].get(algorithm, math.inf)
            times[key][algorithm] = min(old, float(seconds))
    entries = {}
    for key, by_algo in times.items():
        ranked = tuple(sorted(by_algo.items(), key=lambda kv: (kv[1], kv[0])))
        entries[key] = Entry(key[0], key[1], ranked[0][0], best_threads[key], ranked)
    return Table(entries, machine_class, source)


def _field(where: str, name: str, rule: str) -> ValueError:
    return ValueError(f"{name}: {rule} ({where})")


def from_json(data, where: str = "tuning table") -> Table:
    """A Table from the parsed JSON (ValueError naming the field and the rule)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _field(where, "format", f"must be {FORMAT!r}")
    if data.get("version") != VERSION:
        raise _field(where, "version", f"must be {VERSION}, got {data.get('version')!r}")
    raw = data.get("entries")
    if not isinstance(raw, list):
        raise _field(where, "entries", "must be a list")
    entries = {}
    for i, e in enumerate(raw):
        if not isinstance(e, dict) or not all(isinstance(e.get(k), str) for k in (
                "conv_type", "problem", "algorithm")):
            raise _field(where, f"entries[{i}]", "needs string conv_type, problem, algorithm")
        spec = ConvSpec.parse(e["problem"])
        seconds = e.get("seconds") or {}
        if not isinstance(seconds, dict):
            raise _field(where, f"entries[{i}].seconds", "must map algorithms to seconds")
        entry = Entry(e["conv_type"], problem_of(spec), e["algorithm"],
                      int(e.get("threads") or 0),
                      tuple(sorted(((str(a), float(s)) for a, s in seconds.items()),
                                   key=lambda kv: kv[1])))
        entries[(entry.conv_type, entry.problem)] = entry
    return Table(entries, str(data.get("machine_class", "")), str(data.get("source", "")))


def load(path) -> Table:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"tuning table {path}: not JSON ({exc})") from None
    return from_json(data, str(path))


def save(table: Table, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(table.to_json(), indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
