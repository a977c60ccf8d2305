"""Honest model selection: model_best.safetensors and early stopping follow the validation
split, never the test set, and a resumed run chooses and stops as an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lenet.analysis.evaluate import EvalResult
from lenet.config import resolve
from lenet.config.arguments import resume_config
from lenet.models import weights
from lenet.storage import rundir
from lenet.storage.history import EpochMetrics, select
from lenet.training.loop import fit

SRC = Path(__file__).resolve().parents[2] / "src" / "lenet"

# Scripted per-epoch (accuracy, loss): the best validation epoch (2) is not the best test
# epoch (4), and the validation loss last falls at epoch 2.
VAL = [(0.50, 1.00), (0.80, 0.60), (0.70, 0.65), (0.80, 0.70), (0.60, 0.90), (0.55, 0.95)]
TEST = [(0.90, 0.50), (0.60, 0.90), (0.95, 0.30), (0.99, 0.10), (0.97, 0.20), (0.96, 0.25)]


def _row(epoch: int, val: tuple[float, float] | None, test: float = 0.9) -> EpochMetrics:
    return EpochMetrics(epoch, 0.1, 0.9, test, 0.3, val[0] if val else None,
                        val[1] if val else None, 0.01, 1.0, 100.0)


def test_select_reads_validation_only_and_breaks_ties_on_lower_loss() -> None:
    history = [_row(i + 1, v, t) for i, (v, (t, _)) in enumerate(zip(VAL, TEST, strict=True))]
    chosen = select(history)
    # Epochs 2 and 4 tie on accuracy 0.80; epoch 2 has the lower loss. Test would say epoch 4.
    assert (chosen.best_epoch, chosen.best_val_accuracy, chosen.best_val_loss) == (2, 0.8, 0.6)
    assert chosen.stale_epochs == 4  # epochs 3-6 without a loss below 0.60
    # Equal accuracy and loss: the earlier epoch stays.
    assert select([_row(1, (0.7, 0.5)), _row(2, (0.7, 0.5))]).best_epoch == 1
    assert select([_row(1, None), _row(2, None)]).best_epoch is None


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> dict[int, dict[str, torch.Tensor]]:
    """Evaluation returns the scripted figures of the epoch being evaluated; the weights seen
    at each epoch's validation are kept (epoch -> state dict) for comparison."""
    import lenet.training.loop as loop_module

    seen: dict[int, dict[str, torch.Tensor]] = {}

    def fake(loop, split) -> EvalResult:
        epoch = len(loop.run.history) + 1
        if split is loop.data.val:
            seen[epoch] = {k: v.detach().clone() for k, v in loop.run.model.state_dict().items()}
            acc, loss = VAL[epoch - 1]
        else:
            acc, loss = TEST[min(epoch, len(TEST)) - 1]
        total = len(split.labels)
        return EvalResult(acc, loss, round((1 - acc) * total), total)

    monkeypatch.setattr(loop_module, "_evaluate", fake)
    return seen


def _train(run_dir: Path, resume: bool = False, **overrides):
    cfg = resolve(None, {"model": "lenet5", "epochs": 4, "train_subset": 200, "test_subset": 100,
                         "val_size": 100, "batch_size": 100, "tensorboard": False, "seed": 5,
                         "run_dir": str(run_dir), **overrides})
    return fit(cfg, log=lambda s: None, progress=False, resume=resume)


def test_model_best_is_chosen_on_validation_never_on_test(tmp_path, scripted,
                                                          mnist_ready) -> None:
    result = _train(tmp_path / "run")
    tensors, meta = weights.read(tmp_path / "run" / rundir.BEST)
    assert meta.extra["epoch"] == 2 and meta.extra["selected_on"] == "validation"
    assert (meta.extra["val_accuracy"], meta.extra["val_loss"]) == (0.8, 0.6)
    assert meta.test_accuracy == 0.60  # epoch 2's test figure, reported, not chosen on
    assert all(torch.equal(tensors[k], scripted[2][k].cpu()) for k in tensors)
    assert not all(torch.equal(tensors[k], scripted[4][k].cpu()) for k in tensors)
    summary = result.summary()
    assert (summary["best_epoch"], summary["best_val_accuracy"]) == (2, 0.8)
    assert (summary["val_accuracy"], summary["test_accuracy"]) == (0.8, 0.99)  # the final's
    assert summary["early_stopped"] is False and summary["epochs"] == 4
    assert not any(k.startswith("best_test") for k in summary)
    final = weights.read(tmp_path / "run" / rundir.WEIGHTS)[1]
    assert final.extra["epoch"] == 4 and "selected_on" not in final.extra


