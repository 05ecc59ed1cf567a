"""Results files round trips: names, sidecars, suites, host metadata, read errors."""

from __future__ import annotations

import json

import pyperf
import pytest

from harness import results
from harness.shapes import Layer
from kernels import ConvSpec

LAYER = Layer("net", "c1", "conv2d", ConvSpec(n=1, c=4, k=4, size=(6, 6), kernel=(3, 3)))


def suite_of(names, values=(1e-3, 1.1e-3), metadata=None):
    runs = lambda name: [pyperf.Run(list(values), metadata=dict(  # noqa: E731
        name=name, **(metadata or {})), collect_metadata=False)]
    return pyperf.BenchmarkSuite([pyperf.Benchmark(runs(n)) for n in names])


def test_bench_name_round_trips_through_parse_name():
    for threads in (None, 4):
        name = results.bench_name("conv2d", "direct", LAYER, threads)
        assert results.parse_name(name) == dict(conv_type="conv2d", algorithm="direct",
                                                network="net", layer="c1", threads=threads,
                                                mode="call", layout="nchw")
    assert name == "conv2d/direct/net:c1@t4"


def test_prepared_names_carry_the_mode_and_round_trip():
    assert results.bench_name("conv2d", "direct", LAYER, None, "call") == \
        "conv2d/direct/net:c1"  # call mode: the name it had before modes
    for threads in (None, 2):
        name = results.bench_name("conv2d", "onnxruntime", LAYER, threads, "prepared")
        assert name.endswith("@prepared")
        assert results.parse_name(name) == dict(conv_type="conv2d", algorithm="onnxruntime",
                                                network="net", layer="c1", threads=threads,
                                                mode="prepared", layout="nchw")
    assert name == "conv2d/onnxruntime/net:c1@t2@prepared"
    with pytest.raises(ValueError, match="mode: 'eager'"):
        results.bench_name("conv2d", "direct", LAYER, None, "eager")


def test_sidecar_round_trip(tmp_path):
    out = tmp_path / "r.json"
    entries = [results.skip_entry("conv2d/direct/net:c1", "conv2d", "direct", LAYER,
                                  "does not apply"),
               results.skip_entry("conv2d/im2col/net:c1@t2", "conv2d", "im2col", LAYER,
                                  "verification failed", status="failed", threads=2)]
    assert results.write_sidecar(out, entries) == tmp_path / "r.skips.json"
    assert results.load_sidecar(out) == entries
    assert entries[1]["threads"] == 2 and entries[0]["spec"] == str(LAYER.spec)
    assert results.load_sidecar(tmp_path / "none.json") == []
    results.sidecar_path(out).write_text('{"not": "a list"}')
    with pytest.raises(ValueError, match="not a skips file"):
        results.load_sidecar(out)


def test_suite_round_trip_and_records(tmp_path):
    path = tmp_path / "r.json"
    results.write_suite(suite_of(["a/direct/n:l", "b/direct/n:l"],
                                 metadata={"hostname": "h", "cpu_model": "c"}), path)
    suite = results.load_suite(path, require_benchmarks=True)
    assert suite.get_benchmark_names() == ["a/direct/n:l", "b/direct/n:l"]
    records = results.benchmark_records(suite)
    assert list(records["a/direct/n:l"]["values"]) == [1e-3, 1.1e-3]
    assert records["b/direct/n:l"]["meta"]["cpu_model"] == "c"
    assert not list(tmp_path.glob(".*tmp*"))           # the atomic write left nothing
    results.strip_host_metadata(path)
    text = path.read_text()
    assert '"hostname"' not in text and '"cpu_model"' in text
    assert results.load_suite(path).get_benchmark_names() == suite.get_benchmark_names()


@pytest.mark.parametrize("content, message", [
    (None, "no such file"), ("", "malformed JSON"), ('{"benchmarks": [', "malformed JSON"),
    ('{"hello": "world"}', "not a pyperf suite")])
def test_load_suite_names_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        results.load_suite(path)
    assert "bad.json" in str(info.value) and "\n" not in str(info.value)


def test_merge_joins_files_and_counts_identical_runs_once(tmp_path):
    a, b, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "m.json"
    results.write_suite(suite_of(["x/direct/n:l"]), a)
    results.write_suite(suite_of(["x/direct/n:l", "y/direct/n:l"], values=(2e-3,)), b)
    results.write_sidecar(a, [dict(name="z/direct/n:l", status="skipped", reason="r")])
    with open(tmp_path / "err.txt", "w") as err:
        assert results.merge([a, b, a], out, err=err) == (2, 1)
    merged = {bm.get_name(): bm.get_nvalue() for bm in results.load_suite(out)}
    assert merged == {"x/direct/n:l": 3, "y/direct/n:l": 1}
    assert "counted once" in (tmp_path / "err.txt").read_text()
    assert json.loads(results.sidecar_path(out).read_text())[0]["name"] == "z/direct/n:l"
    assert not results.lock_path(out).exists()
