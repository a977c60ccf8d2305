"""Forged checkpoints, re-signed with lenet's own digest so that the checksum passes (issue 20):
`--resume` skips each for the checkpoint before it, as it skips a damaged file, or stops with one
line; never a crash, a traceback, or a run that silently 'finishes'."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lenet.models import weights
from lenet.storage import checkpoint, rundir
from tests.reliability.conftest import one_line_error


def _forge(path: Path, edit: Callable[[dict, dict], None]) -> None:
    """Edit a checkpoint's tensors and metadata in place and sign it again, as a forger (or a
    buggy writer) with lenet's digest function would."""
    from safetensors.torch import load

    data = path.read_bytes()
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    meta = json.loads(header["__metadata__"][checkpoint.METADATA_KEY])
    tensors = load(data)
    edit(tensors, meta)
    meta.pop(weights.DIGEST_KEY, None)
    path.write_bytes(weights.encode(tensors, checkpoint.METADATA_KEY, meta))


def _first_model_tensor(tensors: dict) -> str:
    return sorted(k for k in tensors if k.startswith("model."))[0]


def _claim_epochs(n: int, history: bool) -> Callable[[dict, dict], None]:
    def edit(_t: dict, m: dict) -> None:
        m["epoch"] = n
        if history:  # a consistent forgery: one history row per claimed epoch
            row = m["state"]["history"][-1]
            m["state"]["history"] = [{**row, "epoch": e + 1} for e in range(n)]
    return edit


def _mid_epoch_at(step: int) -> Callable[[dict, dict], None]:
    def edit(_t: dict, m: dict) -> None:
        m["step_in_epoch"] = step
        m["global_step"] += step
        m["state"]["epoch_progress"] = {"order_state": torch.Generator().get_state().tolist(),
                                        "loss_sum": 1.0, "correct": 1}
    return edit


def _nested_header(path: Path) -> None:
    # JSON nested past Python's recursion limit: json.loads raises RecursionError.
    header = b'{"__metadata__":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    path.write_bytes(len(header).to_bytes(8, "little") + header)


