"""The pretrained weights bundled in the package: each file is the one its manifest records,
fits its model, and measures on the real test set the accuracy recorded when it was published."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from lenet import data, models
from lenet.analysis.evaluate import evaluate_loaded, load
from lenet.errors import ConfigError, WeightsError
from lenet.models import hub

BUNDLED = hub.list_pretrained()
# Issue #16: at least these ship, each with its shipped recipe.
REQUIRED = {"lenet5": "mnist", "lenet5-1998": "mnist", "lenet5-tanh": "mnist",
            "lenet5-sigmoid": "fashion-mnist"}


@pytest.fixture
def fresh_cache():
    hub._read_checked.cache_clear()
    yield
    hub._read_checked.cache_clear()


def test_the_required_weights_are_bundled() -> None:
    entries = hub.manifest()
    assert {n: entries[n]["dataset"] for n in REQUIRED if n in entries} == REQUIRED
    # timm's arch.tag names, the tag being the dataset (tests/models/test_factory.py)
    # (a second set of one model on one dataset adds its name's own part: lenet5.real-mnist)
    tagged = sorted(f"{entries[n]['model']}.{entries[n]['dataset']}" for n in BUNDLED
                    if n != "lenet5-real") + ["lenet5.real-mnist"] * ("lenet5-real" in BUNDLED)
    assert models.list_models(pretrained=True) == models.list(pretrained=True) == sorted(tagged)


@pytest.mark.parametrize("name", BUNDLED)
def test_each_file_is_the_one_its_manifest_records(name: str) -> None:
    w = models.get_weights(name)
    raw = w.path.read_bytes()
    assert len(raw) <= 300_000 and w.meta["bytes"] == len(raw)
    assert hashlib.sha256(raw).hexdigest() == w.sha256
    _, meta = w.read()
    assert meta.model == w.model and meta.dataset == w.dataset
    assert w.transforms().preprocessing == meta.preprocessing and len(w.classes) == 10
    assert w.meta["command"].startswith("OMP_NUM_THREADS=1 lenet train --config ")


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLED)
def test_each_measures_its_recorded_accuracy_on_the_real_test_set(name: str) -> None:
    w = models.get_weights(name)
    data.fetch(w.dataset)
    measured = evaluate_loaded(load(name))
    assert measured["total"] == w.meta["test_digits"] == 10_000
    # The same weights, the same digits: only the order of float sums may differ (batch size,
    # threads), which can move a digit sitting exactly on a tie; none does in practice.
    assert abs(measured["errors"] - w.meta["test_errors"]) <= 1, (measured, w.meta)
    assert measured["accuracy"] == pytest.approx(w.test_accuracy, abs=1e-4)


def test_create_pretrained_loads_the_bundled_tensors() -> None:
    model = models.create("lenet5", pretrained=True)
    tensors, _ = models.get_weights("lenet5").read()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in tensors.items())
    assert model.pretrained_weights.name == "lenet5"
    fresh = models.create("lenet5")
    assert not torch.equal(fresh.c1.weight, model.c1.weight)
    assert fresh.pretrained_weights is None


def test_create_passes_keyword_arguments_to_the_model() -> None:
    model = models.create("lenet5", num_classes=47)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 47)
    with pytest.raises(ConfigError, match=r"'lenet5'.*unexpected keyword argument 'width'"):
        models.create("lenet5", width=3)
    with pytest.raises(ConfigError, match=r"differ.*output\.bias, output\.weight"):
        hub.load_pretrained("lenet5", models.create("lenet5", num_classes=47))


def test_an_unknown_name_lists_the_bundled_ones() -> None:
    with pytest.raises(ConfigError, match="no pretrained weights named 'nope'; bundled: lenet5"):
        models.get_weights("nope")
    with pytest.raises(ConfigError, match="no pretrained weights named 'mlp-300'"):
        models.create("mlp-300", pretrained=True)


def _copy_bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    dest = tmp_path / "pretrained"
    shutil.copytree(hub.PRETRAINED_DIR, dest)
    monkeypatch.setattr(hub, "PRETRAINED_DIR", dest)
    return dest


def test_a_damaged_bundled_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           fresh_cache: None) -> None:
    dest = _copy_bundled(tmp_path, monkeypatch)
    path = dest / "lenet5.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match=r"do not match the SHA-256 in manifest\.json.*"
                                           r"reinstall lenet"):
        models.create("lenet5", pretrained=True)
    path.unlink()
    with pytest.raises(WeightsError, match="missing or unreadable"):
        models.get_weights("lenet5").read()


def test_a_broken_manifest_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              fresh_cache: None) -> None:
    dest = _copy_bundled(tmp_path, monkeypatch)
    (dest / hub.MANIFEST).write_text("{not json")
    with pytest.raises(WeightsError, match="unreadable manifest"):
        models.list_pretrained()
    (dest / hub.MANIFEST).write_text(json.dumps({"lenet5": {"file": "lenet5.safetensors"}}))
    with pytest.raises(WeightsError, match="entry 'lenet5' is malformed"):
        models.get_weights("lenet5")


def test_the_manifest_must_name_the_model_and_dataset_its_file_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_cache: None) -> None:
    # What the weights are is the file's WeightsMeta; the manifest's copy (for listing) may
    # not say otherwise.
    dest = _copy_bundled(tmp_path, monkeypatch)
    entries = hub.manifest(dest)
    entries["lenet5"]["dataset"] = "fashion-mnist"
    hub.write_manifest(dest, entries)
    w = models.get_weights("lenet5")
    assert w.meta["dataset"] == "fashion-mnist" and w.test_accuracy == 0.9907
    with pytest.raises(WeightsError, match=r"are lenet5 on mnist, but manifest\.json lists "
                                           r"lenet5 on fashion-mnist.*reinstall lenet"):
        w.read()
    entries["lenet5"]["model"] = ["lenet5"]
    hub.write_manifest(dest, entries)
    with pytest.raises(WeightsError, match=r"entry 'lenet5' is malformed.*model is not a string"):
        models.get_weights("lenet5")


def test_the_bundled_manifest_reads_and_writes_back_byte_for_byte(tmp_path: Path) -> None:
    hub.write_manifest(tmp_path, hub.manifest())
    assert (tmp_path / hub.MANIFEST).read_bytes() == (hub.PRETRAINED_DIR / hub.MANIFEST
                                                      ).read_bytes()


def test_a_publication_entry_is_derived_from_the_files_metadata() -> None:
    w = models.get_weights("lenet5")
    data = w.path.read_bytes()
    measured = {"accuracy": 0.5, "errors": 5000, "total": 10_000, "first_1000": 0.25}
    config = {"seed": 3, "epochs": 10, "run_dir": "/home/me/runs/x", "data_dir": "/data"}
    made = hub.Weights.publication("x", w.weights_meta, data, recipe="lenet5", config=config,
                                   measured=measured, machine="a CPU (AVX2)")
    assert (made.name, made.file, made.recipe, made.seed) == ("x", "x.safetensors", "lenet5", 3)
    assert made.sha256 == w.sha256 and made.meta["bytes"] == len(data)
    assert made.meta["model"] == "lenet5" and made.meta["dataset"] == "mnist"
    assert made.meta["epochs"] == w.weights_meta.extra["epoch"] == w.meta["epochs"]
    assert made.test_accuracy == 0.5 and made.meta["test_errors"] == 5000
    assert made.meta["config"] == {"seed": 3, "epochs": 10}
    assert made.meta["command"].startswith("OMP_NUM_THREADS=1 lenet train --config lenet5 "
                                           "--seed 3 --run-dir runs/weights/x && ")
    assert set(made.meta) == set(w.meta)  # every key a bundled entry has, and only those
    assert hub.Weights.publication("x", w.weights_meta, data, recipe="r", config={},
                                   measured=measured, machine="m").seed == -1
