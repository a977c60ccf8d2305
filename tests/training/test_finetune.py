"""Fine-tuning: ``init_weights`` (``lenet train --init-weights``) starts a run from bundled
weights by name or ``arch.tag``, a run directory or a ``.safetensors`` file; a resumed run never
applies them again; a wrong name, file or model is refused before a run directory is made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import lenet
from lenet import cli, models
from lenet.errors import ConfigError, DatasetError, WeightsError
from lenet.models import weights
from lenet.storage import rundir

# 256 training digits, 128 test digits: 4 steps, well under a second (tests/reliability).
TINY = {"model": "lenet5", "epochs": 1, "train_subset": 256, "test_subset": 128,
        "batch_size": 64, "tensorboard": False, "device": "cpu", "seed": 5, "progress": False}


@pytest.fixture(scope="module")
def fashion_ready() -> None:
    try:
        lenet.data.fetch("fashion-mnist")
    except DatasetError as e:  # no network and no Debian dataset-fashion-mnist package here
        pytest.skip(f"Fashion-MNIST is not available here: {e}")


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return weights.read_file(path)[0]


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory: pytest.TempPathFactory, fashion_ready: None
               ) -> tuple[lenet.training.RunResult, list[str]]:
    """The bundled MNIST lenet5, fine-tuned for 4 steps on Fashion-MNIST."""
    lines: list[str] = []
    result = lenet.train(**TINY, dataset="fashion-mnist", init_weights="lenet5.mnist",
                         run_dir=str(tmp_path_factory.mktemp("ft") / "run"), log=lines.append)
    return result, lines


def test_a_fine_tune_starts_from_the_bundled_weights_and_trains(
        fine_tuned: tuple[lenet.training.RunResult, list[str]]) -> None:
    result, lines = fine_tuned
    bundled, _ = models.get_weights("lenet5").read()
    initial = _tensors(result.run_dir / rundir.INITIAL)
    assert _equal(initial, bundled)  # every layer fits: body and head start as bundled
    final = _tensors(result.run_dir / rundir.WEIGHTS)
    assert all(not torch.equal(final[k], bundled[k]) for k in ("c1.weight", "output.weight"))
    assert result.metrics["epochs"] == 1 and result.config.dataset == "fashion-mnist"
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["init_weights"] == "lenet5.mnist" and saved["dataset"] == "fashion-mnist"
    assert [line for line in lines if "starting from the weights" in line] == [
        "starting from the weights lenet5.mnist"]


def test_a_run_dir_and_a_weights_file_start_a_run_too(
        fine_tuned: tuple[lenet.training.RunResult, list[str]], tmp_path: Path,
        mnist_ready: None) -> None:
    first = fine_tuned[0].run_dir
    from_dir = lenet.train(**TINY, init_weights=first, run_dir=str(tmp_path / "a"),
                           log=lambda _: None)
    assert _equal(_tensors(from_dir.run_dir / rundir.INITIAL),
                  _tensors(first / rundir.WEIGHTS))
    file = first / rundir.INITIAL  # a .safetensors file: the bundled weights, as first began
    from_file = lenet.train(**TINY, init_weights=str(file), run_dir=str(tmp_path / "b"),
                            log=lambda _: None)
    assert _equal(_tensors(from_file.run_dir / rundir.INITIAL), _tensors(file))


def test_a_resumed_run_does_not_apply_them_again(tmp_path: Path, mnist_ready: None) -> None:
    run = tmp_path / "run"
    lines: list[str] = []
    lenet.train(**TINY, init_weights="lenet5", run_dir=str(run), log=lines.append)
    initial = _tensors(run / rundir.INITIAL)
    again: list[str] = []
    resumed = lenet.train(**{**TINY, "epochs": 2}, init_weights="lenet5", run_dir=str(run),
                          resume=True, log=again.append)
    assert [line for line in lines if line.startswith("starting from")]
    assert not [line for line in again if line.startswith("starting from")], again
    assert any(line.startswith("resuming") for line in again)
    assert _equal(_tensors(run / rundir.INITIAL), initial)
    # Bit-identical to the same two epochs run at once: the weights came from the checkpoint.
    whole = lenet.train(**{**TINY, "epochs": 2}, init_weights="lenet5",
                        run_dir=str(tmp_path / "whole"), log=lambda _: None)
    assert _equal(_tensors(run / rundir.WEIGHTS), _tensors(whole.run_dir / rundir.WEIGHTS))
    assert resumed.metrics["test_accuracy"] == whole.metrics["test_accuracy"]


@pytest.mark.parametrize(("init", "error", "match"), [
    ("lenet5-tanh.mnist", ConfigError,
     r"init_weights lenet5-tanh\.mnist: these are weights of lenet5-tanh, and this run trains "
     r"lenet5; pass --model lenet5-tanh"),
    ("lenet6", WeightsError, r"lenet6.*or name bundled weights: lenet5"),
    ("", ConfigError, "init_weights must name bundled weights"),
])
def test_wrong_init_weights_are_refused_before_a_run_dir_is_made(
        init: str, error: type[Exception], match: str, tmp_path: Path) -> None:
    with pytest.raises(error, match=match):
        lenet.train(**TINY, init_weights=init, run_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_the_cli_flag_records_them_and_resume_refuses_a_new_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], mnist_ready: None) -> None:
    run = tmp_path / "run"
    argv = ["train", "--model", "lenet5", "--epochs", "1", "--train-subset", "256",
            "--test-subset", "128", "--no-tensorboard", "--device", "cpu", "--run-dir",
            str(run)]
    assert cli.main([*argv, "--init-weights", "lenet5.mnist"]) == 0
    assert json.loads((run / "config.json").read_text())["init_weights"] == "lenet5.mnist"
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), "--init-weights", "lenet5"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "drop init_weights" in err


def test_train_takes_a_model_by_name_not_a_module(tmp_path: Path) -> None:
    module = models.create("lenet5")
    with pytest.raises(TypeError, match=r"takes a registry name such as 'lenet5'.*not a "
                                        r"LeNet5.*register it.*init_weights="):
        lenet.train(model=module, run_dir=str(tmp_path / "run"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"config is a recipe name.*not a LeNet5"):
        lenet.train(module)  # type: ignore[arg-type]
    assert not (tmp_path / "run").exists()
