"""Weights on disk: safetensors tensors plus JSON metadata; loading never unpickles.

The metadata (``__metadata__["lenet"]``, a JSON string) holds the model name, the exact
preprocessing, the dataset and its class names, the accuracy measured at the end of training,
and the lenet and torch versions, so inference can never disagree with training.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lenet import __version__, atomic
from lenet.data.transforms import Preprocessing
from lenet.errors import WeightsError

METADATA_KEY = "lenet"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class WeightsMeta:
    model: str
    preprocessing: Preprocessing
    dataset: str
    classes: list[str]
    test_accuracy: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({
            "model": self.model,
            "preprocessing": self.preprocessing.to_dict(),
            "dataset": self.dataset,
            "classes": self.classes,
            "test_accuracy": self.test_accuracy,
            "lenet_version": __version__,
            "torch_version": torch.__version__,
            **self.extra,
        })

    @classmethod
    def from_json(cls, text: str, source: str) -> WeightsMeta:
        try:
            d = json.loads(text)
            return cls(
                model=str(d["model"]),
                preprocessing=Preprocessing.from_dict(d["preprocessing"], source=source),
                dataset=str(d["dataset"]),
                classes=[str(c) for c in d["classes"]],
                test_accuracy=d.get("test_accuracy"),
                extra={k: v for k, v in d.items() if k not in
                       ("model", "preprocessing", "dataset", "classes", "test_accuracy")},
            )
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise WeightsError(f"{source}: lenet metadata is malformed ({e!r}); "
                               "was it written by `lenet train`?") from None


def save(path: str | os.PathLike[str], model: nn.Module, meta: WeightsMeta) -> Path:
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return atomic.write_bytes(path, save(tensors, metadata={METADATA_KEY: meta.to_json()}))


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """A run directory or a weights file -> the weights file."""
    p = Path(path)
    if p.is_dir():
        p = p / WEIGHTS_NAME
    if not p.is_file():
        raise WeightsError(f"{path}: no such weights file or run directory "
                           f"(a run directory holds {WEIGHTS_NAME}; see `lenet train`)")
    return p


def read(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    """Read tensors and metadata; a pickle, a truncated file or a foreign file is refused."""
    p = resolve_path(path)
    from safetensors import SafetensorError
    from safetensors.torch import load

    data = p.read_bytes()
    if data[:2] == b"\x80\x02" or data[:1] == b"\x80" or data[:2] == b"PK":
        raise WeightsError(f"{p}: this is a pickle/torch.save file; lenet never unpickles "
                           "(it could run arbitrary code). Use weights saved by `lenet train`.")
    try:
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
        tensors = load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError) as e:
        raise WeightsError(f"{p}: not a valid safetensors file ({e}); it may be truncated or "
                           "corrupt. Re-export it or retrain.") from None
    text = (header.get("__metadata__") or {}).get(METADATA_KEY)
    if text is None:
        raise WeightsError(f"{p}: safetensors file without lenet metadata; lenet needs the "
                           "model name and preprocessing that `lenet train` stores")
    return tensors, WeightsMeta.from_json(text, str(p))


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu"
               ) -> tuple[nn.Module, WeightsMeta]:
    from lenet.models import create

    tensors, meta = read(path)
    model = create(meta.model)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise WeightsError(f"{resolve_path(path)}: tensors do not match model {meta.model!r}: "
                           f"{str(e).splitlines()[0]}") from None
    return model.to(device).eval(), meta
