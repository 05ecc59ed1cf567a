"""Shape sets: the conv layers of real networks, one data file per network.

Each file in `harness/shapes/` holds one layer per line::

    <conv_type> <benchdnn descriptor ending in n"network:layer">

for example ``pointwise mb1ic64ih56oc256oh56kh1n"resnet50:res2a_branch2c*3"``.
`#` starts a comment. The layer name may end in ``*N``: the network has N
identical layers of that shape (benchdnn's repeat mark). A `transposed2d`
line is a deconvolution descriptor (benchdnn's deconv driver, ic/ih being
the input of the transposed conv) and is parsed with ``transposed=True``;
a ``deconv:`` prefix does the same on any line.

Header comments of the form ``# key: value`` are read as directives:

- ``# published: 3.8e9 multiply-adds (He et al. 2016, Table 1; conv + fc)``:
  the network's published cost, the source in the closing parentheses.
- ``# published-fc: 2.048e6 multiply-adds (fc1000: 2048 x 1000)``: the part
  of the published figure that is not a convolution in this file (fully
  connected layers), so the conv-only figure is ``value - fc``.
- ``# tolerance: 0.03``: how far (relative) the conv-only total of the file
  may sit from the conv-only published figure.
- ``# views: depthwise_separable flattened``: lines of these types restate
  layers already counted in the file (another type's view of the same
  layer); `totals` lists them but leaves them out of the total.
- ``# full: no``: the file is not a network (its layers are copies or shrunk
  versions of network layers) and stays out of `full`.

`full` is the union of every network file: all files except those in
`NOT_IN_FULL` (`quick`, `ci`) and those marked ``# full: no``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from harness.messages import clip
from kernels.spec import ConvSpec
from kernels.types import CONV_TYPES, check_spec

SHAPES_DIR = Path(__file__).resolve().parent / "shapes"
FULL = "full"
# Sets that copy or shrink network layers rather than list a network: not part of "full".
# A file can also opt out with a header line "# full: no".
NOT_IN_FULL = ("quick", "ci")

__all__ = [
    "FULL", "Layer", "Published", "SHAPES_DIR", "available_sets", "load_file", "load_set",
    "published_total", "set_path", "totals",
]


@dataclass(frozen=True)
class Layer:
    """One conv layer of a network: `repeat` identical copies of `spec`, run as `conv_type`."""

    network: str
    name: str
    conv_type: str
    spec: ConvSpec
    repeat: int = 1

    @property
    def label(self) -> str:
        """``network:layer``, the layer's name in benchmark names and reports."""
        return f"{self.network}:{self.name}"


class Published(NamedTuple):
    """A network's published cost, as the header of its shape file gives it."""

    value: float        # the published figure (multiply-adds)
    source: str         # paper and table
    fc: float = 0.0     # multiply-adds of the non-conv (fc) layers inside `value`
    tolerance: float | None = None  # relative agreement the file claims for conv-only totals
    text: str = ""      # the header line as written

    @property
    def conv_only(self) -> float:
        return self.value - self.fc


_DIRECTIVE_RE = re.compile(
    r"^#\s*(published|published-fc|tolerance|views|full)\s*:\s*(.*?)\s*$")
_FIGURE_RE = re.compile(r"^([0-9][0-9_.]*(?:[eE][+-]?\d+)?)\s*([^(]*?)\s*(?:\((.*)\))?\s*$")
_NAME_PART_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_REPEAT_RE = re.compile(r"^(.*?)\*(\d+)$")
# The largest repeat mark accepted: real networks repeat a layer a few dozen times.
MAX_REPEAT = 100_000




