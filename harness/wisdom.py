"""`convbench wisdom`: the choices `auto` measured on this machine class (kernels.auto.wisdom).

    convbench wisdom show            per problem: the choice, the candidates' times, when
    convbench wisdom export FILE     copy this machine class's wisdom to FILE
    convbench wisdom import FILE     add FILE's entries (same machine class) to it
    convbench wisdom forget          delete it: auto measures again on first use

`convbench tune --set NAME` fills it ahead of time (harness.tune).
"""

from __future__ import annotations

from pathlib import Path

from kernels import auto
from kernels.auto import wisdom


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4g} ms"


def format_wisdom(held: wisdom.Wisdom, path: Path) -> str:
    """One line per problem: type, problem, layout, threads, mode, the choice, the times of
    the candidates timed (fastest first), when, and what choosing cost."""
    lines = [f"wisdom of {held.machine_class or path.stem}: {len(held.entries)} problems "
             f"({path})"]
    head = ("type", "problem", "layout", "threads", "mode", "auto", "measured", "when", "cost")
    rows = [(e.key.conv_type, e.key.problem, e.key.layout, str(e.key.threads), e.key.mode,
             e.algorithm, ", ".join(f"{a} {_ms(s)}" for a, s in e.seconds) or "-",
             e.measured_at or "-", f"{e.cost_s:.2f} s")
            for e in sorted(held.entries.values(), key=lambda e: (
                e.key.conv_type, e.key.problem, e.key.layout, e.key.threads, e.key.mode))]
    if rows:
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                  for r in [head, *rows]]
    return "\n".join(lines)


def _known_algorithms(held: wisdom.Wisdom, where: str) -> None:
    for e in held.entries.values():
        if e.algorithm not in auto.CANDIDATES:
            raise ValueError(f"algorithm: {where}: {e.key.conv_type} {e.key.problem} names "
                             f"{e.algorithm!r}, not one of {', '.join(auto.CANDIDATES)}")


def export(dst: Path) -> int:
    """Write this machine class's wisdom to `dst`; returns its number of entries."""
    held = wisdom.load(auto.wisdom_path())
    dst.parent.mkdir(parents=True, exist_ok=True)
    wisdom.write_atomic(dst, held)
    return len(held.entries)


def import_(src: Path) -> int:
    """Merge the entries of `src` into this machine class's wisdom; returns how many."""
    from kernels.machine import machine_class

    if not src.is_file():
        raise ValueError(f"file: {src} is not a file")
    held = wisdom.load(src)
    here = machine_class()
    if held.machine_class and held.machine_class != here:
        raise ValueError(f"machine_class: {src} holds the wisdom of {held.machine_class}; "
                         f"this machine is {here} (timings of one class do not choose for "
                         "another)")
    _known_algorithms(held, str(src))
    wisdom.merge(auto.wisdom_path(), held.entries.values(), here)
    auto.forget()
    return len(held.entries)


def run(args) -> int:
    """`convbench wisdom` (argparse namespace of harness.cli)."""
    path = auto.wisdom_path()
    if args.action in ("export", "import") and not args.file:
        raise ValueError(f"file: `convbench wisdom {args.action}` needs a FILE")
    if args.action == "show":
        print(format_wisdom(wisdom.load(path), path))
    elif args.action == "export":
        n = export(Path(args.file))
        print(f"exported {n} problems from {path} to {args.file}")
    elif args.action == "import":
        n = import_(Path(args.file))
        print(f"imported {n} problems from {args.file} into {path}")
    else:
        n = wisdom.forget(path)
        auto.forget()
        print(f"forgot {n} problems ({path} removed)")
    return 0
