"""The distribution: a wheel that builds without deprecation warnings and carries the licence
and py.typed; install hints that name real extras; a core that works without TensorBoard."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "lenet"


def _project() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _extras() -> set[str]:
    return set(_project()["optional-dependencies"])


def test_every_install_hint_names_a_real_extra() -> None:
    extras = _extras()
    assert {"tensorboard", "onnx", "serve", "classic", "all", "dev"} <= extras
    hints = {}
    for path in SRC.rglob("*.py"):
        for name in re.findall(r"lenet\[([a-z0-9_,-]+)\]", path.read_text()):
            hints.setdefault(path.relative_to(SRC).as_posix(), set()).update(name.split(","))
    assert hints, "no install hints found: the pattern is out of date"
    wrong = {path: sorted(names - extras) for path, names in hints.items()
             if names - extras}
    assert not wrong, f"install hints naming extras pyproject.toml lacks: {wrong}"


def test_all_holds_every_feature_extra() -> None:
    project = _project()
    (all_,) = project["optional-dependencies"]["all"]
    assert set(all_.removeprefix("lenet[").removesuffix("]").split(",")) == \
        _extras() - {"all", "dev"}
    assert not any(d.startswith("tensorboard") for d in project["dependencies"])


# Imports of tensorboard fail in this child, as in an install without the extra.
_NO_TENSORBOARD = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorboard" or name.startswith("tensorboard."):
            raise ImportError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
import lenet
from lenet.commands import build_parser
build_parser()
import lenet.training.loop  # the trainer imports the logger only when a run asks for it
import tempfile
from lenet.config import resolve
from lenet.training.tensorboard import open_logger
print(resolve(None, {}).tensorboard, open_logger(tempfile.mkdtemp()))  # off by default
"""


