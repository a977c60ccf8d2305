"""Shared by the tests of lenet.analysis.figures: tiny real runs, PNG checks, and the commands'
CLI."""

from __future__ import annotations

import argparse
import contextlib
import io
import math
from pathlib import Path

import numpy as np

TEST_SUBSET = 500
# Both kernel figures show six 5x5 kernels, three to a row: an 11x17 grid scaled to fit 5 in
# wide, two panels plus colour bars -> 12.5 x 4.44 in at 100 dpi.
KERNELS_SIZE = (1250, 444)


def train_run(root: Path, name: str, **overrides):
    from lenet.config import resolve
    from lenet.training.loop import fit as train

    cfg = resolve(None, {"epochs": 1, "train_subset": 1000, "test_subset": TEST_SUBSET,
                         "seed": 3, "run_dir": str(root / name), **overrides})
    return train(cfg, log=lambda s: None)


def png_ok(path: Path, size: tuple[int, int] | None = None, min_var: float = 50.0) -> np.ndarray:
    """The PNG decodes, has the expected (width, height) (+-2 px), and is not blank."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        if size is not None:
            assert abs(im.width - size[0]) <= 2 and abs(im.height - size[1]) <= 2, im.size
        gray = np.asarray(im.convert("L"), dtype=np.float64)
    assert gray.var() > min_var, f"{path} looks blank (variance {gray.var():.1f})"
    return gray


def gallery_size(n: int) -> tuple[int, int]:
    """The misclassified gallery: 20 digits a row, cells of 34x42 data px at 2.6 px each."""
    cols = min(20, n)
    rows = math.ceil(n / cols)
    return round(cols * 34 * 2.6 + 20), round(rows * 42 * 2.6 + 60)


def parser() -> argparse.ArgumentParser:
    """``lenet`` with the evaluate, report and compare commands, as lenet.cli registers them."""
    from lenet.commands import compare, evaluate, report

    p = argparse.ArgumentParser(prog="lenet")
    sub = p.add_subparsers(dest="command", required=True)
    for command in (evaluate, report, compare):
        command.add_parser(sub)
    return p


def run_cli(argv: list[str]) -> str:
    """Run one command in-process; its stdout."""
    args = parser().parse_args(argv)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert args.handler(args) == 0
    return out.getvalue()


class WeightReads:
    """Counts how often a run's model.safetensors is read (``monkeypatch`` lenet.models.weights.read
    with it): the evaluation and the report read it once."""

    def __init__(self, monkeypatch) -> None:
        from lenet.models import weights

        self.paths: list[Path] = []
        self._read = weights.read
        monkeypatch.setattr(weights, "read", self)

    def __call__(self, path):
        from lenet.models import weights

        self.paths.append(weights.resolve_path(path))
        return self._read(path)

    def count(self, name: str = "model.safetensors") -> int:
        return sum(p.name == name for p in self.paths)
