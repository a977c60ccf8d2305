"""The browser's ports for reading numbers against the Python they port: static/mnist.js
``line`` against :func:`lenet.inference.read.line.normalize` (the strip, its scale and offset),
static/read.js ``decode`` against :func:`lenet.inference.read.decode.decode` (text, path,
spans, confidence; with no constraint, a length, the named patterns and templates), and
forward.js ``lineScores`` against the SDNN itself (through the description
:func:`lenet.inference.webexport.describe_reader` makes).

Run in Node when one is installed (the same files, no page around them), else in headless
Chromium, as the page runs them (skipped without either)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from lenet.inference.read.decode import decode
from lenet.inference.read.line import normalize
from lenet.inference.webexport import describe_reader, model_script, run_line_description
from lenet.models.readers import reader_meta
from lenet.models.sdnn import SDNN
from tests.chromium import CHROMIUM, in_node, in_page

STATIC = Path(__file__).parents[3] / "src/lenet/inference/serve/static"
SCRIPTS = [STATIC / name for name in ("forward.js", "mnist.js", "read.js")]
CALL = """inp => {
  const lines = inp.lines.map(g => { const l = LenetMnist.line(Float64Array.from(g.data), g.w, g.h);
    return {width: l.width, strip: Array.from(l.strip), scale: l.scale, offset: l.offset}; });
  const decoded = inp.logprobs.map(lp => inp.options.map(([n, p]) => LenetRead.decode(lp, n, p)));
  const scores = inp.readers.map(r => { const net = LenetForward.load(r);
    return inp.strips.map(s => LenetForward.lineScores(net, Uint8Array.from(s.data), s.w)
      .scores.map(row => Array.from(row))); });
  return {lines: lines, decoded: decoded, scores: scores}; }"""
OPTIONS = [(None, None), (5, None), (0, None), (None, "zip"), (None, "amount"), (3, "d+"),
           (None, "1d{2,}"), (None, "d?.d*"), (4, "d{2,5}")]

Runner = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture(scope="module")
def run_js() -> Iterator[Runner]:
    if shutil.which("node") is not None:
        yield in_node(SCRIPTS, CALL)
        return
    if not Path(CHROMIUM).exists():
        pytest.skip(f"neither node nor {CHROMIUM} is installed")
    with in_page(SCRIPTS, CALL, "read.js") as run:
        yield run


def _drawings(mnist_test, rng: np.random.Generator) -> list[np.ndarray]:
    """Numbers as a person's drawing would give them: MNIST test digits side by side, at
    uneven heights, dark on light paper, upscaled; and a page with a stray speck."""
    images, _ = mnist_test
    out = []
    for n in (1, 3, 5, 8):
        canvas = np.zeros((64, 40 * n + 24))
        for i in range(n):
            y, x = int(rng.integers(0, 24)), 12 + 40 * i + int(rng.integers(-8, 8))
            canvas[y:y + 28, x:x + 28] = np.maximum(canvas[y:y + 28, x:x + 28],
                                                    images[int(rng.integers(0, 10_000))])
        img = Image.fromarray((255 - canvas).astype(np.uint8))
        out.append(np.asarray(img.resize((canvas.shape[1] * 3, 150), Image.Resampling.BILINEAR),
                              np.float64))
    speck = out[1].copy()
    speck[5:7, 5:7] = 0
    return [*out, speck, np.full((40, 90), 255.0)]  # the last one blank


def _logprobs(rng: np.random.Generator) -> list[np.ndarray]:
    """Random columns, blank-heavy as a reader's are, and one column where two classes tie."""
    out = []
    for t in (1, 2, 7, 20, 33):
        logits = rng.normal(size=(t, 12)) * 3
        logits[:, 11] += 2
        out.append(logits - np.log(np.exp(logits).sum(1, keepdims=True)))
    tie = np.log(np.full((6, 12), 1 / 12))
    return [*out, tie]


def test_line_and_decode_ports_match_python(run_js: Runner, mnist_test) -> None:
    rng = np.random.default_rng(30)
    drawings, logprobs = _drawings(mnist_test, rng), _logprobs(rng)
    torch.manual_seed(0)
    # Random weights (every weight matters, none is zero): one SDNN, and an ensemble of two
    # (grouped convolutions).
    sdnns = [SDNN().eval(), SDNN.ensemble([SDNN(), SDNN()]).eval()]
    meta = reader_meta(0.5, {})
    described = [describe_reader(m, meta, {"reject": 0.5, "margin": m.margin}) for m in sdnns]
    readers = [json.loads(model_script(doc, blob).split(" = ", 1)[1].rstrip(";\n"))
               for doc, blob in described]
    strips = [(rng.random((28, w)) * 255).round().astype(np.uint8) for w in (28, 57, 100)]
    got = run_js({"lines": [{"data": g.ravel().tolist(), "w": g.shape[1], "h": g.shape[0]}
                            for g in drawings],
                  "logprobs": [lp.tolist() for lp in logprobs], "options": OPTIONS,
                  "readers": readers,
                  "strips": [{"data": s.ravel().tolist(), "w": s.shape[1]} for s in strips]})
    for gray, js in zip(drawings, got["lines"], strict=True):
        want = normalize(gray)
        assert js["width"] == want.width
        if want.width:
            assert np.array_equal(np.array(js["strip"]).reshape(28, -1), want.strip)
            assert js["scale"] == pytest.approx(want.scale, abs=1e-12)
            assert js["offset"] == pytest.approx(want.offset, abs=1e-9)
    assert got["lines"][-1]["width"] == 0 and min(x["width"] for x in got["lines"][:-1]) > 28
    texts = set()
    for lp, row in zip(logprobs, got["decoded"], strict=True):
        for (length, pattern), js in zip(OPTIONS, row, strict=True):
            want = decode(lp, length, pattern)
            texts.add(want.text)
            assert (js["text"], js["path"], js["spans"]) == \
                (want.text, want.path, [list(s) for s in want.spans]), (length, pattern)
            assert js["confidence"] == pytest.approx(want.confidence, abs=1e-9)
            assert js["probabilities"] == pytest.approx(want.probabilities, abs=1e-12)
    assert len(texts) > 10  # the cases read many different strings, not all ""
    for sdnn, (doc, blob), scores in zip(sdnns, described, got["scores"], strict=True):
        for strip, js in zip(strips, scores, strict=True):
            x = meta.preprocessing(torch.from_numpy(strip[None]))
            with torch.inference_mode():
                want = sdnn(x)[0].numpy()
            assert np.abs(np.array(js) - want).max() <= 1e-4
            assert np.allclose(run_line_description(doc, blob, x)[0].numpy(), want, atol=1e-5)
