"""Planning a sweep: every (layer, algorithm, layout, mode, thread count) of a shape set, in
a fixed order.

`plan` lists the cells of the set: each layer of `harness.shapes.load_set`
(tagged with its conv type) against every algorithm in
`kernels.registry.ALGORITHMS` and the chosen peers (`harness.peers.PEERS`), in each
chosen timing mode (`harness.modes`; every algorithm of ours has both, a peer those
it has, and the others are skips with the peer's reason), in each chosen memory layout
(`harness.layouts`: `nchw` by default, `nhwc` channels-last).
Cells that do not apply (`kernels.supports`, `peer_reason`) are skipped with
their reason, as asv does; new algorithms are picked up as they register, with
no change here. `--shard i/n` keeps every n-th entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.layouts import DEFAULT_LAYOUT, parse_layouts
from harness.modes import DEFAULT_MODE, parse_modes
from harness.peers import PEERS, peer_reason
from harness.results import bench_name, skip_entry


@dataclass(frozen=True)
class Job:
    """One benchmark: a layer, an algorithm (or peer), a thread count, a timing mode and
    the memory layout of its input and output."""

    name: str
    conv_type: str
    algorithm: str
    layer: Any  # harness.shapes.Layer: network, name, conv_type, spec, repeat
    threads: int
    mode: str = DEFAULT_MODE
    layout: str = DEFAULT_LAYOUT

    @property
    def spec(self):
        return self.layer.spec


@dataclass
class Plan:
    set_name: str
    jobs: list[Job] = field(default_factory=list)
    skips: list[dict] = field(default_factory=list)
    threads: tuple[int, ...] = ()
    modes: tuple[str, ...] = (DEFAULT_MODE,)
    layouts: tuple[str, ...] = (DEFAULT_LAYOUT,)


def load_layers(set_name: str) -> list:
    """The layers of a shape set, through `harness.shapes.load_set` (looked up at call time)."""
    import harness.shapes as shapes

    if not hasattr(shapes, "load_set"):
        raise ValueError("harness.shapes is not available yet (no load_set)")
    return list(shapes.load_set(set_name))


def all_algorithms() -> tuple[str, ...]:
    from kernels import registry

    return tuple(registry.ALGORITHMS)


def max_threads() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def parse_list(values) -> list[str]:
    """['a,b', 'c'] -> ['a', 'b', 'c'] (options accept commas and repeats)."""
    out: list[str] = []
    for v in values or ():
        out.extend(s.strip() for s in str(v).split(",") if s.strip())
    return out


def parse_threads(values) -> tuple[int, ...]:
    items = parse_list(values)
    if not items:
        return (max_threads(),)
    threads = []
    for s in items:
        if s in ("all", "max"):
            threads.append(max_threads())
            continue
        try:
            t = int(s)
        except ValueError:
            raise ValueError(f"--threads: {s!r} is not an integer") from None
        if t < 1:
            raise ValueError(f"--threads: {t} must be at least 1")
        if t > max_threads():
            raise ValueError(f"--threads: {t} is more than the {max_threads()} threads "
                             "Numba may use here (NUMBA_NUM_THREADS)")
        threads.append(t)
    return tuple(dict.fromkeys(threads))


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'2/4' -> (2, 4): the second of four shards (1-based)."""
    if not text:
        return None
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard: expected i/n such as 1/2, got {text!r}") from None
    if n < 1 or not 1 <= i <= n:
        raise ValueError(f"--shard: need 1 <= i <= n, got {text!r}")
    return i, n


def cell_skip_reason(conv_type: str, algorithm: str, spec, mode: str = DEFAULT_MODE,
                     layout: str = DEFAULT_LAYOUT) -> str | None:
    """None if the cell runs on this spec in this mode and layout, else why not (never
    raises)."""
    import kernels
    from kernels.types import check_spec

    try:
        if algorithm in PEERS:
            check_spec(conv_type, spec)
            if layout == DEFAULT_LAYOUT:  # as before layouts: any peer module takes this
                return peer_reason(algorithm, conv_type, spec, mode)
            return peer_reason(algorithm, conv_type, spec, mode, layout=layout)
        return kernels.supports(conv_type, algorithm, spec, layout=layout)
    except ValueError as exc:
        return f"the layer does not fit {conv_type}: {exc}"


def layout_skip(name, conv_type, algorithm, layer, reason, mode=DEFAULT_MODE,
                layout=DEFAULT_LAYOUT, **fields) -> dict:
    """`skip_entry`, with the layout for one other than `nchw` (an entry without one is
    `nchw`, as entries were before layouts)."""
    entry = skip_entry(name, conv_type, algorithm, layer, reason, mode=mode, **fields)
    if layout != DEFAULT_LAYOUT:
        entry["layout"] = layout
    return entry


def plan(set_name: str, types=None, algos=None, peers=(), threads=None, shard=None,
         layers=None, modes=None, layouts=None) -> Plan:
    """Every benchmark of the set (filtered by types/algos, with peers), in each layout of
    `layouts` (default `nchw`) and each mode of `modes` (default `call`), in a fixed
    order."""
    from kernels import CONV_TYPES, memory_limit

    memory_limit()  # a malformed CONVBENCH_MEMORY_LIMIT is an error, not a sweep of skips
    known = all_algorithms()
    types = parse_list(types)
    algos = parse_list(algos)
    peers = parse_list(peers)
    for t in types:
        if t not in CONV_TYPES:
            raise ValueError(f"--types: unknown type {t!r}; known: {', '.join(CONV_TYPES)}")
    for a in algos:
        if a not in known and a not in PEERS:
            raise ValueError(f"--algos: unknown algorithm {a!r}; known: {', '.join(known)}")
    for p in peers:
        if p not in PEERS:
            raise ValueError(f"--peers: unknown peer {p!r}; known: {', '.join(PEERS)}")
    thread_counts = parse_threads(threads)
    modes = parse_modes(modes)
    layouts = parse_layouts(layouts)
    algorithms = [a for a in known if not algos or a in algos]
    algorithms += [p for p in PEERS if p in peers or p in algos]
    if layers is None:
        layers = load_layers(set_name)

    entries: list[Job | dict] = []
    seen: set[str] = set()
    several = len(thread_counts) > 1
    for layer in layers:
        conv_type = layer.conv_type
        if types and conv_type not in types:
            continue
        for algo in algorithms:
            for layout in layouts:
                for mode in modes:
                    base = bench_name(conv_type, algo, layer, mode=mode, layout=layout)
                    if base in seen:
                        entries.append(layout_skip(
                            base, conv_type, algo, layer,
                            "duplicate of an earlier layer of the set", mode, layout))
                        continue
                    seen.add(base)
                    why = cell_skip_reason(conv_type, algo, layer.spec, mode, layout)
                    if why:
                        entries.append(layout_skip(base, conv_type, algo, layer, why, mode,
                                                   layout))
                        continue
                    for t in thread_counts:
                        name = bench_name(conv_type, algo, layer, t if several else None,
                                          mode, layout)
                        entries.append(Job(name, conv_type, algo, layer, t, mode, layout))
    if shard:
        i, n = shard
        entries = entries[i - 1::n]
    result = Plan(set_name, threads=thread_counts, modes=modes, layouts=layouts)
    for e in entries:
        (result.jobs if isinstance(e, Job) else result.skips).append(e)
    return result

