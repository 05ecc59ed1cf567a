"""Results files: a sweep's pyperf suite JSON and its `<stem>.skips.json` sidecar.

Benchmarks are named `type/algorithm/network:layer[@tN][@prepared]` (`bench_name`,
`parse_name`): a `call`-mode benchmark (`harness.modes`) has no mode marker, so its name
is the one it had before there were modes, and the A/B gate and the history keep
matching it.
Skipped, failed and errored cells go to the sidecar `<stem>.skips.json` (a list of
dicts: name, status, conv_type, algorithm, network, layer, spec, reason).

One writer per results file: a sweep (and `merge`, for its output) holds an
exclusive lock on `.<name>.lock` beside the file for as long as it writes it
(`results_lock`), and a second writer of the same file stops at once instead of
overwriting the first one's benchmarks; the lock file is removed when the writer is
done (a leftover one, without its process, locks nothing). Files are rewritten
atomically (`write_suite`, `write_sidecar`). Temporary files live in `.<name>.tmp/`
beside the results file (`tmp_dir`), emptied by the next writer of that file.
The lock is re-entrant within a thread: `convbench run` takes it before it calibrates
and the sweep enters it again. A write that fails (disk full, read-only folder) is a
one-line ValueError naming the file, and leaves the old file whole.

A file holds one machine class (`suite_class`): `merge` refuses inputs of two classes,
as `compare`, `tune` and `history add` refuse a file whose runs are of several. Files
that are not regular files (a FIFO named `<stem>.skips.json`) are refused, not read.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import sys
import threading
from pathlib import Path

from harness.layouts import DEFAULT_LAYOUT, LAYOUTS, check_layout
from harness.messages import clip, os_error
from harness.modes import DEFAULT_MODE, MODES, check_mode

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the sweep's unchanged-file check stands alone
    fcntl = None

# pyperf metadata that names the machine or its paths: a committed baseline keeps only
# what describes the hardware class and the software versions.
HOST_METADATA = ("hostname", "python_executable", "python_config_args", "boot_time",
                 "platform", "command", "cpu_affinity")


# --------------------------------------------------------------------------- names


def bench_name(conv_type: str, algorithm: str, layer, threads: int | None = None,
               mode: str = DEFAULT_MODE, layout: str = DEFAULT_LAYOUT) -> str:
    """`type/algorithm/network:layer`, with `@t<threads>` when a sweep has several counts,
    `@<layout>` for a layout other than `nchw` and `@<mode>` for a mode other than `call`."""
    name = f"{conv_type}/{algorithm}/{layer.network}:{layer.name}"
    if threads is not None:
        name = f"{name}@t{threads}"
    if layout != DEFAULT_LAYOUT:
        name = f"{name}@{check_layout(layout)}"
    return name if mode == DEFAULT_MODE else f"{name}@{check_mode(mode)}"


def parse_name(name: str) -> dict:
    """`type/algorithm/network:layer[@tN][@layout][@mode]` -> its parts (best effort)."""
    parts = name.split("/", 2)
    conv_type, algorithm, rest = (parts + ["", "", ""])[:3] if len(parts) == 3 else (
        "", "", name)
    mode = DEFAULT_MODE
    m = re.search(r"@(" + "|".join(MODES) + r")$", rest)
    if m:
        mode = m.group(1)
        rest = rest[:m.start()]
    layout = DEFAULT_LAYOUT
    m = re.search(r"@(" + "|".join(LAYOUTS) + r")$", rest)
    if m:
        layout = m.group(1)
        rest = rest[:m.start()]
    threads = None
    m = re.search(r"@t(\d+)$", rest)
    if m:
        threads = int(m.group(1))
        rest = rest[:m.start()]
    network, _, layer = rest.partition(":")
    return {"conv_type": conv_type, "algorithm": algorithm, "network": network,
            "layer": layer, "threads": threads, "mode": mode, "layout": layout}


# --------------------------------------------------------------------------- paths


def default_output(set_name: str, directory: str | os.PathLike = "results",
                   shard: tuple[int, int] | None = None) -> Path:
    """results/<host>-<yyyymmdd-hhmm>-<set>.json (a shard adds -shard<i>of<n>)."""
    from harness.calibrate import hostname

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
    name = Path(set_name).stem if set_name.endswith(".txt") else set_name
    base = Path(directory) / f"{hostname()}-{stamp}-{name}"
    if shard:
        base = Path(f"{base}-shard{shard[0]}of{shard[1]}")
    path, k = base.with_suffix(".json"), 2
    while path.exists():
        path = Path(f"{base}-{k}.json")
        k += 1
    return path


def sidecar_path(results: str | os.PathLike) -> Path:
    p = Path(results)
    return p.with_name(p.stem + ".skips.json")


def lock_path(results) -> Path:
    p = Path(results)
    return p.with_name(f".{p.name}.lock")


def tmp_dir(results) -> Path:
    """The folder of a results file's temporary files (emptied by the next writer)."""
    p = Path(results).absolute()  # the pyperf process runs in another directory
    return p.with_name(f".{p.name}.tmp")


