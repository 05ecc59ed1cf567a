"""Wisdom: the choices `auto` measured on this machine class, kept across processes.

Like FFTW's wisdom: a measured choice is written to a file in the user's cache
directory and every later process of the same machine class reads it instead of
measuring again. The file is `<cache>/wisdom/<machine class>.json`, where <cache> is
`$CONVBENCH_CACHE_DIR`, else `$XDG_CACHE_HOME/convbench`, else `~/.cache/convbench`
(the directory the machine calibration uses) and the machine class is
`kernels.machine.machine_class()` (CPU model, vector ISA, core count).

Format (JSON):

    {"format": "convbench-wisdom", "version": 1, "machine_class": "intel-xeon-...-avx512-2c",
     "entries": [
        {"conv_type": "conv2d", "problem": "mb1ic512ih7oc512oh7kh3ph1", "layout": "nchw",
         "threads": 2, "mode": "prepared", "algorithm": "winograd_f2",
         "seconds": {"winograd_f2": 1.26e-3, "winograd_f4": 2.42e-3, "direct": 3.1e-3},
         "measured_at": "2026-12-07T22:40:00Z", "cost_s": 0.84}]}

A problem (`Key`) is the conv type, the spec's descriptor without its layer name, the
data layout, the thread count and the timing mode (`call`: weights prepared on every
call; `prepared`: a plan). `seconds` holds the fastest timed call of each candidate
timed; `cost_s` what choosing took (warm-up calls, which may compile, included).

Writes are atomic (a temporary file in the same directory, then os.replace) and merge
under an exclusive lock on `<file>.lock` (fcntl, where the platform has it): a writer
re-reads the file inside the lock and adds its entries to what is there, so two
processes recording at once lose nothing. A newer entry for a key replaces the older.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..spec import ConvSpec

FORMAT = "convbench-wisdom"
VERSION = 1
CACHE_ENV = "CONVBENCH_CACHE_DIR"
DEFAULT_LAYOUT = "nchw"

try:
    import fcntl
except ImportError:  # pragma: no cover - platforms without fcntl: atomic writes only
    fcntl = None


def cache_dir() -> Path:
    """`$CONVBENCH_CACHE_DIR`, else `$XDG_CACHE_HOME/convbench`, else ~/.cache/convbench."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "convbench"


def default_path(machine_class: str | None = None) -> Path:
    """The wisdom file of `machine_class` (default: this machine's)."""
    if machine_class is None:
        from ..machine import machine_class as this_class

        machine_class = this_class()
    return cache_dir() / "wisdom" / f"{machine_class}.json"


def problem_of(spec: ConvSpec) -> str:
    """A spec's descriptor without its layer name (the tuning table's problem, too)."""
    return str(spec.replace(name=""))


@dataclass(frozen=True)
class Key:
    conv_type: str
    problem: str
    threads: int
    mode: str
    layout: str = DEFAULT_LAYOUT

    @classmethod
    def of(cls, conv_type: str, spec: ConvSpec, threads: int, mode: str,
           layout: str = DEFAULT_LAYOUT) -> Key:
        return cls(conv_type, problem_of(spec), int(threads), mode, layout)


@dataclass(frozen=True)
class Entry:
    key: Key
    algorithm: str
    seconds: tuple = ()          # ((algorithm, seconds), ...), fastest first
    measured_at: str = ""        # ISO 8601 UTC
    cost_s: float = 0.0

    def to_json(self) -> dict:
        k = self.key
        return {"conv_type": k.conv_type, "problem": k.problem, "layout": k.layout,
                "threads": k.threads, "mode": k.mode, "algorithm": self.algorithm,
                "seconds": dict(self.seconds), "measured_at": self.measured_at,
                "cost_s": round(self.cost_s, 4)}


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry(key: Key, seconds: dict, cost_s: float) -> Entry:
    """The entry recording measured `seconds` ({algorithm: s}): the fastest is the choice."""
    ranked = tuple(sorted(seconds.items(), key=lambda kv: (kv[1], kv[0])))
    return Entry(key, ranked[0][0], ranked, now(), float(cost_s))


