"""The distribution: a wheel that builds without deprecation warnings and carries the licence
and py.typed; install hints that name real extras; a core that works without TensorBoard."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
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
try:
    import lenet.training.tensorboard
except ImportError as e:
    print(e.name, e)
"""


def test_the_core_works_without_tensorboard() -> None:
    out = subprocess.run([sys.executable, "-c", _NO_TENSORBOARD],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # The message the trainer shows when it trains without TensorBoard.
    assert out.stdout == ("tensorboard TensorBoard logging is off: tensorboard is not installed "
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