# --------------------------------------------------------------------------- sidecar


def skip_entry(name, conv_type, algorithm, layer, reason, status="skipped",
               threads=None, mode: str = DEFAULT_MODE) -> dict:
    """One sidecar entry: a cell that was skipped, failed verification or errored (a
    `call`-mode entry has no `mode` field, as entries had before there were modes)."""
    entry = dict(name=name, status=status, conv_type=conv_type, algorithm=algorithm,
                 network=layer.network, layer=layer.name, spec=str(layer.spec), reason=reason)
    if threads is not None:
        entry["threads"] = int(threads)
    if mode != DEFAULT_MODE:
        entry["mode"] = mode
    return entry


def require_regular(path, what: str = "file") -> Path:
    """`path` when it is a regular file; ValueError naming it otherwise (a FIFO, a device
    or a folder in place of a results, skips or table file would block or fail a read)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{clip(path, 150)}: "
                         + (f"not a regular file (a {what} must be one)" if path.exists()
                            else "no such file"))
    return path


def require_replaceable(path, what: str = "file") -> Path:
    """`path` when it is absent or a regular file, so writing it cannot block (a FIFO)
    or fail half-way (a folder); ValueError naming it otherwise."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ValueError(f"{clip(path, 150)}: not a regular file (a {what} is written as one)")
    return path


def load_sidecar(results) -> list[dict]:
    p = sidecar_path(results)
    if not p.exists():
        return []
    require_regular(p, "skips file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise os_error(p, exc, "cannot read") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{clip(p, 150)}: not a skips file ({clip(exc, 80)})") from None
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ValueError(f"{clip(p, 150)}: not a skips file (expected a list of objects)")
    return data


def _replace_atomically(path: Path, write) -> None:
    """`write(tmp)` to a temporary file beside `path`, then rename it over `path`; an
    OSError (disk full, read-only folder) is a one-line ValueError naming `path`, and the
    partial temporary file is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        if tmp.exists():
            tmp.unlink()
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ValueError(f"cannot write {clip(path, 150)}: "
                         f"{exc.strerror or type(exc).__name__}") from None


def atomic_write_text(path: Path, text: str) -> None:
    _replace_atomically(path, lambda tmp: tmp.write_text(text))


def write_sidecar(results, entries) -> Path:
    p = sidecar_path(results)
    atomic_write_text(p, json.dumps(list(entries), indent=1) + "\n")
    return p



# --------------------------------------------------------------------------- suites


def load_suite(path, require_benchmarks: bool = False):
    """A pyperf BenchmarkSuite from `path`; ValueError naming the file when it is not one
    (or, with `require_benchmarks`, when it holds no benchmark)."""
    import pyperf

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{clip(path, 150)}: "
                         + ("not a file" if path.exists() else "no such file"))
    try:
        with open(path, encoding="utf-8") as fh:
            json.load(fh)
    except OSError as exc:
        raise os_error(path, exc, "cannot read") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{clip(path, 150)}: not a text file ({clip(exc, 80)})") from None
    except json.JSONDecodeError as exc:
        what = "the file is empty" if path.stat().st_size == 0 else (
            f"line {exc.lineno} column {exc.colno}: {exc.msg}")
        raise ValueError(f"{clip(path, 150)}: malformed JSON ({what})") from None
    try:
        suite = pyperf.BenchmarkSuite.load(str(path))
    except Exception as exc:  # pyperf raises KeyError/TypeError/ValueError on bad layouts
        raise ValueError(f"{clip(path, 150)}: valid JSON but not a pyperf suite "
                         f"({type(exc).__name__}: {clip(exc, 80)})") from None
    if require_benchmarks and not suite.get_benchmarks():
        raise ValueError(f"{clip(path, 150)}: the suite holds no benchmark")
    return suite


def benchmark_records(suite) -> dict[str, dict]:
    """name -> {values, meta}: a benchmark's values, and its metadata over the suite's."""
    import numpy as np

    try:
        common = dict(suite.get_metadata())
    except Exception:  # a suite without common metadata
        common = {}
    out = {}
    for bench in suite.get_benchmarks():
        meta = dict(common)
        meta.update(bench.get_metadata())
        out[bench.get_name()] = {"values": np.asarray(bench.get_values(), dtype=float),
                                 "meta": meta}
    return out


def signature(path: Path):
    """What tells another writer's rewrite of `path` apart from ours."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def write_suite(suite, path: Path) -> None:
    """Replace `path` by `suite` atomically (a crash mid-write leaves the old file)."""
    _replace_atomically(path, lambda tmp: suite.dump(str(tmp), replace=True))



