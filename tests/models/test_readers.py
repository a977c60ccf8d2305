"""Reader weights: the bundled SDNN reader is the file its manifest records, and any reader
file is checked before it is used."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from lenet.errors import WeightsError
from lenet.models import create, hub, readers, weights
from lenet.models.sdnn import CLASSES, SDNN


@pytest.fixture
def fresh_cache():
    readers._bundled.cache_clear()
    yield
    readers._bundled.cache_clear()


def test_the_default_reader_is_bundled_with_its_threshold() -> None:
    entry = readers.manifest()[readers.DEFAULT_READER]
    raw = (hub.PRETRAINED_DIR / entry["file"]).read_bytes()
    assert len(raw) == entry["bytes"] <= 300_000
    assert hashlib.sha256(raw).hexdigest() == entry["sha256"]
    model, meta = readers.load_reader()
    assert isinstance(model, SDNN) and not model.training and model.margin == 12
    assert meta.model == "sdnn" and meta.classes == CLASSES
    assert 0 < meta.extra["reject"] < 1 and meta.extra["reject"] == entry["reject"]
    assert entry["command"].startswith("OMP_NUM_THREADS=1 python -m lenet.training.reader")
    # Not a digit model: the digit weights' manifest (lenet weights, lenet.list_models) does
    # not list it.
    assert readers.DEFAULT_READER not in hub.list_pretrained()
    assert readers.is_reader(readers.DEFAULT_READER) and not readers.is_reader("lenet5")


def test_a_damaged_bundled_reader_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             fresh_cache: None) -> None:
    dest = tmp_path / "pretrained"
    shutil.copytree(hub.PRETRAINED_DIR, dest)
    monkeypatch.setattr(hub, "PRETRAINED_DIR", dest)
    entry = readers.manifest()[readers.DEFAULT_READER]
    path = dest / entry["file"]
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match=r"do not match the SHA-256 in readers\.json"):
        readers.load_reader()
    (dest / readers.MANIFEST).write_text("{not json")
    with pytest.raises(WeightsError, match="unreadable manifest"):
        readers.manifest()


def test_reader_files_are_checked(tmp_path: Path) -> None:
    model = SDNN()
    path = readers.publish(model, readers.reader_meta(0.5, {"margin": 12}), "x", tmp_path)
    assert json.loads((tmp_path / readers.MANIFEST).read_text())["x"]["file"] == "x.safetensors"
    _, meta = readers.load_reader(path)
    assert meta.extra["reject"] == 0.5 and readers.is_reader(path)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(WeightsError):
        readers.load_reader(path)
    digits = tmp_path / "digits.safetensors"
    weights.save(digits, create("lenet5"), weights.read("lenet5")[1])
    assert not readers.is_reader(digits)
    with pytest.raises(WeightsError, match="not a reader"):
        readers.load_reader(digits)
    bad = readers.reader_meta(0.5, {})
    bad.extra["reject"] = 7
    with pytest.raises(WeightsError, match="reject threshold 7"):
        readers.check_reader(dict(model.state_dict()), bad, "f")


def test_an_ensemble_reader_is_stored_compactly_and_read_back(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    model = SDNN.ensemble([SDNN(), SDNN()]).eval()
    meta = readers.reader_meta(0.5, {"margin": 12, "members": 2})
    path = readers.publish(model, meta, "pair", tmp_path, small=True)
    single = readers.publish(SDNN(), readers.reader_meta(0.5, {"margin": 12}), "one", tmp_path)
    assert path.stat().st_size < 0.6 * single.stat().st_size  # ~1 byte a weight, not 4
    loaded, meta = readers.load_reader(path)
    assert loaded.members == 2 and meta.extra["members"] == 2
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    for name, value in model.state_dict().items():  # int8 with a scale per output channel
        peak = value.abs().flatten(1).amax(1) if value.dim() > 1 else value.abs()
        err = (loaded.state_dict()[name] - value).abs().flatten(1).amax(1) \
            if value.dim() > 1 else (loaded.state_dict()[name] - value).abs()
        assert (err <= peak / 254 * 1.01 + 1e-6).all(), name
    x = torch.randn(1, 1, 28, 90)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=5e-2)
    for wrong in (3, 0, "2", True):
        bad = readers.reader_meta(0.5, {"margin": 12, "members": wrong})
        with pytest.raises(WeightsError, match=r"members|tensors do not match"):
            readers.check_reader(dict(model.state_dict()), bad, "f")


def test_a_compact_file_without_its_scales_is_refused() -> None:
    import torch

    tensors = readers.compact(dict(SDNN().state_dict()))
    del tensors["c5.weight" + readers.SCALE]
    with pytest.raises(WeightsError, match=r"c5\.weight lacks its per-channel scale"):
        readers._float(tensors, "f")
    tensors = readers.compact(dict(SDNN().state_dict()))
    tensors["c5.weight" + readers.SCALE] = torch.ones(3, dtype=torch.float16)
    with pytest.raises(WeightsError, match="lacks its per-channel scale"):
        readers._float(tensors, "f")
