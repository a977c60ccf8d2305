"""The Python a user copies from README.md and docs/quickstart.ipynb type-checks (mypy), so the
public API's types hold where people meet them first: `lenet.train(...)` is a function, a
Predictor's answers have their fields, `lenet.models` has what the README calls."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_snippets() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def quickstart_source() -> str:
    """The notebook's code cells in order, as one module (IPython magics left out)."""
    nb = json.loads((ROOT / "docs" / "quickstart.ipynb").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    lines = [line for cell in cells for line in cell.splitlines() if not line.startswith("%")]
    return "\n".join(lines) + "\n"


def test_the_snippets_are_found() -> None:
    # Guards the extraction itself: a renamed fence or an emptied notebook must not pass silently.
    snippets = readme_snippets()
    assert len(snippets) >= 2 and any("lenet.train(" in s for s in snippets)
    assert "lenet.train(" in quickstart_source()


@pytest.mark.slow
def test_readme_and_quickstart_python_type_checks(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    files = []
    for i, code in enumerate(readme_snippets()):
        files.append(tmp_path / f"readme_{i}.py")
        files[-1].write_text(code)
    files.append(tmp_path / "quickstart.py")
    files[-1].write_text(quickstart_source())
    # Errors inside lenet itself are `make lint`'s (mypy over src/); here only the user's code.
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"),
                                "--follow-imports", "silent", "--cache-dir",
                                str(tmp_path / ".mypy_cache"), *map(str, files)])
    assert status == 0, out + err
