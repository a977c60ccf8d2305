"""lenet.training.tensorboard: the trainer's event file, and the kernel image it logs."""

from __future__ import annotations

import json
import logging
import sys

import pytest
import torch

from tests.reliability.conftest import TINY

EXTRA = "an extra: pip install 'lenet[tensorboard]'"


def test_tensorboard_event_tags(runs) -> None:
    pytest.importorskip("tensorboard", reason=EXTRA)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = runs["lenet5"].run_dir
    # The hparams live in the run's own event file, not in a sub-run folder.
    assert not [p for p in run_dir.glob("*/**/events.out.tfevents*")]
    assert len(list(run_dir.glob("events.out.tfevents*"))) == 1
    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "histograms": 0,
                                                       "images": 0, "tensors": 0})
    ea.Reload()
    tags = ea.Tags()
    for tag in ("Loss/train", "Loss/test", "Accuracy/train", "Accuracy/test", "Accuracy/val",
                "LR", "hparams/test_accuracy"):
        assert tag in tags["scalars"], tag
    assert "Weights/c1.weight" in tags["histograms"] and "Weights/c3.weight" in tags["histograms"]
    assert tags["images"] == ["Kernels/c1"]
    assert ea.Scalars("hparams/test_accuracy")[-1].value == pytest.approx(
        runs["lenet5"].test.accuracy)
    assert [e.step for e in ea.Scalars("Accuracy/test")] == [1]
    hp = ea.PluginTagToContent("hparams")
    assert set(hp) == {"_hparams_/experiment", "_hparams_/session_start_info",
                       "_hparams_/session_end_info"}
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = plugin_data_pb2.HParamsPluginData.FromString(hp["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["model"].string_value == "lenet5"
    assert start.session_start_info.hparams["val_size"].number_value == 200


def test_kernel_image_layout() -> None:
    from lenet.training.tensorboard import kernel_image

    w = torch.zeros(6, 1, 5, 5)
    w[0, 0, 0, 0] = 1.0
    w[1, 0, 0, 0] = -1.0
    img = kernel_image(w, cols=8, zoom=1)
    assert img.shape == (3, 7, 6 * 6 + 1)
    assert img[:, 1, 1].tolist() == [1.0, 0.0, 0.0]  # positive: red
    assert img[:, 1, 7].tolist() == [0.0, 0.0, 1.0]  # negative: blue
    assert img[:, 2, 2].tolist() == [1.0, 1.0, 1.0]  # zero: white


@pytest.fixture
def no_tensorboard(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as an install without the extra: not found, and its import fails; the
    notice not shown yet."""
    from lenet import config
    from lenet.training import tensorboard

    monkeypatch.setattr(config, "tensorboard_installed", lambda: False)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import: ImportError
    monkeypatch.setattr(tensorboard._Notice, "given", False)


def _notices(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("lenet") and "TensorBoard" in r.getMessage()]


def test_without_the_extra_tensorboard_is_off_by_default_and_silent(
        no_tensorboard, tmp_path, caplog, mnist_ready) -> None:
    from lenet.config import resolve
    from lenet.training.loop import fit

    caplog.set_level(logging.DEBUG, logger="lenet")
    overrides = {k: v for k, v in TINY.items() if k != "tensorboard"}  # the default
    cfg = resolve(None, {**overrides, "run_dir": str(tmp_path / "run")})
    assert cfg.tensorboard is False
    fit(cfg)
    assert _notices(caplog) == []
    assert json.loads((tmp_path / "run" / "config.json").read_text())["tensorboard"] is False
    assert not list((tmp_path / "run").glob("events.out.tfevents*"))


def test_asked_for_without_the_extra_says_so_once_and_records_what_happened(
        no_tensorboard, tmp_path, caplog, mnist_ready) -> None:
    from lenet.config import resolve
    from lenet.training.loop import fit

    caplog.set_level(logging.INFO, logger="lenet")
    for name in ("a", "b"):  # two runs in one process (a notebook): one notice
        fit(resolve(None, {**TINY, "tensorboard": True, "run_dir": str(tmp_path / name)}))
        saved = json.loads((tmp_path / name / "config.json").read_text())
        assert saved["tensorboard"] is False  # what happened, not what was asked
    assert _notices(caplog) == ["TensorBoard logging is off: tensorboard is not installed "
                                "(pip install 'lenet[tensorboard]')"]
    assert [r.levelname for r in caplog.records if "TensorBoard" in r.getMessage()] == [
        "WARNING"]


def test_installed_tensorboard_is_on_by_default(monkeypatch) -> None:
    from lenet import config

    monkeypatch.setattr(config, "tensorboard_installed", lambda: True)
    assert config.resolve(None, {}).tensorboard is True
    assert config.resolve(None, {"tensorboard": False}).tensorboard is False