def _read(path: Path) -> str:
    """The text of a shape file; ValueError naming it when it cannot be read as UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"shape file: cannot read {clip(path)}: "
                         f"{exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise ValueError(f"{_where(path, line)}: not UTF-8 text (byte "
                         f"0x{exc.object[exc.start]:02x} at offset {exc.start})") from None


# ------------------------------------------------------------------------ sets
def available_sets() -> list[str]:
    """The shape sets: every file stem in `harness/shapes/`, plus "full"."""
    stems = sorted(p.stem for p in SHAPES_DIR.glob("*.txt"))
    return stems + [FULL]


def set_path(name: str) -> Path:
    """The file behind a set name (ValueError for an unknown set or for "full")."""
    path = SHAPES_DIR / f"{name}.txt"
    if name == FULL or not path.is_file() or "/" in name or "\\" in name:
        raise ValueError(
            f"shape set: unknown set {name!r}"
            + ("" if name != FULL else " (it has no file: it is composed of the network files)")
            + f"; available sets are {', '.join(available_sets())}"
        )
    return path


def _network_sets() -> list[str]:
    """The sets whose union is "full"."""
    out = []
    for stem in available_sets():
        if stem == FULL or stem in NOT_IN_FULL:
            continue
        marks = _directives(SHAPES_DIR / f"{stem}.txt").get("full", [])
        if any(value.strip().lower() in ("no", "false", "0") for _, value in marks):
            continue
        out.append(stem)
    return out


def load_set(name: str) -> list[Layer]:
    """The layers of a shape set (a name from `available_sets()`, or a path to a .txt file).

    Raises ValueError naming the set and the available ones when `name` is
    unknown, and naming file and line for a line that does not parse, does
    not fit its conv type, or repeats a (type, network, layer) already in the set.
    """
    if not isinstance(name, str):
        raise ValueError(f"shape set: expected a set name, got {type(name).__name__}")
    if name == FULL:
        layers: list[Layer] = []
        seen: dict[tuple[str, str, str], str] = {}
        for stem in _network_sets():
            for layer in _load_cached(str(SHAPES_DIR / f"{stem}.txt")):
                key = (layer.conv_type, layer.network, layer.name)
                if key in seen:
                    raise ValueError(
                        f"shape set full: {layer.conv_type} {layer.label} is in both "
                        f"{seen[key]}.txt and {stem}.txt"
                    )
                seen[key] = stem
                layers.append(layer)
        return layers
    if name.endswith(".txt") and Path(name).is_file():
        return load_file(name)
    return list(_load_cached(str(set_path(name))))


@cache
def _load_cached(path: str) -> tuple[Layer, ...]:
    return tuple(load_file(path))


def _where(path: Path, lineno: int) -> str:
    try:
        shown = path.resolve().relative_to(SHAPES_DIR.parent.parent)
    except ValueError:
        shown = path
    return f"{shown}:{lineno}"


def _strip_comment(line: str) -> str:
    """Drop a `#` comment that is not inside the quoted layer name."""
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            return line[:i]
    return line


def _split_name(full: str) -> tuple[str | None, str, int]:
    """'net:layer*3' -> ('net', 'layer', 3); 'layer' -> (None, 'layer', 1)."""
    repeat = 1
    m = _REPEAT_RE.match(full)
    if m:
        full, repeat = m.group(1), int(m.group(2))
        if repeat < 1:
            raise ValueError(f"repeat: must be at least 1, got *{repeat}")
        if repeat > MAX_REPEAT:
            raise ValueError(f"repeat: at most *{MAX_REPEAT}, got *{clip(repeat, 30)}")
    network, sep, layer = full.rpartition(":")
    if not sep:
        network = None
    for part, what in ((network, "network"), (layer, "layer")):
        if part is not None and not _NAME_PART_RE.match(part):
            raise ValueError(
                f"name: the {what} part {part!r} may only use letters, digits, '_', '.' and '-'"
            )
    return network, layer, repeat


def load_file(path) -> list[Layer]:
    """Read one shape file (see the module docstring for the format)."""
    path = Path(path)
    text = _read(path)
    layers: list[Layer] = []
    seen: dict[tuple[str, str, str], int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        where = _where(path, lineno)
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise ValueError(f"{where}: expected '<conv_type> <descriptor>', "
                             f"got {clip(repr(line))}")
        conv_type, descriptor = parts
        if conv_type not in CONV_TYPES:
            raise ValueError(
                f"{where}: unknown conv type {clip(repr(conv_type), 60)}; known types are "
                f"{', '.join(CONV_TYPES)}"
            )
        try:
            spec = ConvSpec.parse(descriptor, transposed=conv_type == "transposed2d")
            check_spec(conv_type, spec)
            if not spec.name:
                raise ValueError('name: every layer needs a name, n"network:layer"')
            network, layer, repeat = _split_name(spec.name)
        except ValueError as exc:
            raise ValueError(f"{where}: {clip(exc, 300)}") from None
        item = Layer(network=network or path.stem, name=layer, conv_type=conv_type, spec=spec,
                     repeat=repeat)
        key = (conv_type, item.network, item.name)
        if key in seen:
            raise ValueError(
                f"{where}: {conv_type} {item.label} is already on line {seen[key]}"
            )
        seen[key] = lineno
        layers.append(item)
    return layers


# ------------------------------------------------------------------ headers
def _directives(path: Path) -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = {}
    for lineno, raw in enumerate(_read(path).splitlines(), start=1):
        m = _DIRECTIVE_RE.match(raw.strip())
        if m:
            found.setdefault(m.group(1), []).append((lineno, m.group(2)))
    return found


def _figure(path: Path, lineno: int, text: str) -> tuple[float, str]:
    m = _FIGURE_RE.match(text)
    if not m:
        raise ValueError(
            f"{_where(path, lineno)}: expected '<number> multiply-adds (source)', got {text!r}"
        )
    return float(m.group(1).replace("_", "")), (m.group(3) or "").strip()


def _views(path: Path) -> set[str]:
    views: set[str] = set()
    for lineno, value in _directives(path).get("views", []):
        for t in value.split():
            if t not in CONV_TYPES:
                raise ValueError(f"{_where(path, lineno)}: views: unknown conv type {t!r}")
            views.add(t)
    return views


def published_total(name: str) -> Published | None:
    """The published cost of the set's network, from its file header (None if none given)."""
    if name == FULL:
        return None
    path = set_path(name)
    found = _directives(path)
    if "published" not in found:
        return None
    (lineno, text), *more = found["published"]
    if more:
        raise ValueError(f"{_where(path, more[0][0])}: a second 'published:' line")
    value, source = _figure(path, lineno, text)
    fc = 0.0
    for fc_line, fc_text in found.get("published-fc", []):
        fc += _figure(path, fc_line, fc_text)[0]
    tolerance = None
    for tol_line, tol_text in found.get("tolerance", []):
        try:
            tolerance = float(tol_text.rstrip("%")) / (100.0 if tol_text.endswith("%") else 1.0)
        except ValueError:
            raise ValueError(
                f"{_where(path, tol_line)}: tolerance: expected a number, got {tol_text!r}"
            ) from None
    return Published(value=value, source=source, fc=fc, tolerance=tolerance,
                     text=f"# published: {text}")


