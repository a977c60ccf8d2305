"""The `>>>` examples in the public modules' docstrings run and give what they show (issue 31:
every public function's docstring has an example that doctest runs). Each module's examples run
in a temporary working directory, with MNIST fetched first."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PUBLIC = ["lenet", "lenet.models", "lenet.models.hub", "lenet.data.transforms",
          "lenet.inference.predict", "lenet.inference.read.line",
          "lenet.inference.read.reader", "lenet.training", "lenet.models.sdnn",
          "lenet.models.readers", "lenet.inference.read.decode", "lenet.training.reader",
          "lenet.data.photo", "lenet.data.suites", "lenet.inference.suites"]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def examples(module_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(module_name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, module_name)
    return sorted((t for t in tests if t.examples), key=lambda t: t.name)


@pytest.mark.slow
@pytest.mark.parametrize("module_name", PUBLIC)
def test_the_docstring_examples_run(module_name: str, tmp_path: Path, mnist_ready: None,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    found = examples(module_name)
    assert found, f"{module_name} has no docstring example"
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    failed = []
    for test in found:
        test.globs.setdefault("lenet", importlib.import_module("lenet"))
        result = runner.run(test, out=lambda s: failed.append(s))
        assert result.attempted == len(test.examples)
    assert not failed, "\n".join(failed)


def test_the_finder_sees_functions_and_methods() -> None:
    # Guards the collection itself: a lazily loaded package and a class's methods are searched.
    names = {t.name for t in examples("lenet.training")}
    assert "lenet.training.train" in names
