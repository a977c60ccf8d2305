"""The browser's port of the sliders (static/mnist.js ``distort``) against the Python it ports:
:mod:`lenet.data.geometry` (stroke width, then one affine map about the centre), which the
server's :func:`lenet.inference.serve.digits.apply` is made of.

Run in headless Chromium, as the page runs it (skipped without /usr/bin/chromium), and in Node
when one is installed (the same file, no page around it). Noise is left out: the page draws it
from a generator of its own."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lenet.data import geometry
from lenet.inference.serve.digits import Transform, apply
from tests.chromium import CHROMIUM, in_node, in_page

MNIST_JS = Path(__file__).parents[3] / "src/lenet/inference/serve/static/mnist.js"
DISTORT = ("cases => cases.map(c => Array.from(LenetMnist.distort(Uint8Array.from(c.digit), "
           "c.fields)))")
FIELDS: list[dict[str, float]] = [
    {},  # neutral: the digit as it is
    {"rotate": 30, "stroke": 1},
    {"rotate": -75, "scale": 1.3},
    {"shift_x": 3.5, "shift_y": -2},  # half a pixel: every sample falls between two
    {"squeeze": 0.7, "shear": 0.4},
    {"stroke": -1, "scale": 0.8},
    {"stroke": 2, "rotate": 170, "shift_x": -6},
    {"shear": -1.5, "squeeze": 2.0, "shift_y": 9},
]

Runner = Callable[[list[dict[str, Any]]], list[list[int]]]


@pytest.fixture(scope="module", params=["chromium", "node"])
def run_js(request: pytest.FixtureRequest) -> Iterator[Runner]:
    """Runs mnist.js's distort on a list of {"digit": 784 ints, "fields": {...}}."""
    if request.param == "node":
        if shutil.which("node") is None:
            pytest.skip("node is not installed")
        yield in_node([MNIST_JS], DISTORT)
        return
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with in_page([MNIST_JS], DISTORT, "mnist.js") as run:
        yield run


def _geometry(digit: np.ndarray, fields: dict[str, float]) -> np.ndarray:
    """The sliders' distortion made of lenet.data.geometry, rounded to grey levels."""
    x = torch.from_numpy(digit.astype(np.float32))[None]
    stroke = int(fields.get("stroke", 0))
    if stroke:
        x = geometry.stroke(x, stroke)
    affine = {k: float(v) for k, v in fields.items() if k != "stroke"}
    x = geometry.warp(x, geometry.affine_map(**affine))
    return x.round()[0].numpy().astype(np.uint8)


def test_the_page_distorts_as_lenet_data_geometry_does(run_js: Runner, mnist_test) -> None:
    digits = [mnist_test[0][i] for i in (0, 1, 7)]
    bar = np.zeros((28, 28), np.uint8)
    bar[4:24, 12:16] = 255
    digits.append(bar)
    cases = [{"digit": d.reshape(-1).tolist(), "fields": f} for d in digits for f in FIELDS]
    got = run_js(cases)
    for case, js in zip(cases, got, strict=True):
        digit = np.array(case["digit"], np.uint8).reshape(28, 28)
        want = _geometry(digit, case["fields"])
        # The server's apply() is this composition exactly.
        assert np.array_equal(apply(digit, Transform(**case["fields"])), want), case["fields"]
        diff = np.abs(np.array(js, int).reshape(28, 28) - want.astype(int))
        # float64 in the page, float32 in torch: a grey level at most, where the rounding of a
        # value near x.5 goes the other way.
        assert diff.max() <= 1, (case["fields"], diff.max())
        assert (diff > 0).mean() <= 0.05, (case["fields"], (diff > 0).mean())
    # Neutral fields give the digit back unchanged.
    assert [got[i * len(FIELDS)] for i in range(len(digits))] == \
        [d.reshape(-1).tolist() for d in digits]
