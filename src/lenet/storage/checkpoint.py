"""Training checkpoints that survive Ctrl-C, kill -9 and tampering, with no pickle anywhere.

A checkpoint is one safetensors file: the model's and the optimizer's tensors, and every RNG
state as a uint8 tensor; everything else (epoch, step, metrics so far, optimizer hyperparameters,
the mid-epoch order state) is JSON in its metadata, together with a SHA-256 over that metadata
and every tensor (:func:`lenet.storage.tensorfile.digest`, the same as for weights files). It is
written atomically (temp file, fsync, rename), so a crash leaves the previous checkpoint intact; a
truncated or edited file (tensors or metadata), a pickle, one written by an older lenet whose
checksum did not cover the metadata, or one whose metadata is malformed is refused by
:func:`load`, and :func:`latest` (what `lenet train --resume` uses) falls back to the one before.

A valid checksum proves that a file is the one written, not that it belongs to this run or fits
its model: every checkpoint carries its run's id (``run_id`` in the run's config.json), and the
trainer hands :func:`latest` a check (:func:`check_fits` among others) that refuses one of
another run, or whose tensors do not have the names, shapes and dtypes of the model and
optimizer being trained, exactly as it refuses a damaged file.

Every field is checked before use, RNG states included: each CPU generator state (``rng.torch``,
``rng.order``, a mid-epoch ``order_state``) must be one that ``torch.Generator.set_state``
accepts (tried on a scratch generator), so garbage that passes the checksum is a damaged
checkpoint, skipped like one, never a RuntimeError half-way through a resume. A checkpoint is
at most :data:`MAX_BYTES` (refused by size before it is read), and only regular files are
checkpoints: a link, a FIFO or a folder of a checkpoint's name is neither read nor deleted.

At most two checkpoints exist at any moment: before one is written, every other but the
newest good one is deleted (:func:`save`), so a run fits in the space of two.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from lenet.errors import WeightsError
from lenet.storage import atomic, rundir, tensorfile

CHECKPOINT_DIR = rundir.CHECKPOINTS  # inside the run directory
KEEP = 2  # checkpoints on disk at most: the newest good one, and the one being written
METADATA_KEY = "lenet_checkpoint"
FORMAT = 2  # 2: the digest covers the metadata too (1, unversioned: the tensors only)
MAX_BYTES = 4 * tensorfile.MAX_BYTES  # the model, two optimizer moments and the RNG states
_NAME = re.compile(r"^epoch-(\d{4,})(?:-step-(\d+))?\.safetensors$")


@dataclass
class Checkpoint:
    epoch: int  # completed epochs (a mid-epoch checkpoint has step_in_epoch > 0)
    step_in_epoch: int
    global_step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]  # torch optimizer state_dict
    rng: dict[str, torch.Tensor]  # name -> ByteTensor state
    state: dict[str, Any] = field(default_factory=dict)  # JSON-able: history, accumulators...
    run_id: str | None = None  # the run that wrote it (config.json's run_id)
    path: Path | None = None  # where it was read from (set by latest)


def _flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]
                         ) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    scalars = meta.get("scalars", {})
    _check(isinstance(scalars, dict), "optimizer.scalars is not an object")
    for pid, values in scalars.items():
        _check(isinstance(values, dict), f"optimizer.scalars[{pid!r}] is not an object")
        state.setdefault(int(pid), {}).update(values)
    groups = meta["param_groups"]
    _check(isinstance(groups, list) and all(
        isinstance(g, dict) and isinstance(g.get("params"), list)
        and all(isinstance(i, int) for i in g["params"]) for g in groups),
        "optimizer.param_groups is not a list of groups with integer params")
    known = {i for g in groups for i in g["params"]}
    _check(set(state) <= known, "optimizer state for parameters in no param group")
    return {"state": state, "param_groups": groups}


def path_for(run_dir: Path, epoch: int, step_in_epoch: int = 0) -> Path:
    suffix = f"-step-{step_in_epoch}" if step_in_epoch else ""
    return Path(run_dir) / CHECKPOINT_DIR / f"epoch-{epoch:04d}{suffix}.safetensors"


def save(run_dir: Path, ckpt: Checkpoint, keep: Path | Literal["newest"] | None = "newest"
         ) -> Path:
    """Write `ckpt` atomically into `run_dir`'s checkpoints; its path.

    Every other checkpoint there but `keep` is deleted *first*, so that the new one needs room
    for one file, not for the two (or more) before it: ``"newest"`` keeps the newest by name,
    a path keeps that one (the trainer's last good checkpoint), None keeps none.
    """
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in ckpt.model.items()}
    opt_tensors, opt_meta = _flatten_optimizer(ckpt.optimizer)
    tensors.update(opt_tensors)
    tensors.update({f"rng.{k}": v.cpu().contiguous() for k, v in ckpt.rng.items()})
    meta = {"format": FORMAT, "epoch": ckpt.epoch, "step_in_epoch": ckpt.step_in_epoch,
            "global_step": ckpt.global_step, "optimizer": opt_meta, "state": ckpt.state}
    if ckpt.run_id is not None:
        meta["run_id"] = ckpt.run_id
    data = tensorfile.encode(tensors, METADATA_KEY, meta)
    path = path_for(run_dir, ckpt.epoch, ckpt.step_in_epoch)
    _prune(path.parent, keep)
    atomic.write_bytes(path, data)
    return path


def _is_file(path: Path) -> bool:
    """A regular file, not a link, FIFO or folder (never followed: a link loop is no error)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _ordered(directory: Path, *, files_only: bool = True) -> list[Path]:
    """The checkpoints in `directory`, oldest first: the names lenet gives them, and (with
    `files_only`) only the regular files of those names."""
    found = []
    try:
        names = os.listdir(directory)
    except OSError:  # no checkpoints folder yet (or not a folder): no checkpoints
        return []
    for name in names:
        m = _NAME.match(name)
        if m and (not files_only or _is_file(directory / name)):
            found.append(((int(m.group(1)), int(m.group(2) or 0)), directory / name))
    return [p for _, p in sorted(found)]


def _prune(directory: Path, keep: Path | Literal["newest"] | None) -> None:
    """Delete every checkpoint (regular files only) but `keep`, compared by name: the folder is
    the same, and resolving a link (a loop) is never needed."""
    paths = _ordered(directory)
    if keep == "newest":
        keep = paths[-1] if paths else None
    for old in paths:
        if keep is None or old.name != Path(keep).name:
            old.unlink(missing_ok=True)


class _Malformed(Exception):
    pass


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise _Malformed(what)


def _count(meta: dict[str, Any], name: str) -> int:
    value = meta[name]
    _check(isinstance(value, int) and not isinstance(value, bool) and value >= 0,
           f"{name} is {value!r}, expected a count")
    return value


def _parse(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Checkpoint:
    """The checkpoint that verified `meta` and `tensors` describe; raises on anything missing,
    of the wrong type or inconsistent (so that a resume never dies on it half-way)."""
    _check(meta.get("format") == FORMAT,
           f"format {meta.get('format')!r}, expected {FORMAT} (written by an older lenet whose "
           "checksum did not cover the metadata?)")
    epoch, step_in_epoch = _count(meta, "epoch"), _count(meta, "step_in_epoch")
    global_step = _count(meta, "global_step")
    _check(global_step >= step_in_epoch, "global_step is smaller than step_in_epoch")
    state = meta["state"]
    _check(isinstance(state, dict), "state is not an object")
    history = state["history"]
    _check(isinstance(history, list) and all(isinstance(m, dict) for m in history),
           "state.history is not a list of objects")
    _check(isinstance(state.get("train_seconds", 0.0), (int, float)),
           "state.train_seconds is not a number")
    progress = state.get("epoch_progress", {})
    _check(isinstance(progress, dict), "state.epoch_progress is not an object")
    if step_in_epoch:
        order = progress.get("order_state")
        _check(isinstance(order, list) and len(order) > 0
               and all(isinstance(b, int) and 0 <= b < 256 for b in order),
               "a mid-epoch checkpoint without its epoch's order_state (a list of bytes)")
        _check_generator_state("state.epoch_progress.order_state",
                               torch.tensor(order, dtype=torch.uint8), required=True)
        _check(isinstance(progress.get("loss_sum", 0.0), (int, float))
               and isinstance(progress.get("correct", 0), int),
               "state.epoch_progress.loss_sum/correct are not numbers")
    optimizer = meta["optimizer"]
    _check(isinstance(optimizer, dict), "optimizer is not an object")
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    _check(bool(model), "no model tensors")
    _check(all(v.dtype == torch.uint8 and v.dim() == 1 for v in rng.values()),
           "RNG states are not byte vectors")
    _check("torch" in rng and rng["torch"].numel() == torch.get_rng_state().numel(),
           "the torch RNG state is missing or has the wrong size")
    for name, value in rng.items():
        _check_generator_state(f"rng.{name}", value, required=name == "torch")
    run_id = meta.get("run_id")
    _check(run_id is None or isinstance(run_id, str), "run_id is not a string")
    return Checkpoint(epoch=epoch, step_in_epoch=step_in_epoch, global_step=global_step,
                      model=model, optimizer=_unflatten_optimizer(tensors, optimizer),
                      rng=rng, state=state, run_id=run_id)


def _check_generator_state(name: str, state: torch.Tensor, *, required: bool) -> None:
    """`state` must be one a generator accepts: tried on a scratch CPU generator (mt19937, of
    torch.get_rng_state()'s size), or on a scratch CUDA one for a CUDA-sized state when CUDA is
    in use. A state of another size (another device's) is not restored on resume (it starts
    afresh), so it is checked only when `required`."""
    cpu = torch.get_rng_state()
    scratch: torch.Generator | None = None
    if state.numel() == cpu.numel():
        scratch = torch.Generator()
    elif (torch.cuda.is_available() and torch.cuda.is_initialized()
          and state.numel() == torch.cuda.get_rng_state().numel()):
        scratch = torch.Generator(device="cuda")
    if scratch is None:
        _check(not required, f"{name} has {state.numel()} bytes, not a generator state of "
                             f"{cpu.numel()}")
        return
    try:
        scratch.set_state(state.contiguous())
    except (RuntimeError, ValueError, TypeError) as e:
        raise _Malformed(f"{name} is not a valid generator state "
                         f"({str(e).splitlines()[0] if str(e) else type(e).__name__:.80})"
                         ) from None


def load(path: Path) -> Checkpoint:
    """Read and verify one checkpoint; any damage raises :class:`WeightsError`.

    Damage is anything that stops a resume: an unreadable, truncated or pickle file, a SHA-256
    mismatch (tensors or metadata edited), a missing digest, and metadata that verifies but is
    malformed (a missing field, a wrong type, inconsistent counts).
    """
    data = tensorfile.read_bytes(path, what="checkpoint", limit=MAX_BYTES, fix="")
    try:
        tensors, meta = tensorfile.decode(data, METADATA_KEY, str(path), what="checkpoint")
    except WeightsError:
        raise
    except Exception as e:
        # A forged header can trip the JSON or safetensors parser in ways of its own (nesting
        # deep enough for a RecursionError, say): all of it is damage, for --resume to skip.
        raise WeightsError(f"{path}: not a valid checkpoint ({type(e).__name__}: {e!s:.100})"
                           ) from None
    try:
        return _parse(meta, tensors)
    except (_Malformed, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        what = str(e) if isinstance(e, _Malformed) else f"{type(e).__name__}: {e}"
        raise WeightsError(f"{path}: checkpoint metadata is malformed ({what})") from None


def latest(run_dir: Path, warn: Any = None,
           check: Callable[[Checkpoint, Path], None] | None = None) -> Checkpoint | None:
    """The newest checkpoint that verifies (and passes `check`, which raises
    :class:`WeightsError` to refuse one); the others are reported through `warn` and skipped,
    as is anything of a checkpoint's name that is not a regular file (never read)."""
    for path in reversed(_ordered(Path(run_dir) / CHECKPOINT_DIR, files_only=False)):
        try:
            if not _is_file(path):
                raise WeightsError(f"{path}: not a regular file (a link, FIFO or folder), so "
                                   "not a checkpoint lenet wrote")
            ckpt = load(path)
            if check is not None:
                check(ckpt, path)
            ckpt.path = path
            return ckpt
        except WeightsError as e:
            if warn is not None:
                warn(f"skipping damaged checkpoint: {e}")
    return None


def check_fits(ckpt: Checkpoint, source: str, model: torch.nn.Module,
               optimizer: torch.optim.Optimizer, state_keys: Collection[str]) -> None:
    """Raise :class:`WeightsError` unless `ckpt` fits the freshly built `model` and `optimizer`:
    the same model tensors (names, shapes, dtypes), the same parameter groups and settings
    (the learning rate aside), and per parameter exactly the state `state_keys` (Adam: step,
    exp_avg, exp_avg_sq), each tensor of its parameter's shape and dtype (a scalar: 0-dim).

    A checksum re-signed over a wrong tensor passes :func:`load`; this is what keeps a fused
    optimizer kernel from reading past a tensor (a crash, not an error) or load_state_dict
    from failing half-way.
    """
    tensorfile.check_state(model.state_dict(), ckpt.model, source, what="the model being trained")
    try:
        _check_optimizer(ckpt.optimizer, optimizer, set(state_keys))
    except _Malformed as e:
        raise WeightsError(f"{source}: optimizer state does not match the optimizer being "
                           f"trained ({e})") from None


def _check_optimizer(saved: dict[str, Any], optimizer: torch.optim.Optimizer,
                     state_keys: set[str]) -> None:
    fresh = json.loads(json.dumps(optimizer.state_dict()["param_groups"]))  # tuples as lists
    groups = saved["param_groups"]
    _check(len(groups) == len(fresh), f"{len(groups)} parameter groups, expected {len(fresh)}")
    for i, (got, want) in enumerate(zip(groups, fresh, strict=True)):
        _check(set(got) == set(want), f"group {i} has settings {sorted(got)}, expected "
                                      f"{sorted(want)}")
        lr = got["lr"]
        _check(isinstance(lr, (int, float)) and not isinstance(lr, bool) and 0 <= lr < 1e300,
               f"group {i}: lr {lr!r:.40}")
        for key in set(want) - {"lr"}:
            _check(got[key] == want[key], f"group {i}: {key} is {got[key]!r:.40}, expected "
                                          f"{want[key]!r:.40}")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for pid, st in saved["state"].items():
        _check(0 <= pid < len(params), f"state for parameter {pid} of {len(params)}")
        _check(set(st) == state_keys, f"parameter {pid} has state {sorted(st)}, expected "
                                      f"{sorted(state_keys)}")
        p = params[pid]
        for name, value in st.items():
            _check(isinstance(value, torch.Tensor), f"state {pid}.{name} is not a tensor")
            ok = (value.dim() == 0 and value.is_floating_point()) or (
                value.shape == p.shape and value.dtype == p.dtype)
            _check(ok, f"state {pid}.{name} is {str(value.dtype).removeprefix('torch.')} "
                       f"{tuple(value.shape)}, parameter {pid} is "
                       f"{str(p.dtype).removeprefix('torch.')} {tuple(p.shape)}")
