"""Checkpoints on their own: round trip, and every kind of damage refused with a fallback."""

import json
import pickle
from pathlib import Path

import pytest
import torch

from lenet.errors import WeightsError
from lenet.models import create, weights
from lenet.storage import checkpoint


def _checkpoint(epoch: int, step_in_epoch: int = 0) -> checkpoint.Checkpoint:
    """A real checkpoint: lenet5 and Adam after a few steps, RNG states, history."""
    torch.manual_seed(epoch)
    model = create("lenet5")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(4, 1, 28, 28)).square().mean().backward()
        opt.step()
    order = torch.Generator().manual_seed(3)
    history = [{"epoch": e + 1, "train_loss": 1.0 / (e + 1)} for e in range(epoch)]
    progress = ({"order_state": order.get_state().tolist(), "loss_sum": 12.5, "correct": 40}
                if step_in_epoch else {})
    return checkpoint.Checkpoint(
        epoch=epoch, step_in_epoch=step_in_epoch, global_step=epoch * 10 + step_in_epoch,
        model=model.state_dict(), optimizer=opt.state_dict(),
        rng={"order": order.get_state(), "torch": torch.get_rng_state()},
        state={"history": history, "train_seconds": 1.5, "epoch_progress": progress})


def _two_checkpoints(run: Path) -> tuple[Path, Path]:
    older = checkpoint.save(run, _checkpoint(1))
    newest = checkpoint.save(run, _checkpoint(2))
    return older, newest


def _header(path: Path) -> tuple[dict, dict]:
    data = path.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_len])
    return header, json.loads(header["__metadata__"][checkpoint.METADATA_KEY])


def _rewrite(path: Path, edit, rehash: bool = False) -> None:
    """Edit the JSON metadata in place (tensors untouched); `rehash` recomputes the digest."""
    from safetensors.torch import load, save

    tensors = load(path.read_bytes())
    _, meta = _header(path)
    edit(meta)
    if rehash:
        meta["sha256"] = weights.digest(tensors, meta)
    path.write_bytes(save(tensors, metadata={checkpoint.METADATA_KEY: json.dumps(meta)}))


def _latest(run: Path) -> tuple[checkpoint.Checkpoint | None, list[str]]:
    warnings: list[str] = []
    return checkpoint.latest(run, warn=warnings.append), warnings


def test_round_trip_is_exact(tmp_path) -> None:
    saved = _checkpoint(3, step_in_epoch=7)
    path = checkpoint.save(tmp_path, saved)
    assert path.name == "epoch-0003-step-7.safetensors"
    got = checkpoint.load(path)
    assert (got.epoch, got.step_in_epoch, got.global_step) == (3, 7, 37)
    assert got.state == saved.state
    for k, v in saved.model.items():
        assert torch.equal(got.model[k], v), k
    for k, v in saved.rng.items():
        assert torch.equal(got.rng[k], v), k
    assert got.optimizer["param_groups"] == json.loads(json.dumps(
        saved.optimizer["param_groups"]))
    for pid, st in saved.optimizer["state"].items():
        for name, value in st.items():
            assert torch.equal(got.optimizer["state"][pid][name], value), (pid, name)
    # What a resume does with it: a fresh optimizer takes the state back.
    model = create("lenet5")
    model.load_state_dict(got.model)
    torch.optim.Adam(model.parameters(), lr=1e-3).load_state_dict(got.optimizer)
    _, meta = _header(path)
    assert meta["format"] == checkpoint.FORMAT and len(meta["sha256"]) == 64


def test_the_digest_ignores_json_layout(tmp_path) -> None:
    from safetensors.torch import load, save

    _, newest = _two_checkpoints(tmp_path)
    tensors = load(newest.read_bytes())
    _, meta = _header(newest)
    text = json.dumps(dict(reversed(list(meta.items()))), indent=3)  # same content, new layout
    newest.write_bytes(save(tensors, metadata={checkpoint.METADATA_KEY: text}))
    assert checkpoint.load(newest).epoch == 2


def test_only_the_newest_two_are_kept(tmp_path) -> None:
    for epoch in (1, 2, 3):
        checkpoint.save(tmp_path, _checkpoint(epoch))
    names = sorted(p.name for p in (tmp_path / checkpoint.CHECKPOINT_DIR).iterdir())
    assert names == ["epoch-0002.safetensors", "epoch-0003.safetensors"]


