"""The report and the history page escape every string a results file, a skips file or a
history database brings (issue 29, item 7), the header escapes once (issue 24), and the
whole-network section says when it has too few layers for a network total (issue 24)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pandas as pd
import pyperf
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import history
from harness.report import build_report
from harness.report import networks as nets

PAYLOADS = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>")
CALIB = {"calib_sgemm_gflops_1t": 95.0, "calib_sgemm_gflops": 190.0,
         "calib_bandwidth_gbs": 22.0}
# every string of a benchmark's metadata the report or the history reads
STRING_FIELDS = ("network", "layer", "spec", "mode", "hostname", "cpu_model", "cpu_model_name",
                 "platform", "python_version", "numba_version", "llvmlite_version",
                 "numpy_version", "torch_version", "onnxruntime_version", "openvino_version",
                 "perf_version", "threading_layer", "command", "set", "blas", "isa", "blocks",
                 "machine_class", "commit")


def crafted_suite(path, payload: str, conv_types=("conv2d",), day: int = 1,
                  scale: float = 1.0):
    """A results file whose every string field carries `payload`; the conv type is a real
    one or the payload itself (both reach the page)."""
    benches = []
    for conv_type in conv_types:
        for algorithm in ("direct", payload, "torch"):
            meta = {f: payload for f in STRING_FIELDS}
            name = f"{conv_type}/{algorithm}/{payload}:{payload}"
            meta.update(name=name, conv_type=conv_type, algorithm=algorithm, threads=1,
                        multiplications=1000, direct_multiplications=1000,
                        compile_seconds=0.1, isa_overridden=0, vector_bits=512,
                        cpu_count=2, sweep_options=json.dumps({"pyperf": [payload]}),
                        **CALIB)
            runs = [pyperf.Run([scale * 1e-3 * (1 + 0.01 * k), scale * 1.1e-3],
                               collect_metadata=False,
                               metadata=dict(meta, date=f"2026-01-{day:02d} 10:00:0{k}"))
                    for k in range(2)]
            benches.append(pyperf.Benchmark(runs))
    pyperf.BenchmarkSuite(benches).dump(str(path), replace=True)
    skips = [{key: payload for key in ("name", "status", "conv_type", "algorithm", "network",
                                       "layer", "spec", "reason", "mode")}]
    skips.append(dict(skips[0], conv_type="conv2d", status="failed"))
    skips.append(dict(skips[0], conv_type="conv2d", algorithm="winograd_f2"))
    path.with_name(path.stem + ".skips.json").write_text(json.dumps(skips))
    return path


def assert_no_raw_tag(text: str) -> None:
    for raw in ("<script>alert", "<img src=x", "<img src=\"x\""):
        assert raw not in text, raw
    # the page's own script is the only one
    assert len(re.findall(r"<script", text, re.I)) <= 1


def crafted_history(tmp_path, payload: str, commits: int = 16):
    """A history database of crafted files with a step (x1.5 from the middle commit), so
    that its largest-steps tables list the crafted benchmark names."""
    db = tmp_path / "history.sqlite"
    for day in range(1, commits + 1):
        f = crafted_suite(tmp_path / f"h{day}.json", payload, ("conv2d", payload), day=day,
                          scale=1.5 if day > commits // 2 else 1.0)
        assert history.main(["add", str(f), "--commit", f"{payload}{day:02d}", "--mode",
                             payload, "--db", str(db)]) == 0
    return db


@pytest.mark.parametrize("payload", PAYLOADS, ids=["script", "img"])
def test_every_user_string_is_escaped_in_the_report(tmp_path, payload, capsys):
    results = crafted_suite(tmp_path / "run.json", payload, ("conv2d", payload))
    db = crafted_history(tmp_path, payload)
    other = crafted_suite(tmp_path / "other.json", payload, ("conv2d", payload))
    page = build_report([results, other], tmp_path / "cmp.html", history=db).read_text()
    assert "History over commits" in page and "Comparison" in page
    assert "Largest slowdowns" in page and "x1.500" in page
    assert payload not in page and "alert(1)" in page  # it is there, escaped
    assert_no_raw_tag(page)
    page = build_report(results, tmp_path / "one.html", history=db).read_text()
    assert "Skipped cells" in page and "Whole networks" in page
    assert_no_raw_tag(page)


@pytest.mark.parametrize("payload", PAYLOADS, ids=["script", "img"])
def test_every_user_string_is_escaped_in_the_history_page(tmp_path, payload, capsys):
    db = crafted_history(tmp_path, payload)
    out = tmp_path / "history.html"
    assert history.main(["report", "--db", str(db), "--html", str(out)]) == 0
    page = out.read_text()
    assert "x1.500" in page and "alert(1)" in page
    assert_no_raw_tag(page)


MARKUP = st.text(alphabet=st.sampled_from(list("<>&\"'/=ab ")), min_size=1, max_size=30)


class Cells(HTMLParser):
    """The tags of a table and the text of its cells, as a browser would read them."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.texts: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        if data.strip():
            self.texts.append(data)