def strip_host_metadata(path) -> None:
    """Remove HOST_METADATA from every metadata dict of a pyperf suite file, in place."""
    path = Path(path)
    data = json.loads(path.read_text())

    def scrub(node):
        if isinstance(node, dict):
            meta = node.get("metadata")
            if isinstance(meta, dict):
                for key in HOST_METADATA:
                    meta.pop(key, None)
            for value in node.values():
                scrub(value)
        elif isinstance(node, list):
            for value in node:
                scrub(value)

    scrub(data)
    path.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")


# --------------------------------------------------------------------------- one writer


# (lock file, thread) of the locks this process holds: a writer that already holds a
# file's lock (`convbench run` holds it from before calibration) enters it again freely
_HELD: set[tuple[str, int]] = set()


@contextlib.contextmanager
def results_lock(results):
    """Hold the exclusive lock of the results file `results` (ValueError when another
    process holds it); removes stale temporary files of that file, and the lock file
    when done. Re-entrant within one thread."""
    results = Path(results)
    key = (os.path.abspath(lock_path(results)), threading.get_ident())
    if key in _HELD:
        yield lock_path(results)
        return
    try:
        results.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(results, exc) from None
    if results.is_dir():
        raise ValueError(f"cannot write {clip(results, 150)}: it is a directory")
    lock = lock_path(results)
    fd = None
    if fcntl is not None:
        while True:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise os_error(results, exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                try:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                except OSError:
                    holder = ""
                os.close(fd)
                raise ValueError(
                    f"{clip(results, 150)}: another sweep or merge is writing this file"
                    + (f" (pid {holder})" if holder.isdigit() else "")
                    + "; wait for it to finish, or write to another file") from None
            try:  # the file we locked may have been removed by the previous holder
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    _HELD.add(key)
    try:
        _clean_temporaries(results)
        yield lock
    finally:
        _HELD.discard(key)
        _clean_temporaries(results)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(lock)
            os.close(fd)


def _clean_temporaries(results: Path) -> None:
    """Left by a killed writer of `results` (only ever called under its lock)."""
    shutil.rmtree(tmp_dir(results), ignore_errors=True)
    for name in (results.name, sidecar_path(results).name):
        for stale in results.parent.glob(f".{name}.tmp*"):
            if stale.is_file():
                with contextlib.suppress(OSError):
                    stale.unlink()



# --------------------------------------------------------------------------- merging


def _run_key(run) -> tuple:
    """Identity of a pyperf run: its values, warm-ups and metadata (dates included)."""
    return (tuple(run.values), tuple(tuple(w) for w in run.warmups),
            json.dumps(run.get_metadata(), sort_keys=True, default=str))


def run_classes(suite) -> set[str]:
    """The machine classes the runs of a suite were measured on (one for a sound file)."""
    from harness.machine import class_of_metadata

    return {class_of_metadata(run.get_metadata()) for bench in suite.get_benchmarks()
            for run in bench.get_runs()}


def suite_class(suite, path) -> str:
    """The one machine class of a suite's runs; ValueError naming `path` when they are of
    several (a file merged across classes before merge refused it)."""
    classes = sorted(run_classes(suite))
    if len(classes) != 1:
        raise ValueError(f"{clip(path, 150)}: its runs were measured on "
                         + (f"{len(classes)} machine classes ({clip(', '.join(classes), 150)})"
                            if classes else "no machine class")
                         + "; timings of two classes are never compared, so one file holds "
                           "one class")
    return classes[0]


def _sweep_options_of(run) -> dict | None:
    try:
        return dict(json.loads(run.get_metadata().get("sweep_options") or "null"))
    except (TypeError, ValueError):
        return None


def _one_sweep_in_shards(suites) -> bool:
    """Whether the runs of `suites` are shards of one sweep: the same sweep options but
    for `shard` (then the merged file is that sweep, and resumes as it)."""
    options = [_sweep_options_of(run) for suite in suites for bench in suite
               for run in bench.get_runs()]
    if not options or any(o is None for o in options) or not any(o.get("shard") for o in options):
        return False
    return len({json.dumps({k: v for k, v in o.items() if k != "shard"}, sort_keys=True)
                for o in options}) == 1


def unsharded_metadata(run) -> dict:
    """A run's metadata as the whole sweep records it: no `shard` in its sweep options
    (the history counts a shard's run and the same run in the merged file as one)."""
    meta = run.get_metadata()
    options = _sweep_options_of(run)
    if not options or not options.get("shard"):
        return meta
    options["shard"] = None  # as a sweep without --shard records it
    meta = dict(meta)
    meta["sweep_options"] = json.dumps(options, sort_keys=True, separators=(",", ":"))
    return meta


def _unsharded(run):
    return run._replace(metadata=unsharded_metadata(run))


def merge(inputs, output, err=None) -> tuple[int, int]:
    """Join shard result files (and their sidecars) into `output`: (benchmarks, skips).

    A benchmark found in several files gets the union of its runs; runs that are the
    same (values, warm-ups, dates and other metadata: the same file given twice, a
    copy) are counted once, and that is said on `err`. Files of two machine classes are
    refused, as `convbench compare` refuses them (each run keeps its `machine_class` and
    `isa`). Shards of one sweep merge into that sweep: `shard` leaves the recorded
    sweep options, so `--resume` continues the merged file as the whole sweep.
    """
    import pyperf

    err = err or sys.stderr
    output = Path(output)
    paths = [Path(p) for p in inputs]
    for p in paths:
        if not p.exists():
            raise ValueError(f"merge: {clip(p, 150)} does not exist")
        require_regular(p, "results file")
        if sidecar_path(p).exists():  # checked before the lock: a FIFO would block the read
            require_regular(sidecar_path(p), "skips file")
    with results_lock(output):
        if output.exists():
            raise ValueError(f"{clip(output, 150)} already exists")
        if any(p.resolve() == output.resolve() for p in paths):
            raise ValueError(f"merge: {clip(output, 150)} is both an input and the output")
        loaded = []
        for path in paths:
            if path.stat().st_size == 0:
                print(f"merge: {clip(path, 150)} is empty; skipped", file=err)
                continue
            part = load_suite(path)
            if part.get_benchmarks():
                cls = suite_class(part, path)
                if loaded and cls != loaded[0][2]:
                    first, first_cls = loaded[0][0], loaded[0][2]
                    raise ValueError(
                        f"{clip(first.name, 60)} is of machine class {first_cls} and "
                        f"{clip(path.name, 60)} of {cls}: refusing to merge across classes "
                        "(their timings are never compared)")
            loaded.append((path, part, cls if part.get_benchmarks() else None))
        unshard = _one_sweep_in_shards([part for _, part, _ in loaded])
        suite = None
        seen: dict[str, tuple[set, str]] = {}
        for path, part, _ in loaded:
            for bench in part:
                name = bench.get_name()
                runs = [_unsharded(r) if unshard else r for r in bench.get_runs()]
                if suite is None or name not in seen:
                    keys = {_run_key(r) for r in runs}
                    bench = pyperf.Benchmark(_unique_runs(runs))
                    if suite is None:
                        suite = pyperf.BenchmarkSuite([bench])
                    else:
                        suite.add_benchmark(bench)
                    seen[name] = (keys, str(path))
                    continue
                keys, first = seen[name]
                target = suite.get_benchmark(name)
                added = dups = 0
                for run in runs:
                    key = _run_key(run)
                    if key in keys:
                        dups += 1
                        continue
                    try:
                        target.add_run(run)
                    except ValueError as exc:  # pyperf: a host or CPU metadata differs
                        raise ValueError(f"{clip(name, 60)} of {clip(path.name, 60)} "
                                         f"cannot join its runs in "
                                         f"{clip(Path(first).name, 60)}: {exc}") from None
                    keys.add(key)
                    added += 1
                note = f"merge: {clip(name, 120)} is in {clip(first, 80)} and {clip(path, 80)}"
                if dups and not added:
                    note += "; the same runs, counted once"
                elif dups:
                    note += f"; {added} runs joined, {dups} identical ones counted once"
                else:
                    note += "; joining its runs"
                print(note, file=err)
        entries: dict[tuple, dict] = {}
        for path, _, _ in loaded:
            for e in load_sidecar(path):
                entries[(e.get("name"), e.get("status"))] = e
        if suite is None:
            raise ValueError("merge: no benchmarks in "
                             + clip(", ".join(str(p) for p in paths), 200))
        write_suite(suite, output)
        names = set(suite.get_benchmark_names())
        kept = [e for e in entries.values() if e.get("name") not in names]
        write_sidecar(output, kept)
    return len(names), len(kept)


def _unique_runs(runs) -> list:
    out, keys = [], set()
    for run in runs:
        key = _run_key(run)
        if key not in keys:
            keys.add(key)
            out.append(run)
    return out

