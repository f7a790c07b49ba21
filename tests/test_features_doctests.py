"""The docstring examples of the features area run and give what they show."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest
from _features_helpers import one_torch_thread  # noqa: F401

import neuroenc.features

MODULES = sorted(
    [f"neuroenc.features.{m.name}" for m in pkgutil.iter_modules(neuroenc.features.__path__)]
    + ["neuroenc.testing", "neuroenc.commands._common"]
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"


def test_doctests_are_found():
    """The run above is not empty: the examples of these modules are collected."""
    counts = {}
    finder = doctest.DocTestFinder()
    for name in MODULES:
        module = importlib.import_module(name)
        counts[name] = sum(len(t.examples) for t in finder.find(module))
    assert counts["neuroenc.features.interventions"] >= 3  # parse_intervention's
    assert counts["neuroenc.features.layers"] >= 4
    assert counts["neuroenc.commands._common"] == 2
    assert counts["neuroenc.features.extract"] >= 3
