"""The documentation holds: every relative link in README.md, CHANGELOG.md, BENCHMARKS.md,
docs/ and the quickstart's text resolves to a file of the repository (and a `#heading` to a
heading of that file), and the API reference site (mkdocs.yml) builds with `--strict`, no
warning, into a temporary folder."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# [text](target) and ![alt](target "title"); <img src="..."> in HTML blocks.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_IMG = re.compile(r"<img[^>]*\ssrc=\"([^\"]+)\"")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")


def markdown_files() -> list[Path]:
    files = [ROOT / n for n in ("README.md", "CHANGELOG.md", "BENCHMARKS.md")]
    return [f for f in files if f.is_file()] + sorted((ROOT / "docs").rglob("*.md"))


def notebook_markdown(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def links(text: str) -> list[str]:
    """The link targets of a Markdown text, outside code blocks and inline code."""
    text = _CODE.sub("", _FENCE.sub("", text))
    return _LINK.findall(text) + _IMG.findall(text)


def slug(heading: str) -> str:
    """GitHub's (and mkdocs' toc's) anchor of a heading: lower case, punctuation dropped,
    spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text())
    return {slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.M)}


def broken_links(source: Path, text: str) -> list[str]:
    broken = []
    for target in links(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, flags=re.I):
            continue  # http:, https:, mailto: ... (not checked offline)
        name, _, anchor = target.partition("#")
        path = (source.parent / name).resolve() if name else source
        if not path.exists() or ROOT not in path.parents:
            broken.append(f"{target} (no such file in the repository)")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target} (no heading #{anchor} in {path.name})")
    return broken


def test_the_link_finder_finds_links() -> None:
    # Guards the patterns: a link in code is not one, an image and an anchor are.
    text = "see [a](docs/x.md#h) ![p](p.png) `[no](code.md)`\n```\n[no](fence.md)\n```\n"
    assert links(text) == ["docs/x.md#h", "p.png"]
    assert slug("5. Feature maps: one `digit`") == "5-feature-maps-one-digit"
    assert "docs/architecture.md" in links((ROOT / "README.md").read_text())


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path: Path) -> None:
    assert not broken_links(path, path.read_text())


def test_the_quickstart_links_resolve() -> None:
    notebook = ROOT / "docs" / "quickstart.ipynb"
    assert not broken_links(notebook, notebook_markdown(notebook))


def test_every_docs_page_is_in_the_site() -> None:
    # mkdocs' --strict fails on a page left out of the nav (validation.omitted_files: warn);
    # this says which, without building.
    config = (ROOT / "mkdocs.yml").read_text()
    pages = {p.relative_to(ROOT / "docs").as_posix()
             for p in (ROOT / "docs").rglob("*") if p.suffix in (".md", ".ipynb")}
    assert {p for p in pages if p not in config} == set()


def test_doctest_examples_are_fenced_for_the_site() -> None:
    pytest.importorskip("griffe", reason="the docs tools are in the dev extra")
    spec = importlib.util.spec_from_file_location(
        "doctest_fences", ROOT / "docs" / "hooks" / "doctest_fences.py")
    assert spec and spec.loader
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    text = "Scores.\n\n>>> f(['7'])\n['7']\n\nMore.\n```py\n>>> kept\n```\n  >>> x\n  1"
    assert hooks.fence_examples(text) == (
        "Scores.\n\n```pycon\n>>> f(['7'])\n['7']\n```\n\nMore.\n```py\n>>> kept\n```\n"
        "  ```pycon\n  >>> x\n  1\n  ```")
    assert hooks.plain_roles("see :class:`~lenet.config.TrainConfig` and :func:`lenet.train`") \
        == "see `TrainConfig` and `lenet.train`"


@pytest.mark.slow
def test_the_api_site_builds_without_warnings(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the docs tools are in the dev extra: "
                        "pip install -e '.[dev]'")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings[python] is missing")
    pytest.importorskip("mkdocs_jupyter", reason="mkdocs-jupyter is missing")
    site = tmp_path / "site"
    before = set(os.listdir(ROOT))
    # Material's banner about its own future is not a warning of ours.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                          str(site), "--config-file", str(ROOT / "mkdocs.yml")], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert not [line for line in log.splitlines() if "WARNING" in line]
    assert not (set(os.listdir(ROOT)) - before) & {"site", ".cache"}  # nothing in the checkout
    # The API pages are rendered from the docstrings: the objects' signatures are there.
    api = {name: (site / "api" / name / "index.html").read_text()
           for name in ("lenet", "models", "data", "predict", "training")}
    assert "Predictor" in api["predict"] and "predict_image" in api["predict"]
    assert "RunResult" in api["training"] and "train(" in re.sub(r"<[^>]+>", "", api["training"])
    assert "MNIST" in api["data"] and "create" in api["models"]
    # Docstring examples are code (docs/hooks/doctest_fences.py), not Markdown quotes; Sphinx
    # roles are not left raw.
    for name, page in api.items():
        assert "<blockquote>" not in page and not re.search(r":(class|func|meth|mod):", page), name
        assert page.count("&gt;&gt;&gt;") == page.count('class="gp">&gt;&gt;&gt;'), name
    # The quickstart, with its saved figures.
    page = (site / "quickstart" / "index.html").read_text()
    assert len(re.findall(r"<img[^>]*src=\"data:image/png", page)) >= 6
