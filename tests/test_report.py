"""The HTML report: built from a small real sweep, parsed, and rendered in headless Chromium.

The sweep is timed here with `harness.report.sample` (real kernels.run calls on small
shapes, written in the runner's result format: pyperf suite + skips sidecar).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.report import build_report, load_results, main
from harness.report.sample import make_sample_suite, scaled_copy

LAYERS = (
    ("conv2d", "sample", "c8_16", "mb1ic8ih16oc8oh16kh3ph1"),
    ("conv2d", "seed", "s8.2", "mb1ic3ih7oc128oh5kh3"),
    ("depthwise_separable", "seed", "s8.2", "mb1ic3ih7oc128oh5kh3"),
    ("spatially_separable", "sample", "c4_16", "mb1ic4ih16oc4oh14kh3"),
    ("transposed2d", "sample", "up8", "deconv:mb1ic8ih8oc4oh16kh4sh2ph1"),
    ("depthwise", "sample", "dw8_16", "g8mb1ic8ih16oc8oh16kh3ph1"),
)
SLOW = "conv2d/direct/sample:c8_16@t2"  # made slower in run B
SWEEP = dict(threads=(1, 2), scaling_types=("conv2d",), runs=2, values=4, min_seconds=0.001)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    a = make_sample_suite(d / "a.json", LAYERS, command="convbench bench --set test", **SWEEP)
    # run B: run A with one benchmark slower than every value A measured for it (timings
    # on a busy machine are too noisy to plant a regression by re-timing)
    values = load_results(a).frame.set_index("name").loc[SLOW, "values"]
    b = scaled_copy(a, d / "b.json", {SLOW: 3.0 * max(values) / min(values)})
    return d, a, b


@pytest.fixture(scope="module")
def full_report(sweep):
    d, a, _ = sweep
    acc = pd.DataFrame({"algorithm": ["winograd_f2", "winograd_f4", "direct"] * 2,
                        "channels": [8] * 3 + [64] * 3,
                        "max_rel_error": [2e-7, 3e-6, 8e-8, 5e-7, 9e-6, 1e-7]})
    out = build_report(a, d / "a.html", accuracy=acc, command="convbench report a.json")
    return out, Page.parse(out)


class Page(HTMLParser):
    """Sections, tables, images and visible text of a report page."""

    def __init__(self):
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.stack: list[str] = []
        self.images: list[dict] = []
        self.tables = 0
        self.rows = 0
        self.external: list[str] = []
        self.text: list[str] = []
        self._skip = 0

    @classmethod
    def parse(cls, path: Path) -> Page:
        p = cls()
        p.feed(Path(path).read_text(encoding="utf-8"))
        return p

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("style", "script"):
            self._skip += 1
        if tag == "section":
            self.stack.append(a.get("id", ""))
            self.sections[a.get("id", "")] = {"tables": 0, "images": 0, "text": ""}
        if tag == "table":
            self.tables += 1
        if tag == "tr":
            self.rows += 1
        if tag == "img":
            self.images.append(a)
        for key in ("src", "href"):
            v = a.get(key) or ""
            if re.match(r"(https?:)?//", v) or (tag == "link" and key == "href"):
                self.external.append(v)
        for sid in self.stack:
            if tag == "table":
                self.sections[sid]["tables"] += 1
            if tag == "img":
                self.sections[sid]["images"] += 1

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip -= 1
        if tag == "section" and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if self._skip:
            return
        self.text.append(data)
        for sid in self.stack:
            self.sections[sid]["text"] += data

    @property
    def all_text(self) -> str:
        return " ".join(self.text)


def _png(src: str) -> bytes:
    assert src.startswith("data:image/png;base64,"), src[:40]
    raw = base64.b64decode(src.split(",", 1)[1], validate=True)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return raw


# ------------------------------------------------------------------------------- loading
def test_load_derives_the_columns(sweep):
    _, a, _ = sweep
    res = load_results(a)
    df = res.frame
    assert len(df) > 10 and not res.skips.empty
    for col in ("median", "iqr", "mad", "gflops", "pct_peak", "s_per_mult", "intensity",
                "speedup_over_direct", "ratio_to_torch", "compile_seconds", "threads"):
        assert col in df, col
    r = df.iloc[0]
    assert r["gflops"] == pytest.approx(2 * r["direct_multiplications"] / r["median"] / 1e9)
    assert (df.loc[df["algorithm"] == "direct", "speedup_over_direct"] == 1).all()
    assert set(df["threads"]) == {1.0, 2.0}
    assert (df["n_values"] == 8).all()
    assert res.run_info["calib_sgemm_gflops"] and res.dates[0] is not None


# -------------------------------------------------------------------------- the page
def test_report_has_every_section_table_and_image(full_report):
    out, page = full_report
    for sid in ("summary", "types", "type-conv2d", "type-transposed2d", "mults", "roofline",
                "accuracy", "compile", "threads", "seed", "seed-checkerboard",
                "seed-dilation", "seed-separable", "skips"):
        assert sid in page.sections, sid
    for sid, sec in page.sections.items():  # no empty section
        assert sec["tables"] or sec["images"] or len(sec["text"].strip()) > 40, sid
    assert page.tables >= 12 and page.rows > 40
    assert len(page.images) >= 10
    for img in page.images:
        _png(img["src"])
        assert img.get("alt")
    assert not page.external, page.external  # self-contained: opens offline
    text = page.all_text
    assert "convbench bench --set test" in text  # the sweep command
    assert "sgemm 1 thread" in text and "GB/s" in text
    assert "nan" not in text.split()


def test_seed_ideas_are_computed(full_report):
    _, page = full_report
    checker = page.sections["seed-checkerboard"]["text"]
    assert "k=3, s=2 gives 1/2 in 1-D and 1/2/4 in 2-D" in checker
    assert "k=4, s=2 is flat (4)" in checker
    assert "3×3, 7×7, 15×15" in page.sections["seed-dilation"]["text"]
    ratios = page.sections["seed-separable"]["text"]
    assert "86,400" in ratios and "10,275" in ratios and "11.9%" in ratios
    assert "81" in ratios and "72" in ratios
    # the sweep has conv2d and depthwise_separable on the seed's shape: a measured ratio
    assert "depthwise separable / conv2d" in ratios


def test_type_tables_show_reasons_for_cells_that_did_not_run(full_report):
    out, page = full_report
    html = out.read_text(encoding="utf-8")
    assert "n/a: scipy.signal" in html or "Not run on any layer" in html
    conv = page.sections["type-conv2d"]["text"]
    assert "GFLOP/s" in conv and "peak" in conv and "/×" in conv


def test_accuracy_section_only_with_accuracy_data(sweep):
    d, a, _ = sweep
    page = Page.parse(build_report(a, d / "no_acc.html"))
    assert "accuracy" not in page.sections


def test_accuracy_table_in_wide_form(tmp_path):
    from harness.report import load_accuracy

    csv = tmp_path / "acc.csv"
    csv.write_text("channels,direct,winograd_f2,winograd_f4\n16,1e-7,3e-7,2e-6\n"
                   "64,2e-7,6e-7,5e-6\n", encoding="utf-8")
    acc = load_accuracy(csv)
    assert set(acc.columns) >= {"algorithm", "channels", "max_rel_error"} and len(acc) == 6


def test_comparison_lists_worst_offender_first(sweep):
    d, a, b = sweep
    out = d / "cmp.html"
    assert main([str(a), str(b), "-o", str(out)]) == 0
    page = Page.parse(out)
    sec = page.sections["compare-0"]
    assert sec["images"] == 1 and sec["tables"] >= 2
    assert "Geometric mean" in sec["text"] and "Mann–Whitney" in sec["text"]
    assert "1 slower" in sec["text"]
    table = sec["text"].split("worst offenders first", 1)[1]
    first = re.search(r"[a-z0-9_]+/[a-z0-9_]+/[^\s:]+:\S+", table)
    assert first and first.group(0) == SLOW, table[:400]


def test_partial_results_have_no_empty_or_broken_sections(tmp_path):
    res = make_sample_suite(tmp_path / "one.json", LAYERS[:1], algorithms=("direct",),
                            peers=(), threads=(1,), runs=2, values=3, min_seconds=0.001)
    out = build_report(res, tmp_path / "one.html")
    page = Page.parse(out)
    assert {"summary", "types", "type-conv2d", "mults", "seed"} <= set(page.sections)
    assert "threads" not in page.sections  # one thread count
    assert "compare-0" not in page.sections and "accuracy" not in page.sections
    for sid, sec in page.sections.items():
        assert sec["tables"] or sec["images"] or len(sec["text"].strip()) > 40, sid
    assert "vs torch" not in page.sections["summary"]["text"]
    for img in page.images:
        _png(img["src"])
    assert "nan" not in page.all_text.split()


def test_cli_errors_are_reported(tmp_path, capsys):
    assert main([str(tmp_path / "missing.json"), "-o", str(tmp_path / "x.html")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------------------- Chromium
def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "chromium"]
        if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True)
            subprocess.run(cmd, env=env, capture_output=True)
        if shutil.which("chromium"):
            return shutil.which("chromium")
        pytest.skip("Chromium is not installed and `apt-get install -y chromium` failed")
    pytest.skip("Chromium is not installed (install Debian's `chromium`; the test installs it "
                "itself only when running as root with apt-get)")


def _chromium_args(tmp_path: Path) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}"]


def test_report_renders_in_headless_chromium(full_report, tmp_path):
    from matplotlib.image import imread

    chromium = _chromium()
    out, page = full_report
    url = out.resolve().as_uri()
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *_chromium_args(tmp_path), f"--screenshot={shot}",
                    "--window-size=1400,3000", url], capture_output=True, timeout=120)
    assert shot.exists(), "Chromium wrote no screenshot"
    pixels = imread(shot)
    assert pixels.shape[0] == 3000 and pixels.shape[1] == 1400
    assert float(np.var(pixels[..., :3])) > 0.005, "the screenshot is blank"
    # the page's own check: every <img> decoded (naturalWidth > 0) once loaded
    dom = subprocess.run([chromium, *_chromium_args(tmp_path), "--dump-dom",
                          "--virtual-time-budget=10000", url],
                         capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'data-images="(\d+)" data-broken-images="(\d+)"', dom)
    assert m, "the image check did not run"
    assert int(m.group(1)) == len(page.images)
    assert int(m.group(2)) == 0, f"{m.group(2)} images failed to load"
    keep = os.environ.get("CONVBENCH_REPORT_SCREENSHOT")
    if keep:  # to look at the page: CONVBENCH_REPORT_SCREENSHOT=shot.png pytest ...
        shutil.copy(shot, keep)


def test_numeric_range_section_from_the_file_beside_the_results(sweep, tmp_path):
    from harness.checks.numeric_range import table

    d, a, _ = sweep
    results = tmp_path / "run.json"
    shutil.copy(a, results)
    rows = table(types=("conv2d",), algorithms=("direct", "winograd_f4"))
    (tmp_path / "run.numerics.json").write_text(json.dumps(rows), encoding="utf-8")
    page = Page.parse(build_report(results, tmp_path / "run.html"))
    assert "numerics" in page.sections
    text = " ".join(page.text)
    assert "winograd_f4" in text and "NaN spread" in text
    (tmp_path / "run.numerics.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="not a numeric-range table"):
        build_report(results, tmp_path / "bad.html")
