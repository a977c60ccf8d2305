"""lenet.training.tensorboard: the trainer's event file, and the kernel image it logs."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("tensorboard", reason="an extra: pip install 'lenet[tensorboard]'")


def test_tensorboard_event_tags(runs) -> None:
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
