"""Choices between equivalent kernels made by timing them (kernels.measured), and the cell
that uses one: depthwise_separable's direct cell, fused or the two stages in turn."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import kernels
from kernels import ConvSpec, measured

from .conftest import assert_close, assert_conforms

separable = importlib.import_module("kernels.direct.depthwise_separable")

SPECS = [
    ConvSpec(n=2, c=19, k=13, size=(13, 10), kernel=3, padding=1),
    ConvSpec(n=1, c=16, k=7, size=(12, 9), kernel=3, stride=2, padding=1, flip=True),
    ConvSpec(n=1, c=5, k=20, size=(9, 14), kernel=5, stride=(1, 2), padding=2),
]


@pytest.fixture(autouse=True)
def fresh_choices(monkeypatch):
    monkeypatch.setattr(measured, "_chosen", {})
    monkeypatch.delenv(measured.ENV, raising=False)


def test_the_fastest_candidate_is_chosen_once():
    calls = {"slow": 0, "fast": 0}

    def slow():
        calls["slow"] += 1
        t = np.ones(200_000).sum()  # noqa: F841  (work that takes measurable time)
        for _ in range(20):
            np.ones(200_000).sum()

    def fast():
        calls["fast"] += 1

    assert measured.choose("k", {"slow": slow, "fast": fast}) == "fast"
    assert calls == {"slow": 1 + measured.ROUNDS, "fast": 1 + measured.ROUNDS}
    assert measured.choose("k", {"slow": slow, "fast": fast}) == "fast"  # remembered
    assert calls["slow"] == 1 + measured.ROUNDS
    assert measured.chosen() == {"k": "fast"}


def test_first_candidate_without_measuring(monkeypatch):
    monkeypatch.setenv(measured.ENV, "first")

    def fail():
        raise AssertionError("not measured under CONVBENCH_MEASURE=first")

    assert measured.choose("k", {"a": lambda: None, "b": fail}) == "a"
    measured.force("k", "b")
    assert measured.choose("k", {"a": fail, "b": fail}) == "b"
    measured.force("k", None)
    assert measured.chosen_name("k") is None


@pytest.mark.parametrize("form", separable.FORMS)
@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_each_form_conforms(spec, form):
    """Both forms, pinned, against the float64 oracle; and a plan equals run."""
    measured.force(separable.problem(spec), form)
    x, w, y = assert_conforms("depthwise_separable", "direct", spec)
    np.testing.assert_array_equal(kernels.plan("depthwise_separable", "direct", spec, w)(x), y)


def test_measured_cell_conforms_and_remembers():
    spec = SPECS[0]
    x, w = kernels.make_inputs("depthwise_separable", spec, seed=3)
    y = kernels.run("depthwise_separable", "direct", spec, x, w)
    assert_close(y, kernels.reference("depthwise_separable", spec, x, w),
                 kernels.accuracy.bound("direct", "depthwise_separable", spec))
    assert measured.chosen_name(separable.problem(spec)) in separable.FORMS


def test_run_prepares_only_the_chosen_form():
    spec = SPECS[1]
    measured.force(separable.problem(spec), "composite")
    _, w = kernels.make_inputs("depthwise_separable", spec)
    state = separable.prepare_separable(spec, w)
    x, _ = kernels.make_inputs("depthwise_separable", spec)
    separable.execute_separable(spec, x, state)
    assert set(state._forms) == {"composite"}
    assert set(separable.prepare_separable_plan(spec, w)._forms) == set(separable.FORMS)