def test_the_core_works_without_tensorboard() -> None:
    out = subprocess.run([sys.executable, "-c", _NO_TENSORBOARD],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # Off by default; asked for, the trainer goes on without it and says so (once) on stderr.
    assert out.stdout == "False None\n"
    assert out.stderr == ("TensorBoard logging is off: tensorboard is not installed "
                          "(pip install 'lenet[tensorboard]')\n")


@pytest.mark.slow
def test_the_wheel_builds_without_deprecation_warnings(tmp_path: Path) -> None:
    # A copy of what the wheel is made of, so the build's own folders stay out of the checkout;
    # no build isolation: the venv's setuptools (the dev install's) builds offline.
    tree = tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(SRC, tree / "src" / "lenet",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    code = ("from setuptools import build_meta as b; import sys; "
            "print(b.build_wheel(sys.argv[1]))")
    out = subprocess.run([sys.executable, "-W", "default", "-c", code, str(dist)], cwd=tree,
                         capture_output=True, text=True, timeout=240)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert "deprecat" not in log.lower(), [line for line in log.splitlines()
                                           if "eprecat" in line]
    (wheel,) = dist.glob("lenet-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = z.read(metadata).decode()
    assert "lenet/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "lenet/configs/lenet5.yaml" in names
    assert "lenet/models/pretrained/manifest.json" in names
    with zipfile.ZipFile(wheel) as z:
        bundled = json.loads(z.read("lenet/models/pretrained/manifest.json"))
    assert {f"lenet/models/pretrained/{e['file']}" for e in bundled.values()} <= names
    _the_unpacked_wheel_predicts(wheel, tmp_path)
    assert "License-Expression: MIT" in meta.splitlines()
    assert "Requires-Dist: tensorboard>=2.14; extra == \"tensorboard\"" in meta.splitlines()


# The acceptance of issue 16, on the wheel's own files (not this checkout): bundled weights
# predict the real test digits at the accuracy recorded for them, in a folder with no repo.
_FROM_THE_WHEEL = """
import sys, lenet, torch
assert lenet.__file__.startswith(sys.argv[1]), lenet.__file__
model = lenet.create_model("lenet5", pretrained=True).eval()
w = model.pretrained_weights
test = lenet.data.MNIST(train=False)
with torch.inference_mode():
    right = (model(w.transforms()(test.data)).argmax(1) == test.targets).sum().item()
first = (model(w.transforms()(test.data[:1000])).argmax(1) == test.targets[:1000]).sum().item()
print(right, w.meta["test_errors"], first, round(w.meta["test_accuracy_first_1000"] * 1000))
"""


def _the_unpacked_wheel_predicts(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # PYTHONPATH comes before the editable install of this checkout on sys.path.
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", _FROM_THE_WHEEL, str(site)], cwd=elsewhere,
                         env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    right, recorded_errors, first, recorded_first = map(int, out.stdout.split())
    assert abs((10_000 - right) - recorded_errors) <= 1
    assert abs(first - recorded_first) <= 1  # the first 1,000 digits, as recorded


# --- The release (issue 31): one version, full URLs, honest bounds, a complete sdist ---

def _pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_has_one_source() -> None:
    from importlib.metadata import version

    import lenet
    from lenet._version import __version__

    config = _pyproject()
    assert "version" not in config["project"] and "version" in config["project"]["dynamic"]
    attr = config["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "lenet._version.__version__"
    assert lenet.__version__ == __version__
    # The installed metadata (built from pyproject.toml) agrees with the module.
    assert version("lenet") == __version__
    # ... and the changelog has a section for it.
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{__version__}] - " in changelog and "## [Unreleased]" in changelog


def test_the_project_urls_are_complete() -> None:
    urls = _project()["urls"]
    assert {"Homepage", "Documentation", "Source", "Issues", "Changelog"} <= set(urls)
    assert all(u.startswith("https://") for k, u in urls.items() if k not in ("Paper", "MNIST"))


def _requirement(spec: str) -> Any:
    requirements = pytest.importorskip("packaging.requirements")
    return requirements.Requirement(spec)


def _extra(name: str) -> dict[str, Any]:
    return {r.name: r for r in map(_requirement, _project()["optional-dependencies"][name])}


def test_pypi_simple_is_an_extra_not_a_core_dependency() -> None:
    core = {_requirement(d).name for d in _project()["dependencies"]}
    assert "pypi-simple" not in core
    assert "pypi-simple" in _extra("pypi")


def test_the_private_uvicorn_api_is_bounded_to_the_tested_range() -> None:
    from importlib.metadata import version

    serve = _extra("serve")
    # lenet.inference.serve.server subclasses uvicorn's private H11Protocol: an upper bound, and
    # the installed (tested) uvicorn and h11 inside the range claimed.
    assert any(s.operator == "<" for s in serve["uvicorn"].specifier)
    for name in ("uvicorn", "h11"):
        pytest.importorskip(name)
        assert serve[name].specifier.contains(version(name)), (name, version(name))


def test_the_torch_range_starts_at_the_torch_the_tests_run_on() -> None:
    (torch,) = [r for r in map(_requirement, _project()["dependencies"]) if r.name == "torch"]
    (lower,) = [s.version for s in torch.specifier if s.operator == ">="]
    pinned = re.search(r"^TORCH \?= torch==(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert pinned, "the Makefile's torch pin is gone"
    assert pinned[1].split(".")[:2] == lower.split(".")[:2]


# Files of the checkout that stay out of the sdist: CI's script, git's own, and the configs/
# link (the recipes ship inside the package, src/lenet/configs).
_NOT_SHIPPED = {".ci/run", ".gitignore", "configs"}
_NOT_COPIED = {".git", ".venv", "runs", "data", "build", "dist", "site", ".cache"}


def _project_files() -> list[str]:
    """The project's files: git's list in a checkout; everything but build and cache folders in
    an unpacked sdist."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
        return [n for n in out.stdout.splitlines() if (ROOT / n).exists()]
    files = []
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if path.is_file() and parts[0] not in _NOT_COPIED and "__pycache__" not in parts and \
                not parts[0].endswith((".egg-info", "_cache")) and parts[0] != ".hypothesis":
            files.append("/".join(parts))
    return files


def _build_sdist(tmp_path: Path) -> tuple[Path, set[str]]:
    """The sdist of a copy of the project's files (the build's egg-info stays out of the
    checkout), built offline with this venv's setuptools; its members, less the top folder."""
    tree = tmp_path / "tree"
    for name in _project_files():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name, follow_symlinks=False)
    dist = tmp_path / "dist"
    out = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation",
                          "--outdir", str(dist), str(tree)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    (sdist,) = dist.glob("lenet-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name and
                 m.isfile()}
    return sdist, names


@pytest.mark.slow
def test_the_sdist_holds_what_its_readme_and_tests_need(tmp_path: Path) -> None:
    pytest.importorskip("build", reason="the release tools are in the dev extra")
    from tests.test_docs import links, markdown_files, notebook_markdown

    sdist, names = _build_sdist(tmp_path)
    from lenet._version import __version__

    assert sdist.name == f"lenet-{__version__}.tar.gz"
    # Every file the project has (tests, conftest.py, docs, the notebook, mkdocs.yml,
    # Makefile, hubconf.py, BENCHMARKS.md, benchmarks/ ...), so the tests run from it.
    missing = sorted(set(_project_files()) - _NOT_SHIPPED - names)
    assert not missing, f"files the sdist leaves out (MANIFEST.in): {missing}"
    for name in ("tests/conftest.py", "docs/quickstart.ipynb", "BENCHMARKS.md", "Makefile",
                 "mkdocs.yml", "CHANGELOG.md", "src/lenet/py.typed"):
        assert name in names
    # Every file README.md and the docs link to, so they do not break on a package page.
    sources = [*markdown_files(), ROOT / "docs" / "quickstart.ipynb"]
    for source in sources:
        text = notebook_markdown(source) if source.suffix == ".ipynb" else source.read_text()
        for target in links(text):
            name = target.partition("#")[0]
            if name and not re.match(r"[a-z][a-z0-9+.-]*:", name, flags=re.I):
                path = (source.parent / name).resolve().relative_to(ROOT).as_posix()
                assert path in names, f"{source.name} links {target}, not in the sdist"
    # The metadata and the README render on a package index.
    if shutil.which("twine") or _has_module("twine"):
        out = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(sdist)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
