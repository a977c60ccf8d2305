"""The top-level API (``src/lenet/__init__.py``): light to import, one line to a working model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lenet


def test_import_lenet_loads_no_torch() -> None:
    code = ("import sys, lenet; assert 'torch' not in sys.modules, 'torch'; "
            "lenet.create_model; assert 'torch' in sys.modules; print(sorted(lenet.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    for name in ("create_model", "load", "train", "Predictor", "data", "models", "read",
                 "Reader"):
        assert f"'{name}'" in out.stdout


def test_create_model_and_load_read_the_same_bundled_weights(mnist_test) -> None:
    images, labels = mnist_test
    model = lenet.create_model("lenet5", pretrained=True).eval()
    reader = lenet.load("lenet5")
    assert isinstance(reader, lenet.Predictor) and reader.model_name == "lenet5"
    prep = model.pretrained_weights.transforms()
    with torch.inference_mode():
        scores = model(prep(torch.from_numpy(images[:1000])))
    assert np.allclose(scores.numpy(), reader.scores(images[:1000]), atol=1e-5)
    accuracy = float((scores.argmax(1).numpy() == labels[:1000]).mean())
    assert accuracy > 0.97  # the whole test set's recorded figure: tests/models/test_hub.py


def test_predict_image_reads_a_file(tmp_path: Path, mnist_test) -> None:
    from PIL import Image

    images, labels = mnist_test
    Image.fromarray(images[1]).save(tmp_path / "d.png")
    assert lenet.load("lenet5").predict_image(tmp_path / "d.png").label == str(labels[1])


def test_dir_shows_the_public_names_and_each_resolves() -> None:
    assert dir(lenet) == sorted(lenet.__all__)
    for name in ("Any", "TYPE_CHECKING", "annotations", "importlib"):
        assert name not in dir(lenet)
    for name in lenet.__all__:
        assert getattr(lenet, name) is not None, name
    assert lenet.list_models is lenet.models.list_models
    assert lenet.create_model is lenet.models.create


def test_the_public_functions_have_signatures_and_docs_that_name_real_things() -> None:
    import inspect
    import pydoc
    import re

    shown = pydoc.render_doc(lenet.train, renderer=pydoc.plaintext)
    assert "train(config: " in shown and "init_weights: " in shown and ">>> " in shown
    params = inspect.signature(lenet.create_model).parameters
    assert {"name", "pretrained", "num_classes", "in_chans"} <= set(params)
    for func in (lenet.train, lenet.create_model, lenet.list_models, lenet.load):
        doc = inspect.getdoc(func) or ""
        assert ">>> " in doc, func
        # Every `lenet.x` a docstring names exists (create_model once named a missing one).
        for dotted in re.findall(r"\blenet(?:\.[a-z_]+)+", doc):
            obj = lenet
            for part in dotted.split(".")[1:]:
                obj = getattr(obj, part)


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lenet.nope  # noqa: B018


@pytest.mark.slow
def test_train_from_python_returns_metrics_model_and_run_dir(tmp_path: Path,
                                                             mnist_ready: None) -> None:
    result = lenet.train("lenet5", epochs=1, train_subset=2000, test_subset=1000, seed=3,
                         run_dir=str(tmp_path / "run"), log=lambda s: None)
    assert result.run_dir == tmp_path / "run" and (result.run_dir / "model.safetensors").is_file()
    assert result.metrics["epochs"] == 1 and 0.5 < result.metrics["test_accuracy"] <= 1
    assert not result.model.training
    saved = lenet.load(result.run_dir).model
    assert all(torch.equal(a, b) for a, b in zip(saved.state_dict().values(),
                                                 result.model.state_dict().values(),
                                                 strict=True))
    # lenet.train is a plain function, lenet.training's (its loop: lenet.training.loop.fit).
    assert lenet.train is lenet.training.train
    # A TrainConfig works as the recipe, with overrides on top.
    again = lenet.train(result.config, run_dir=str(tmp_path / "again"), log=lambda s: None)
    assert again.metrics["test_accuracy"] == result.metrics["test_accuracy"]  # same seed