def test_early_stop_after_patience_epochs_without_a_lower_val_loss(tmp_path, scripted,
                                                                   mnist_ready) -> None:
    # The loss last falls at epoch 2; patience 2 stops after epoch 4, of 6.
    result = _train(tmp_path / "run", epochs=6, early_stop=2)
    assert [m.epoch for m in result.history] == [1, 2, 3, 4]
    assert result.summary()["early_stopped"] is True
    assert weights.read(tmp_path / "run" / rundir.WEIGHTS)[1].extra["epoch"] == 4
    assert weights.read(tmp_path / "run" / rundir.BEST)[1].extra["epoch"] == 2
    # Patience 3 lets epoch 5 run too.
    assert len(_train(tmp_path / "more", epochs=6, early_stop=3).history) == 5


def test_resume_keeps_the_best_so_far_and_the_patience_count(tmp_path, scripted,
                                                             mnist_ready) -> None:
    whole = _train(tmp_path / "whole", epochs=6, early_stop=2)
    _train(tmp_path / "split", epochs=3, early_stop=2)  # stops at 3 (epochs), stale 1 so far
    best = tmp_path / "split" / rundir.BEST
    written = best.read_bytes()
    resumed = _train(tmp_path / "split", resume=True, epochs=6, early_stop=2)
    # The patience counted before the interruption: stopped after epoch 4 again, not 5.
    assert [m.epoch for m in resumed.history] == [m.epoch for m in whole.history] == [1, 2, 3, 4]
    assert best.read_bytes() == written  # epoch 2's, never rewritten by the resumed run
    for name in (rundir.BEST, rundir.WEIGHTS):
        a, meta_a = weights.read(tmp_path / "whole" / name)
        b, meta_b = weights.read(tmp_path / "split" / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
        assert meta_a.extra["epoch"] == meta_b.extra["epoch"]
    assert {k: v for k, v in resumed.summary().items() if "seconds" not in k and k != "run_dir"} \
        == {k: v for k, v in whole.summary().items() if "seconds" not in k and k != "run_dir"}
    # An early-stopped run resumed for more epochs stays stopped.
    again = _train(tmp_path / "split", resume=True, epochs=6, early_stop=2)
    assert len(again.history) == 4


def test_resume_drops_a_model_best_of_an_epoch_it_trains_again(tmp_path, scripted,
                                                               mnist_ready) -> None:
    _train(tmp_path / "run", epochs=3)
    best = tmp_path / "run" / rundir.BEST
    # As if killed between writing model_best (of an epoch 3 that became the best) and its
    # checkpoint: the file's epoch is not the history's best.
    best.write_bytes((tmp_path / "run" / rundir.WEIGHTS).read_bytes())
    logged: list[str] = []
    fit(resume_config(str(tmp_path / "run"), None, {"epochs": 4}), log=logged.append,
        progress=False, resume=True)
    assert any("not of epoch 2, the best on validation so far; deleting it" in s
               for s in logged), logged
    assert not best.exists()  # epoch 4 ties epoch 2 with a higher loss: nothing rewrites it


def test_real_run_with_a_validation_fraction_writes_model_best(tmp_path, mnist_ready) -> None:
    result = _train(tmp_path / "real", epochs=2, val_size=0, val_fraction=0.005,
                    train_subset=300)
    assert all(m.val_accuracy is not None and m.val_loss is not None for m in result.history)
    chosen = select(result.history)
    meta = weights.read(tmp_path / "real" / rundir.BEST)[1]
    assert meta.extra["epoch"] == chosen.best_epoch
    assert meta.extra["val_accuracy"] == chosen.best_val_accuracy
    header = (tmp_path / "real" / rundir.METRICS).read_text().splitlines()[0]
    assert "val_loss" in header and "test_accuracy" in header


def test_no_best_test_figure_anywhere_in_the_package() -> None:
    hits = [str(p.relative_to(SRC)) for p in SRC.rglob("*") if p.is_file()
            and p.suffix in (".py", ".yaml", ".html", ".md", ".txt")
            and "best_test" in p.read_text(encoding="utf-8", errors="replace")]
    assert hits == []