# -------------------------------------------------------------------- totals
TOTAL_COLUMNS = ["network", "layer", "conv_type", "spec", "repeat", "multiply_adds_each",
                 "multiply_adds", "in_total"]


def totals(name: str) -> pd.DataFrame:
    """Multiply-adds per layer (direct algorithm, padded taps included, times repeat)
    and a last row, layer "total", that sums the layers counted in the network total.

    Lines whose type the file header lists under `views:` (another type's view of
    a layer already counted) show `in_total=False` and stay out of the sum.
    `df.attrs["published"]` holds `published_total(name)`.
    """
    import kernels  # the algorithm registry; imported here so loading sets stays light

    layers = load_set(name)
    if name == FULL:
        views_by_net = {stem: _views(SHAPES_DIR / f"{stem}.txt") for stem in _network_sets()}
        counted = []
        for stem in _network_sets():
            for layer in _load_cached(str(SHAPES_DIR / f"{stem}.txt")):
                counted.append(layer.conv_type not in views_by_net[stem])
    else:
        path = Path(name) if name.endswith(".txt") and Path(name).is_file() else set_path(name)
        views = _views(path)
        counted = [layer.conv_type not in views for layer in layers]
    rows = []
    for layer, in_total in zip(layers, counted):
        each = kernels.multiplications(layer.conv_type, "direct", layer.spec)
        rows.append({
            "network": layer.network, "layer": layer.name, "conv_type": layer.conv_type,
            "spec": str(layer.spec), "repeat": layer.repeat, "multiply_adds_each": each,
            "multiply_adds": each * layer.repeat, "in_total": in_total,
        })
    total = sum(r["multiply_adds"] for r in rows if r["in_total"])
    rows.append({
        "network": Path(name).stem if name.endswith(".txt") else name, "layer": "total",
        "conv_type": "", "spec": "",
        "repeat": sum(r["repeat"] for r in rows if r["in_total"]),
        "multiply_adds_each": pd.NA, "multiply_adds": total, "in_total": True,
    })
    df = pd.DataFrame(rows, columns=TOTAL_COLUMNS)
    try:
        df["multiply_adds_each"] = df["multiply_adds_each"].astype("Int64")
        df["multiply_adds"] = df["multiply_adds"].astype("int64")
        df["repeat"] = df["repeat"].astype("int64")
    except (OverflowError, TypeError, ValueError):
        raise ValueError(f"shape set {clip(name)}: the multiply-add total {clip(total, 40)} "
                         "does not fit in 64 bits") from None
    df.attrs["published"] = None if name.endswith(".txt") else published_total(name)
    return df
