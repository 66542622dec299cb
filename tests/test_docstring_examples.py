"""Every runnable example in the package's docstrings runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib

import pytest
from helpers import REPO

PACKAGE = REPO / "redistill_study"
MODULES = sorted(
    ".".join(path.relative_to(REPO).with_suffix("").parts)
    for path in PACKAGE.rglob("*.py")
    if ">>> " in path.read_text()
)


def test_the_examples_are_found() -> None:
    assert {"redistill_study.losses.fused", "redistill_study.training.stacked"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
