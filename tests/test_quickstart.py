"""docs/quickstart.ipynb runs top to bottom in a real Jupyter kernel, so it cannot rot; it is
committed with its outputs (a repository view and the docs site show its figures) and uses only
the public API.

To refresh the saved outputs after an edit:
    .venv/bin/jupyter nbconvert --to notebook --execute --inplace docs/quickstart.ipynb
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "quickstart.ipynb"
# What a user may import from lenet: the package's top level (lenet.data, lenet.models ...
# through it) and the plotting functions the README documents.
PUBLIC_IMPORTS = {"lenet", "lenet.analysis.figures"}
FIGURES = 6  # samples, curves, kernels, feature maps, the mistakes; the drawn digit's image


def _outputs(nb: Any) -> list[Any]:
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]


def _figures(nb: Any) -> list[Any]:
    return [o for o in _outputs(nb) if "image/png" in o.get("data", {})]


def _text(nb: Any) -> str:
    return "".join("".join(o.get("text", "")) for o in _outputs(nb)
                   if o["output_type"] == "stream")


def test_the_committed_notebook_has_its_outputs() -> None:
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in code), "run every cell before committing"
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    assert not [o for o in _outputs(nb) if o["output_type"] == "error"]
    assert len(_figures(nb)) == FIGURES
    assert "bundled lenet5 reads 7" in _text(nb)
    assert "from the MNIST weights" in _text(nb)  # the fine-tuning cell ran
    # Small enough to read in a repository view: figures at screen resolution.
    assert NOTEBOOK.stat().st_size < 1_500_000


def test_the_notebook_imports_only_the_public_api() -> None:
    nb = json.loads(NOTEBOOK.read_text())
    source = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    imported = set(re.findall(r"^\s*(?:from|import)\s+(lenet[\w.]*)", source, flags=re.M))
    assert imported, "the pattern is out of date"
    assert imported <= PUBLIC_IMPORTS, imported - PUBLIC_IMPORTS


@pytest.mark.slow
def test_the_quickstart_notebook_executes(tmp_path: Path, mnist_ready: None,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebook's run dirs go here
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert not [o for o in _outputs(nb) if o.output_type == "error"]
    assert len(_figures(nb)) == FIGURES
    text = _text(nb)
    assert "bundled lenet5 reads 7" in text
    accuracy = re.search(r"^test accuracy ([\d.]+) ?%", text, flags=re.M)
    assert accuracy and float(accuracy[1]) > 90  # 2 epochs on 6,000 digits: ~94 %
    tuned = re.search(r"from the MNIST weights ([\d.]+) ?%, from scratch ([\d.]+) ?%", text)
    assert tuned and float(tuned[1]) > 50 and float(tuned[2]) > 50  # ~73 % and ~78 %