FORGERIES = {
    # Was: rc 139, a segfault in the fused Adam kernel.
    "optimizer-shape": (lambda p: _forge(p, lambda t, m: t.update(
        {"optim.0.exp_avg": torch.zeros(7)})), r"state 0\.exp_avg is float32 \(7,\)"),
    "optimizer-dtype": (lambda p: _forge(p, lambda t, m: t.update(
        {"optim.0.exp_avg": t["optim.0.exp_avg"].double()})), "optimizer state does not match"),
    "optimizer-setting": (lambda p: _forge(p, lambda t, m: m["optimizer"]["param_groups"][0]
                                           .update(betas=[0.5, 0.5])),
                          "optimizer state does not match"),
    "optimizer-state-missing": (lambda p: _forge(p, lambda t, m: t.pop("optim.3.exp_avg_sq")),
                                "optimizer state does not match"),
    "model-shape": (lambda p: _forge(p, lambda t, m: t.update(
        {_first_model_tensor(t): torch.zeros(3)})), "do not match the model being trained"),
    "model-tensor-missing": (lambda p: _forge(p, lambda t, m: t.pop(_first_model_tensor(t))),
                             "do not match the model being trained"),
    "epoch-99": (lambda p: _forge(p, _claim_epochs(99, history=False)),
                 "claims 99 completed epochs"),
    "step-past-the-epoch": (lambda p: _forge(p, _mid_epoch_at(1000)), "stopped at step 1000"),
    "no-run-id": (lambda p: _forge(p, lambda t, m: m.pop("run_id")), "no run id"),
    "another-run": (lambda p: _forge(p, lambda t, m: m.update(run_id="0123456789abcdef")),
                    r"written by another run \(run id 0123456789abcdef"),
    "nested-json-header": (_nested_header, "nested too deeply|RecursionError"),
    # Issue 32: garbage RNG states of the right size passed the checksum, then crashed
    # --resume with "RuntimeError: Invalid mt19937 state".
    "rng-torch-garbage": (lambda p: _forge(p, lambda t, m: t.update(
        {"rng.torch": torch.full_like(t["rng.torch"], 255)})),
        r"rng\.torch is not a valid generator state"),
    "rng-order-garbage": (lambda p: _forge(p, lambda t, m: t.update(
        {"rng.order": torch.zeros_like(t["rng.order"])})),
        r"rng\.order is not a valid generator state"),
    "order-state-garbage": (lambda p: _forge(p, lambda t, m: (_mid_epoch_at(1)(t, m), m[
        "state"]["epoch_progress"].update(order_state=[7] * 5056))),
        r"order_state is not a valid generator state"),
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_newest_checkpoint_is_skipped_for_the_one_before(two_epochs, copy_of, lenet,
                                                                  forgery) -> None:
    run = copy_of(two_epochs)
    (run / rundir.WEIGHTS).unlink()
    newest = run / checkpoint.CHECKPOINT_DIR / "epoch-0002.safetensors"
    forge, reason = FORGERIES[forgery]
    forge(newest)
    code, err = lenet("train", "--resume", str(run))
    assert code == 0, err
    assert "Traceback" not in err
    skipped = [line for line in err.splitlines() if line.startswith("skipping damaged")]
    assert len(skipped) == 1 and str(newest) in skipped[0], err
    assert re.search(reason, skipped[0]), skipped[0]
    assert f"resuming {run} from epoch 1" in err
    # Epoch 2 trained again from epoch 1's checkpoint: the very weights of the real run.
    got, _ = weights.read(run)
    want, _ = weights.read(two_epochs)
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_a_consistent_claim_of_99_epochs_stops_with_one_line(two_epochs, copy_of, lenet) -> None:
    # Was: a checkpoint claiming epoch 99 silently 'finished' the run.
    run = copy_of(two_epochs)
    before = (run / rundir.WEIGHTS).read_bytes()
    _forge(run / checkpoint.CHECKPOINT_DIR / "epoch-0002.safetensors",
           _claim_epochs(99, history=True))
    code, err = lenet("train", "--resume", str(run))
    assert code == 2
    assert "has trained 99 epochs already" in one_line_error(err)
    assert (run / rundir.WEIGHTS).read_bytes() == before


def test_resuming_with_fewer_epochs_than_trained_is_refused(two_epochs, copy_of, lenet) -> None:
    # Was: weights that said 2 epochs when 4 were trained.
    run = copy_of(two_epochs)
    before = (run / rundir.WEIGHTS).read_bytes()
    code, err = lenet("train", "--resume", str(run), "--epochs", "1")
    assert code == 2
    line = one_line_error(err)
    assert f"{run} has trained 2 epochs already" in line and "--epochs 2 or more" in line
    assert (run / rundir.WEIGHTS).read_bytes() == before
    code, err = lenet("train", "--resume", str(run), "--epochs", "3")  # more is fine
    assert code == 0, err
    _, meta = weights.read(run)
    assert meta.extra["epoch"] == 3 and meta.extra["config"]["epochs"] == 3
    assert [r["epoch"] for r in rundir.read_metrics(run)] == ["1", "2", "3"]


def test_config_edited_to_another_model_falls_back_to_a_fresh_start(two_epochs, copy_of,
                                                                    lenet) -> None:
    # Was: a load_state_dict traceback. No checkpoint fits the model config.json now names:
    # each is skipped, and the run starts from the beginning, as with no checkpoint at all.
    run = copy_of(two_epochs)
    config = rundir.read_config(run)
    rundir.write_config(run, {**config, "model": "mlp"})
    code, err = lenet("train", "--resume", str(run))
    assert code == 0, err
    assert "Traceback" not in err
    assert err.count("skipping damaged checkpoint") == 2
    assert err.count("tensors do not match the model being trained") == 2
    assert f"no intact checkpoint in {run}; starting it from the beginning" in err
    assert weights.read(run)[1].model == "mlp"


def test_the_reader_turns_any_decoder_error_into_a_weights_error(tmp_path) -> None:
    # The reader alone: anything a decoder raises is a WeightsError, for latest() to skip.
    path = tmp_path / checkpoint.CHECKPOINT_DIR / "epoch-0001.safetensors"
    path.parent.mkdir()
    _nested_header(path)
    from lenet.errors import WeightsError

    with pytest.raises(WeightsError, match=r"epoch-0001\.safetensors"):
        checkpoint.load(path)
    warnings: list[str] = []
    assert checkpoint.latest(tmp_path, warn=warnings.append) is None
    assert len(warnings) == 1


def test_garbage_rng_states_are_refused_by_the_reader(two_epochs, tmp_path) -> None:
    from lenet.errors import WeightsError

    for name in ("rng.torch", "rng.order", "rng.augment"):
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes((two_epochs / checkpoint.CHECKPOINT_DIR / "epoch-0002.safetensors"
                          ).read_bytes())
        _forge(path, lambda t, m, name=name: t.update({name: torch.zeros_like(t[name])}))
        with pytest.raises(WeightsError, match=rf"{re.escape(name)} is not a valid generator"):
            checkpoint.load(path)


def test_a_checkpoint_that_is_a_symlink_loop_is_skipped_and_pruned_quietly(
        two_epochs, copy_of, lenet) -> None:
    # Was: a traceback from checkpoint._prune (resolving the loop).
    run = copy_of(two_epochs)
    folder = run / checkpoint.CHECKPOINT_DIR
    loop = folder / "epoch-0009.safetensors"  # the newest by name, never written by the run
    loop.symlink_to(loop.name)  # points at itself
    code, err = lenet("train", "--resume", str(run), "--epochs", "3")
    assert code == 0, err
    assert "Traceback" not in err and f"skipping damaged checkpoint: {loop}: not a regular" in err
    assert f"resuming {run} from epoch 2" in err
    assert loop.is_symlink()  # not lenet's: neither read nor deleted
    assert [r["epoch"] for r in rundir.read_metrics(run)] == ["1", "2", "3"]


def test_a_sparse_huge_checkpoint_is_refused_by_its_size_unread(tmp_path) -> None:
    from lenet.errors import WeightsError

    path = tmp_path / checkpoint.CHECKPOINT_DIR / "epoch-0001.safetensors"
    path.parent.mkdir()
    with path.open("wb") as f:
        f.truncate(checkpoint.MAX_BYTES + 1)  # sparse: no disk space, no memory
    with pytest.raises(WeightsError, match="more than a lenet checkpoint can be"):
        checkpoint.load(path)


def test_a_fifo_named_like_a_checkpoint_never_blocks(tmp_path) -> None:
    import os

    folder = tmp_path / checkpoint.CHECKPOINT_DIR
    folder.mkdir()
    os.mkfifo(folder / "epoch-0001.safetensors")
    notes: list[str] = []
    assert checkpoint.latest(tmp_path, warn=notes.append) is None
    assert len(notes) == 1 and "not a regular file" in notes[0]
