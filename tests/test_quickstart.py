"""docs/quickstart.ipynb runs top to bottom in a real Jupyter kernel, so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "quickstart.ipynb"


@pytest.mark.slow
def test_the_quickstart_notebook_executes(tmp_path: Path, mnist_ready: None,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebook's run dir goes here
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    # samples, curves, kernels, feature maps, the drawn digit, the mistakes: all displayed
    assert len(figures) == 6
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "bundled lenet5 reads 7" in text
    assert "test accuracy" in text