@given(cell=MARKUP, label=MARKUP, column=MARKUP)
def test_styled_tables_escape_cells_and_labels(cell, label, column):
    from harness.report.tables import styled

    def table(c, la, co):
        return Cells(styled(pd.DataFrame({co: [c]}, index=pd.Index([la], name="layer")),
                            index=True))

    got, plain = table(cell, label, column), table("c", "l", "k")
    assert got.tags == plain.tags  # no tag came from the strings
    texts = " ".join(got.texts)
    for text in (cell, label, column):  # each string is there as text
        assert text.strip() in texts


def test_the_vector_isa_row_is_escaped_once(tmp_path):
    f = crafted_suite(tmp_path / "run.json", "avx512")
    page = build_report(f, tmp_path / "r.html", history=None).read_text()
    row = re.search(r"<td>vector ISA</td><td>(.*?)</td>", page).group(1)
    assert "the host&#x27;s" in row and "&amp;" not in row, row
    blas = re.search(r"<td>BLAS</td><td>(.*?)</td>", page).group(1)
    assert blas == "avx512"


# --------------------------------------------------------------------------- networks


def frame_of(layers: dict, network="AlexNet") -> pd.DataFrame:
    """A report frame: `layers` maps layer -> {algorithm: seconds}."""
    rows = [dict(network=network, layer=layer, conv_type="conv2d", algorithm=a, median=s,
                 mode="call", threads=1.0, layer_repeat=1.0)
            for layer, times in layers.items() for a, s in times.items()]
    return pd.DataFrame(rows)


def counted_of(n: int):
    return lambda network: {("conv2d", f"l{i}") for i in range(n)}


def test_a_network_with_few_layers_measured_has_no_total():
    totals = nets.network_totals(frame_of({"l0": {"direct": 1e-3, "im2col": 2e-3}}),
                                 counted=counted_of(5))
    assert nets.totals_table(totals).empty  # 1 of 5: no total shown
    assert nets.partial_notes(totals) == ["AlexNet (call mode, 1 thread): 1 of 5 layers: "
                                          "not a network total"]
    assert nets.totals_figure(totals) is None


def test_a_network_with_half_its_layers_measured_has_its_total():
    layers = {f"l{i}": {"direct": 1e-3, "im2col": 2e-3} for i in range(3)}
    layers["l0"] = {"direct": 1e-3}  # im2col ran 2 of the 3 measured layers
    totals = nets.network_totals(frame_of(layers), counted=counted_of(6))
    table = nets.totals_table(totals)
    assert len(table) == 1 and nets.partial_notes(totals) == []
    assert table["direct"].iloc[0] == "3 ms (3/6 layers)"
    assert table["im2col"].iloc[0] == "4 ms (2/6 layers)"


def network_section(page: str) -> str:
    section = page[page.index('id="networks"'):]
    return section[:section.index("</section>")]


def test_the_report_says_which_networks_have_too_few_layers(tmp_path):
    f = crafted_suite(tmp_path / "run.json", "net")
    page = build_report(f, tmp_path / "r.html", history=None).read_text()
    # the stand-in network `net` is no shape set: all its timed layers are its layers
    assert "not a network total" not in network_section(page)
    assert "<table" in network_section(page)
    suite = pyperf.BenchmarkSuite.load(str(f))  # one layer of AlexNet's five
    benches = []
    for b in suite.get_benchmarks():
        runs = [r._replace(metadata=dict(r.get_metadata(), network="alexnet", layer="conv1",
                                            mode="call"))
                for r in b.get_runs()]
        benches.append(pyperf.Benchmark(runs))
    alex = tmp_path / "alex.json"
    pyperf.BenchmarkSuite(benches).dump(str(alex))
    section = network_section(build_report(alex, tmp_path / "a.html", history=None).read_text())
    assert "alexnet (call mode, 1 thread): 1 of 5 layers: not a network total" in section
    assert "<table" not in section and "<img" not in section
