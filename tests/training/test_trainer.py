"""Real training on real MNIST subsets: accuracy, determinism, and what a run leaves behind."""

import csv
import importlib.util
import json
import re
from dataclasses import replace

import pytest
import torch

from lenet.analysis.evaluate import evaluate_weights
from lenet.config import resolve
from lenet.errors import LenetError
from lenet.models import weights
from lenet.storage import checkpoint
from lenet.training.loop import fit
from lenet.training.schedule import Schedule

pytestmark = pytest.mark.slow


def test_short_run_learns_and_saves_everything(tiny_run) -> None:
    # 2 epochs on 6,000 digits: measured ~0.96-0.97 test accuracy on the first 2,000 test digits.
    assert tiny_run.test.accuracy >= 0.93
    run_dir = tiny_run.run_dir
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == "lenet5" and config["train_subset"] == 6000
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    _, meta = weights.read(run_dir)
    assert meta.test_accuracy == tiny_run.test.accuracy
    assert meta.preprocessing.mean == 0.5 and meta.dataset == "mnist"
    assert (run_dir / "initial.safetensors").is_file()
    assert any(p.name.startswith("events.out.tfevents") for p in run_dir.iterdir())
    summary = tiny_run.summary()
    for key in ("model", "dataset", "epochs", "test_accuracy", "train_seconds",
                "seconds_per_epoch", "params", "run_dir"):
        assert key in summary


def test_evaluate_reproduces_training_accuracy_exactly(tiny_run) -> None:
    r = evaluate_weights(tiny_run.run_dir, test_subset=2000)
    assert r["accuracy"] == tiny_run.test.accuracy
    assert r["errors"] == tiny_run.test.errors


def _quick(tmp_path, name: str, **overrides):
    cfg = resolve(None, {"model": "lenet5", "epochs": 1, "train_subset": 1000, "test_subset": 500,
                         "tensorboard": False, "run_dir": str(tmp_path / name), **overrides})
    return fit(cfg, log=lambda s: None)


def test_same_seed_gives_bit_identical_weights_on_cpu(tmp_path, mnist_ready) -> None:
    a = _quick(tmp_path, "a", seed=7)
    b = _quick(tmp_path, "b", seed=7)
    c = _quick(tmp_path, "c", seed=8)
    wa, _ = weights.read(a.run_dir)
    wb, _ = weights.read(b.run_dir)
    wc, _ = weights.read(c.run_dir)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_deslant_trains_on_deslanted_digits_and_saves_it_in_the_weights(tmp_path,
                                                                       mnist_ready) -> None:
    r = _quick(tmp_path, "d", deslant=True, seed=3)
    _, meta = weights.read(r.run_dir)
    assert meta.preprocessing.deslant is True
    assert r.test.accuracy > 0.5  # one pass on 1,000 deslanted digits still learns
    # evaluate, predict and serve read the preprocessing from the weights: same digits, same score
    again = evaluate_weights(r.run_dir, test_subset=500)
    assert again["accuracy"] == r.test.accuracy
    plain = _quick(tmp_path, "p", seed=3)
    assert plain.test.accuracy != r.test.accuracy or plain.history[0].train_loss != \
        r.history[0].train_loss


def test_validation_split_is_held_out(tmp_path, mnist_ready) -> None:
    r = _quick(tmp_path, "v", val_size=500, train_subset=0, epochs=1, batch_size=512)
    assert r.history[0].val_accuracy is not None
    assert r.summary()["val_accuracy"] == r.history[0].val_accuracy


def test_diverging_run_stops_with_a_clear_error(tmp_path, mnist_ready) -> None:
    # Step 1 runs on the initial weights; its update at lr 1e30 overflows step 2's forward pass.
    with pytest.raises(LenetError) as e:
        _quick(tmp_path, "nan", optimizer="sgd", lr=1e30)
    message = str(e.value)
    # No checkpoint exists yet (they are written at epoch ends): none is claimed.
    assert re.fullmatch(
        r"the training loss became (nan|inf|-inf) at epoch 1, step 2, at learning rate 1e\+30; "
        r"try a lower learning rate \(now --lr 1e\+30 with the step schedule\)\. No checkpoint "
        r"had been written yet",
        message), message
    assert not (tmp_path / "nan" / checkpoint.CHECKPOINT_DIR).exists()
    assert not (tmp_path / "nan" / weights.WEIGHTS_NAME).exists()