@dataclass
class Wisdom:
    machine_class: str = ""
    entries: dict = field(default_factory=dict)   # Key -> Entry

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "machine_class": self.machine_class,
                "entries": [e.to_json() for e in sorted(
                    self.entries.values(), key=lambda e: (
                        e.key.conv_type, e.key.problem, e.key.layout, e.key.threads,
                        e.key.mode))]}


def _bad(where: str, name: str, rule: str) -> ValueError:
    return ValueError(f"{name}: {rule} ({where}; `convbench wisdom forget` removes this "
                      "machine class's wisdom)")


def _entry_from_json(e, where: str, i: int) -> Entry:
    name = f"entries[{i}]"
    if not isinstance(e, dict):
        raise _bad(where, name, "must be an object")
    for k in ("conv_type", "problem", "mode", "algorithm"):
        if not isinstance(e.get(k), str) or not e[k]:
            raise _bad(where, f"{name}.{k}", "must be a non-empty string")
    threads = e.get("threads")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise _bad(where, f"{name}.threads", "must be a positive integer")
    seconds = e.get("seconds", {})
    if not isinstance(seconds, dict) or not all(
            isinstance(s, (int, float)) and s >= 0 for s in seconds.values()):
        raise _bad(where, f"{name}.seconds", "must map algorithms to non-negative seconds")
    layout = e.get("layout", DEFAULT_LAYOUT)
    if not isinstance(layout, str) or not layout:
        raise _bad(where, f"{name}.layout", "must be a non-empty string")
    try:
        problem = problem_of(ConvSpec.parse(e["problem"]))
    except ValueError as exc:
        raise _bad(where, f"{name}.problem", f"must be a problem descriptor ({exc})") from None
    key = Key(e["conv_type"], problem, threads, e["mode"], layout)
    ranked = tuple(sorted(((str(a), float(s)) for a, s in seconds.items()),
                          key=lambda kv: (kv[1], kv[0])))
    return Entry(key, e["algorithm"], ranked, str(e.get("measured_at", "")),
                 float(e.get("cost_s", 0.0) or 0.0))


def from_json(data, where: str = "wisdom") -> Wisdom:
    """A Wisdom from parsed JSON (ValueError naming the field and the rule)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _bad(where, "format", f"must be {FORMAT!r}")
    if data.get("version") != VERSION:
        raise _bad(where, "version", f"must be {VERSION}, got {data.get('version')!r}")
    raw = data.get("entries")
    if not isinstance(raw, list):
        raise _bad(where, "entries", "must be a list")
    entries = {}
    for i, e in enumerate(raw):
        parsed = _entry_from_json(e, where, i)
        entries[parsed.key] = parsed
    return Wisdom(str(data.get("machine_class", "")), entries)


def load(path: Path) -> Wisdom:
    """The wisdom in `path`; empty (of this machine class) when there is no file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Wisdom(path.stem)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _bad(str(path), "wisdom", f"must be JSON ({exc})") from None
    return from_json(data, str(path))


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on `<path>.lock` for the read-merge-write of `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def write_atomic(path: Path, wisdom: Wisdom) -> None:
    """Write `wisdom` to `path` through a temporary file and os.replace: a reader sees the
    old file or the new one, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(wisdom.to_json(), fh, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def merge(path: Path, entries, machine_class: str | None = None) -> Wisdom:
    """Add `entries` to the wisdom in `path` (a newer one replaces the entry of its key),
    under the file lock; returns what the file now holds."""
    path = Path(path)
    with _locked(path):
        wisdom = load(path)
        if machine_class:
            wisdom.machine_class = machine_class
        for e in entries:
            wisdom.entries[e.key] = e
        write_atomic(path, wisdom)
    return wisdom


def forget(path: Path) -> int:
    """Remove the wisdom file `path`; returns how many entries it held."""
    path = Path(path)
    with _locked(path):
        n = len(load(path).entries)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return n
