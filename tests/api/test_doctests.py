"""The ``>>>`` examples in emgeom's docstrings run as doctests (one test per module)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import emgeom

MODULES = ["emgeom"] + sorted(
    m.name
    for m in pkgutil.walk_packages(emgeom.__path__, "emgeom.")
    if not m.name.endswith("__main__")
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    return [t for t in doctest.DocTestFinder().find(module, name) if t.examples]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in _examples(name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"


def test_the_examples_are_collected():
    """The wiring works: the known examples (package, anisomag, conventions) are found."""
    found = {name for name in MODULES if _examples(name)}
    assert {"emgeom", "emgeom.anisomag", "emgeom.conventions"} <= found