@pytest.mark.parametrize(("edit", "field"), [
    (lambda m: m.update(epoch=5), "epoch"),
    (lambda m: m.update(global_step=m["global_step"] + 1), "step"),
    (lambda m: m["state"]["history"][0].update(train_loss=0.01), "history"),
    (lambda m: m["optimizer"]["param_groups"][0].update(lr=0.5), "optimizer settings"),
    (lambda m: m["state"].update(train_seconds=0.0), "state"),
])
def test_edited_metadata_fails_the_hash_and_resume_falls_back(tmp_path, edit, field) -> None:
    _, newest = _two_checkpoints(tmp_path)
    _rewrite(newest, edit)
    with pytest.raises(WeightsError, match="damaged or modified: SHA-256 mismatch"):
        checkpoint.load(newest)
    got, warnings = _latest(tmp_path)
    assert got is not None and got.epoch == 1, field
    assert len(warnings) == 1 and newest.name in warnings[0]
    assert "skipping damaged checkpoint" in warnings[0] and "SHA-256 mismatch" in warnings[0]


def test_edited_mid_epoch_order_state_is_detected(tmp_path) -> None:
    checkpoint.save(tmp_path, _checkpoint(1))
    newest = checkpoint.save(tmp_path, _checkpoint(1, step_in_epoch=4))

    def edit(m: dict) -> None:
        m["state"]["epoch_progress"]["order_state"][100] ^= 1

    _rewrite(newest, edit)
    got, warnings = _latest(tmp_path)
    assert got is not None and (got.epoch, got.step_in_epoch) == (1, 0)
    assert "SHA-256 mismatch" in warnings[0]


def test_flipped_tensor_bit_is_detected(tmp_path) -> None:
    _, newest = _two_checkpoints(tmp_path)
    data = bytearray(newest.read_bytes())
    data[-10] ^= 0x04
    newest.write_bytes(bytes(data))
    got, warnings = _latest(tmp_path)
    assert got is not None and got.epoch == 1
    assert "SHA-256 mismatch" in warnings[0]


@pytest.mark.parametrize("keep", [0, 7, 100, -1, -1000])
def test_truncated_newest_checkpoint_falls_back(tmp_path, keep: int) -> None:
    _, newest = _two_checkpoints(tmp_path)
    newest.write_bytes(newest.read_bytes()[:keep])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        checkpoint.load(newest)
    got, warnings = _latest(tmp_path)
    assert got is not None and got.epoch == 1
    assert newest.name in warnings[0]


@pytest.mark.parametrize("kind", ["torch.save", "pickle"])
def test_pickle_as_newest_checkpoint_is_refused_unread(tmp_path, kind: str) -> None:
    _, newest = _two_checkpoints(tmp_path)

    class Evil:  # unpickling it would create the file `pwned`
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    payload = {"epoch": 9, "evil": Evil()}
    if kind == "torch.save":
        torch.save(payload, newest)
    else:
        newest.write_bytes(pickle.dumps(payload))
    with pytest.raises(WeightsError, match="never unpickles"):
        checkpoint.load(newest)
    got, warnings = _latest(tmp_path)
    assert got is not None and got.epoch == 1
    assert "pickle" in warnings[0]
    assert not (tmp_path / "pwned").exists()


def _drop(*keys: str):
    def edit(m: dict) -> None:
        target = m
        for k in keys[:-1]:
            target = target[k]
        del target[keys[-1]]
    return edit


@pytest.mark.parametrize("edit", [
    _drop("epoch"),
    _drop("optimizer"),
    _drop("optimizer", "param_groups"),
    _drop("state"),
    _drop("state", "history"),
    lambda m: m.update(epoch="two"),
    lambda m: m.update(epoch=-1),
    lambda m: m.update(global_step=None),
    lambda m: m.update(state=[1, 2]),
    lambda m: m["state"].update(history={"epoch": 1}),
    lambda m: m["state"].update(history=[1, 2]),
    lambda m: m["optimizer"].update(param_groups="all"),
    lambda m: m["optimizer"].update(scalars={"not-an-int": {"step": 1}}),
    lambda m: m["optimizer"].update(scalars=[]),
    lambda m: m.update(step_in_epoch=3),  # mid-epoch, yet no order state
    lambda m: m.update(format=1),
], ids=lambda e: getattr(e, "__name__", "edit"))
def test_malformed_metadata_is_damage_not_a_traceback(tmp_path, edit) -> None:
    # The digest is recomputed, as a buggy writer would: only the structure is wrong.
    _, newest = _two_checkpoints(tmp_path)
    _rewrite(newest, edit, rehash=True)
    with pytest.raises(WeightsError, match=r"epoch-0002\.safetensors: checkpoint metadata is "
                                           "malformed"):
        checkpoint.load(newest)
    got, warnings = _latest(tmp_path)
    assert got is not None and got.epoch == 1
    assert len(warnings) == 1 and "malformed" in warnings[0]