def test_divergence_in_a_later_epoch_keeps_the_last_good_checkpoint(tmp_path,
                                                                   mnist_ready) -> None:
    # A sane first epoch, then a learning rate that blows up: epoch 2 diverges, deterministically.
    run = tmp_path / "late"
    with pytest.raises(LenetError) as e:
        _quick(tmp_path, "late", optimizer="sgd", epochs=3, scheduler="milestones",
               milestones=[1], lr_values=[0.01, 1e30])
    message = str(e.value)
    # The rate that diverged (epoch 2's), not the base lr, and the checkpoint really kept.
    assert re.search(r"the training loss became (nan|inf|-inf) at epoch 2, step \d+, at "
                     r"learning rate 1e\+30; try a lower learning rate \(now lr_values 0\.01, "
                     r"1e\+30\)", message), message
    newest = run / checkpoint.CHECKPOINT_DIR / "epoch-0001.safetensors"
    assert message.endswith(f"The last good checkpoint is kept: {newest}")
    # Nothing was written after the divergence: epoch 1's checkpoint is the newest, and intact.
    kept = sorted(p.name for p in (run / checkpoint.CHECKPOINT_DIR).iterdir())
    assert kept == ["epoch-0001.safetensors"]
    warnings: list[str] = []
    good = checkpoint.latest(run, warn=warnings.append)
    assert good is not None and not warnings
    assert (good.epoch, good.step_in_epoch) == (1, 0)
    assert [m["epoch"] for m in good.state["history"]] == [1]
    assert all(bool(torch.isfinite(t).all()) for t in good.model.values())
    assert not (run / weights.WEIGHTS_NAME).exists()


def test_resuming_a_finished_run_evaluates_it_again_without_training(tmp_path,
                                                                     mnist_ready) -> None:
    done = _quick(tmp_path, "done", seed=4)
    trained, _ = weights.read(done.run_dir)
    lines: list[str] = []
    again = fit(done.config, log=lines.append, progress=False, resume=True)
    assert lines[0] == f"resuming {tmp_path / 'done'} from epoch 1"
    assert again.history == done.history and again.test == done.test
    saved, _ = weights.read(again.run_dir)
    assert saved.keys() == trained.keys()
    assert all(torch.equal(trained[k], saved[k]) for k in saved)


def test_schedules() -> None:
    cfg = resolve(None, {"model": "lenet5", "scheduler": "onecycle", "epochs": 2, "lr": 1.0})
    s = Schedule(cfg, steps_per_epoch=10)
    assert s.lr(0, 0) == pytest.approx(0.04)
    assert s.lr(0, 5) == pytest.approx(1.0)
    assert s.lr(1, 19) < 0.1
    step = Schedule(resolve(), steps_per_epoch=10)
    assert [step.lr(e, 0) for e in (0, 2, 3, 6)] == pytest.approx([0.01, 0.01, 0.001, 0.0001])


