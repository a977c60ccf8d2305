"""Training checkpoints that survive Ctrl-C, kill -9 and tampering, with no pickle anywhere.

A checkpoint is one safetensors file: the model's and the optimizer's tensors, and every RNG
state as a uint8 tensor; everything else (epoch, step, metrics so far, optimizer hyperparameters)
is JSON in its metadata, together with the SHA-256 of the tensor payload. It is written
atomically (temp file, fsync, rename), so a crash leaves the previous checkpoint intact; a
truncated or edited file fails its hash and resume falls back to the one before.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lenet import atomic
from lenet.errors import WeightsError

CHECKPOINT_DIR = "checkpoints"
KEEP = 2  # the newest checkpoints kept; older ones are deleted once a newer one is safe
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
    for pid, values in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key]
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def path_for(run_dir: Path, epoch: int, step_in_epoch: int = 0) -> Path:
    suffix = f"-step-{step_in_epoch}" if step_in_epoch else ""
    return Path(run_dir) / CHECKPOINT_DIR / f"epoch-{epoch:04d}{suffix}.safetensors"


def save(run_dir: Path, ckpt: Checkpoint) -> Path:
    from safetensors.torch import save as st_save

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in ckpt.model.items()}
    opt_tensors, opt_meta = _flatten_optimizer(ckpt.optimizer)
    tensors.update(opt_tensors)
    tensors.update({f"rng.{k}": v.cpu().contiguous() for k, v in ckpt.rng.items()})
    meta = {"epoch": ckpt.epoch, "step_in_epoch": ckpt.step_in_epoch,
            "global_step": ckpt.global_step, "optimizer": opt_meta, "state": ckpt.state,
            "sha256": _digest(tensors)}
    path = path_for(run_dir, ckpt.epoch, ckpt.step_in_epoch)
    atomic.write_bytes(path, st_save(tensors, metadata={"lenet_checkpoint": json.dumps(meta)}))
    _prune(path.parent, keep=path)
    return path


def _ordered(directory: Path) -> list[Path]:
    found = []
    for p in directory.glob("epoch-*.safetensors"):
        m = _NAME.match(p.name)
        if m:
            found.append(((int(m.group(1)), int(m.group(2) or 0)), p))
    return [p for _, p in sorted(found)]


def _prune(directory: Path, keep: Path) -> None:
    paths = _ordered(directory)
    for old in paths[:-KEEP]:
        if old != keep:
            old.unlink(missing_ok=True)


def load(path: Path) -> Checkpoint:
    """Read and verify one checkpoint; any damage raises :class:`WeightsError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    data = Path(path).read_bytes()
    try:
        tensors = st_load(data)
        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
        meta = json.loads(header["__metadata__"]["lenet_checkpoint"])
    except (SafetensorError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise WeightsError(f"{path}: not a readable lenet checkpoint ({e})") from None
    if _digest(tensors) != meta.get("sha256"):
        raise WeightsError(f"{path}: checksum mismatch; the checkpoint was truncated or altered")
    return Checkpoint(
        epoch=int(meta["epoch"]), step_in_epoch=int(meta["step_in_epoch"]),
        global_step=int(meta["global_step"]),
        model={k[6:]: v for k, v in tensors.items() if k.startswith("model.")},
        optimizer=_unflatten_optimizer(tensors, meta["optimizer"]),
        rng={k[4:]: v for k, v in tensors.items() if k.startswith("rng.")},
        state=meta.get("state", {}),
    )


def latest(run_dir: Path, warn: Any = None) -> Checkpoint | None:
    """The newest checkpoint that verifies; damaged ones are reported and skipped."""
    for path in reversed(_ordered(Path(run_dir) / CHECKPOINT_DIR)):
        try:
            return load(path)
        except WeightsError as e:
            if warn is not None:
                warn(f"skipping damaged checkpoint: {e}")
    return None