def test_a_checkpoint_without_a_digest_is_refused(tmp_path) -> None:
    _, newest = _two_checkpoints(tmp_path)
    _rewrite(newest, lambda m: m.pop("sha256"))
    with pytest.raises(WeightsError, match="no SHA-256 digest"):
        checkpoint.load(newest)


def test_no_intact_checkpoint_gives_none(tmp_path) -> None:
    older, newest = _two_checkpoints(tmp_path)
    for p in (older, newest):
        p.write_bytes(b"")
    got, warnings = _latest(tmp_path)
    assert got is None and len(warnings) == 2
    assert checkpoint.latest(tmp_path / "elsewhere") is None


def test_weights_file_is_not_a_checkpoint_and_vice_versa(tmp_path) -> None:
    from lenet.data.transforms import Preprocessing

    meta = weights.WeightsMeta("lenet5", Preprocessing(0.5, 0.5), "mnist",
                               [str(i) for i in range(10)])
    w = weights.save(tmp_path / "epoch-0001.safetensors", create("lenet5"), meta)
    with pytest.raises(WeightsError, match="not a lenet checkpoint"):
        checkpoint.load(w)
    c = checkpoint.save(tmp_path / "run", _checkpoint(1))
    with pytest.raises(WeightsError, match="not a lenet weights file"):
        weights.read(c)


def test_old_checkpoints_are_deleted_before_the_next_is_written(tmp_path, monkeypatch) -> None:
    # A run fits in the space of two checkpoints: while one is written, only `keep` remains.
    from lenet.storage import atomic

    first = checkpoint.save(tmp_path, _checkpoint(1))
    second = checkpoint.save(tmp_path, _checkpoint(2))
    seen: list[list[str]] = []
    real = atomic.write_bytes

    def spy(path, data):
        seen.append(sorted(p.name for p in Path(path).parent.glob("epoch-*")))
        return real(path, data)

    monkeypatch.setattr(atomic, "write_bytes", spy)
    checkpoint.save(tmp_path, _checkpoint(3), keep=first)  # the trainer's last good one
    assert seen[-1] == [first.name] and not second.exists()
    checkpoint.save(tmp_path, _checkpoint(4), keep=None)  # none is good: all go
    assert seen[-1] == []
    assert sorted(p.name for p in first.parent.iterdir()) == ["epoch-0004.safetensors"]


def test_the_run_id_round_trips_and_latest_applies_its_check(tmp_path) -> None:
    ckpt = _checkpoint(1)
    ckpt.run_id = "abc123"
    checkpoint.save(tmp_path, ckpt)
    newest = checkpoint.save(tmp_path, _checkpoint(2))  # written without a run id
    assert checkpoint.load(newest).run_id is None

    def ours(c: checkpoint.Checkpoint, path: Path) -> None:
        if c.run_id != "abc123":
            raise WeightsError(f"{path}: another run's")

    warnings: list[str] = []
    got = checkpoint.latest(tmp_path, warn=warnings.append, check=ours)
    assert got is not None and got.epoch == 1 and got.run_id == "abc123"
    assert got.path == tmp_path / checkpoint.CHECKPOINT_DIR / "epoch-0001.safetensors"
    assert len(warnings) == 1 and "another run's" in warnings[0]


def test_check_fits_refuses_tensors_of_another_shape_or_optimizer(tmp_path) -> None:
    model = create("lenet5")
    fresh = torch.optim.Adam(model.parameters(), lr=1e-3)
    keys = ("step", "exp_avg", "exp_avg_sq")
    good = checkpoint.load(checkpoint.save(tmp_path, _checkpoint(1)))
    checkpoint.check_fits(good, "ok", model, fresh, keys)
    with pytest.raises(WeightsError, match=r"optimizer state does not match.*expected"):
        checkpoint.check_fits(good, "x", model, fresh, ("momentum_buffer",))
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(WeightsError, match="settings"):
        checkpoint.check_fits(good, "x", model, sgd, ("momentum_buffer",))
    good.optimizer["state"][0]["exp_avg"] = torch.zeros(7)
    with pytest.raises(WeightsError, match=r"state 0\.exp_avg is float32 \(7,\)"):
        checkpoint.check_fits(good, "x", model, fresh, keys)
    with pytest.raises(WeightsError, match="tensors do not match"):
        checkpoint.check_fits(good, "x", create("mlp"), fresh, keys)