def test_progress_bars_show_in_jupyter(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from lenet.training import progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert progress.interactive() is False
    monkeypatch.setitem(sys.modules, "ipykernel", sys)  # any module object: a kernel is loaded
    assert progress.interactive() is True


@pytest.mark.slow
def test_bf16_trains_and_the_log_names_the_precision_and_threads(tmp_path, mnist_ready) -> None:
    lines: list[str] = []
    cfg = resolve(None, {"model": "lenet5", "epochs": 1, "train_subset": 2000,
                         "test_subset": 500, "precision": "bf16", "seed": 2,
                         "run_dir": str(tmp_path / "r"), "tensorboard": False})
    r = fit(cfg, log=lines.append, progress=False)
    start = next(line for line in lines if line.startswith("training lenet5"))
    assert re.search(r", bf16, device cpu \(\d+ threads?\)", start), start
    assert r.test.accuracy > 0.5
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["precision"] == "bf16"
    # The thread count used is saved (0 asked for "the free cores"), so a resume keeps it.
    assert cfg.threads == 0 and f"({saved['threads']} thread" in start


def test_lenet5_takes_the_compiled_step_and_step_torch_keeps_autograd(tmp_path,
                                                                      mnist_ready) -> None:
    """With numba installed a lenet5 run says it trains with the compiled step, follows the
    autograd step's run up to float rounding, and gives torch its threads back."""
    pytest.importorskip("numba", reason="numba is not installed: the compiled step is optional")
    threads = torch.get_num_threads()
    runs = {}
    for kind in ("auto", "torch"):
        lines: list[str] = []
        cfg = resolve(None, {"model": "lenet5", "epochs": 1, "train_subset": 1000,
                             "test_subset": 500, "tensorboard": False, "seed": 4,
                             "step": kind, "run_dir": str(tmp_path / kind)})
        runs[kind] = fit(cfg, log=lines.append, progress=False)
        start = next(line for line in lines if line.startswith("training lenet5"))
        assert ("step compiled with numba" in start) == (kind == "auto"), start
        assert torch.get_num_threads() == threads
    compiled, autograd = runs["auto"].history[0], runs["torch"].history[0]
    assert compiled.test_accuracy > 0.5
    assert compiled.train_loss == pytest.approx(autograd.train_loss, rel=1e-3)
    assert compiled.test_accuracy == pytest.approx(autograd.test_accuracy, abs=0.01)


@pytest.mark.parametrize(("recipe", "overrides", "auto", "torch_step"), [
    ("lenet5", {}, "lenet5-numba", "autograd"),
    ("lenet5", {"compile": True}, "autograd", "autograd"),
    ("lenet5-tanh", {}, "autograd", "autograd"),  # a LeNet5 the compiled step does not compute
    ("lenet5-1998", {}, "pattern-numba", "pattern"),
    ("lenet5-1998", {"optimizer": "adam", "lr": 0.001}, "autograd", "autograd"),
    ("mlp", {}, "autograd", "autograd"),
])
def test_each_run_takes_the_first_step_kind_that_supports_it(recipe, overrides, auto,
                                                               torch_step) -> None:
    """The registry's choice, from each kind's own supports test: `step: torch` passes over
    the kinds compiled with numba (without numba, autograd's and the torch per-pattern step
    are all there is)."""
    from lenet.models import create
    from lenet.training import steps
    from lenet.training.optim import make_optimizer

    numba = importlib.util.find_spec("numba") is not None
    for step, wanted in (("auto", auto), ("torch", torch_step)):
        cfg = resolve(recipe, {**overrides, "step": step})
        model = create(cfg.model)
        kind = steps.choose(model, make_optimizer(cfg, model), cfg)
        if not numba:
            wanted = {"lenet5-numba": "autograd", "pattern-numba": "pattern"}.get(wanted, wanted)
        assert kind.name == wanted, (recipe, overrides, step)


def test_a_precision_other_than_fp32_builds_autograds_step() -> None:
    """The compiled and per-pattern kinds compute fp32 only: bf16 takes autograd's step (in
    the batch <= 4 wrapper that switches oneDNN off on the CPU)."""
    from lenet.models import create, get_spec
    from lenet.models.losses import make_loss
    from lenet.training import steps
    from lenet.training.optim import make_optimizer

    cfg = resolve("lenet5-1998", {"train_subset": 10})
    model = create(cfg.model)
    optimizer = make_optimizer(cfg, model)
    parts = steps.Parts(model, optimizer, make_loss("rbf-map"), "rbf-map", cfg,
                        torch.device("cpu"), "bf16")
    built = steps.build(steps.PATTERN, parts)
    assert built.chunk == 1 and not built.sequence
    assert built.fn.__name__ == "native_conv_step"
    pattern = steps.build(steps.PATTERN, replace(parts, precision="fp32"))
    assert pattern.fn.__name__ == "native_conv_step"  # batch 1 on the CPU
    size = get_spec(cfg.model).input_size
    x, y = torch.rand(1, 1, size, size), torch.tensor([3])
    optimizer.before_epoch(model, (x, y), "rbf-map")  # SDLM's curvature, before a first step
    loss, scores = built.fn(x, y)
    assert loss.shape == () and scores.shape == (1, 10)
    assert torch.backends.mkldnn.enabled  # switched back on after the step
