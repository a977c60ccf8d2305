"""ONNX export of the SDNN reader: a dynamic width, the same columns as torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lenet.inference.export import export_onnx, make_session, read_metadata
from lenet.models import readers
from lenet.models.sdnn import SDNN

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("members", [1, 2])
def test_the_reader_exports_with_a_dynamic_width(tmp_path: Path, members: int) -> None:
    torch.manual_seed(0)
    model = SDNN() if members == 1 else SDNN.ensemble([SDNN() for _ in range(members)])
    model.eval()
    meta = readers.reader_meta(0.5, {"margin": model.margin, "members": members})
    path = readers.publish(model, meta, "r", tmp_path)
    onnx_path = export_onnx(path, tmp_path / "r.onnx")
    meta = read_metadata(onnx_path)
    assert meta["lenet.model"] == "sdnn" and '"none"' in meta["lenet.classes"]
    session = make_session(onnx_path, threads=1)
    for batch, width in ((1, 28), (3, 100), (2, 257)):
        x = torch.randn(batch, 1, 28, width)
        (got,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            want = model(x).numpy()
        assert got.shape == want.shape == (batch, model.columns(width), 12)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
