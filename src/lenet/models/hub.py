"""From weights files to models: whether a file's tensors fit a registered model, and the
pretrained weights that ship inside the package.

The bundled weights live in ``lenet/models/pretrained/``: one ``NAME.safetensors`` per entry
of ``manifest.json``, which records how each was made (recipe, seed, command, machine), the
file's SHA-256 and the test accuracy measured on the whole test set when it was published
(`lenet weights publish`, run by ``make weights``). A bundled file is checked against its
manifest's SHA-256, then read like any other weights file (digest, then fit).

Like torchvision's weights, each entry carries its metadata and its transform:

>>> w = get_weights("lenet5")
>>> w.test_accuracy, w.transforms()     # the recorded accuracy, the exact input preprocessing
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lenet.data.transforms import Preprocessing
from lenet.errors import ConfigError, WeightsError
from lenet.models.metadata import WeightsMeta
from lenet.models.registry import get_spec
from lenet.storage import tensorfile

PRETRAINED_DIR = Path(__file__).with_name("pretrained")
MANIFEST = "manifest.json"
_REINSTALL = "reinstall lenet (pip install --force-reinstall lenet), or rebuild it with " \
             "`make weights`"


@dataclass(frozen=True)
class Weights:
    """One bundled set of weights, described by its manifest entry."""

    name: str
    model: str
    dataset: str
    file: str
    sha256: str
    test_accuracy: float
    recipe: str
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)  # the whole manifest entry

    @property
    def path(self) -> Path:
        return PRETRAINED_DIR / self.file

    def transforms(self) -> Preprocessing:
        """The exact input preprocessing these weights were trained with (uint8 digits in)."""
        return self.read()[1].preprocessing

    @property
    def classes(self) -> list[str]:
        return self.read()[1].classes

    def read(self) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
        """Tensors and metadata, checked against the manifest's SHA-256, the file's own digest
        and the model they name."""
        return _read_checked(self.name)


def manifest(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """The manifest's entries by name (default: the bundled ones); an empty dict where there
    are none."""
    path = (PRETRAINED_DIR if directory is None else directory) / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise WeightsError(f"{path}: unreadable manifest of bundled weights ({e}); "
                           f"{_REINSTALL}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise WeightsError(f"{path}: manifest is not a JSON object of entries; {_REINSTALL}")
    return data


def list_pretrained() -> list[str]:
    """The names of the bundled weights, e.g. ``["lenet5", "lenet5-1998", ...]``."""
    return sorted(manifest())


def get_weights(name: str) -> Weights:
    entries = manifest()
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none are installed"
        raise ConfigError(f"no pretrained weights named {name!r}; bundled: {known} "
                          "(see `lenet weights list`)")
    e = entries[name]
    try:
        return Weights(name, str(e["model"]), str(e["dataset"]), str(e["file"]),
                       str(e["sha256"]), float(e["test_accuracy"]), str(e["recipe"]),
                       int(e["seed"]), dict(e))
    except (KeyError, TypeError, ValueError) as err:
        raise WeightsError(f"{PRETRAINED_DIR / MANIFEST}: entry {name!r} is malformed "
                           f"({err!r:.100}); {_REINSTALL}") from None


@cache
def _read_checked(name: str) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    # Cached: bundled files never change while the process runs; callers get fresh models.
    w = get_weights(name)
    try:
        data = w.path.read_bytes()
    except OSError as e:
        raise WeightsError(f"{w.path}: bundled weights {name!r} missing or unreadable "
                           f"({e.strerror}); {_REINSTALL}") from None
    if hashlib.sha256(data).hexdigest() != w.sha256:
        raise WeightsError(f"{w.path}: bundled weights {name!r} do not match the SHA-256 in "
                           f"{MANIFEST}; the file was damaged or replaced; {_REINSTALL}")
    tensors, raw = tensorfile.decode(data, tensorfile.METADATA_KEY, str(w.path),
                                     what="weights file", fix=_REINSTALL)
    meta = WeightsMeta.from_dict(raw, str(w.path))
    check_weights(tensors, meta, str(w.path))
    return tensors, meta


def load_pretrained(name: str, model: nn.Module | None = None
                    ) -> tuple[nn.Module, WeightsMeta]:
    """Bundled weights `name` loaded into `model` (default: a fresh one of the model they
    name); a model built with other arguments (say ``num_classes=5``) is refused in one line."""
    tensors, meta = _read_checked(name)
    if model is None:
        with torch.random.fork_rng(devices=[]):  # loading must not move the global RNG
            model = get_spec(meta.model).build()
    expected = model.state_dict()
    differ = sorted(k for k in set(expected) | set(tensors)
                    if k not in expected or k not in tensors
                    or expected[k].shape != tensors[k].shape)
    if differ:
        raise ConfigError(
            f"pretrained weights {name!r} fit lenet.models.create({meta.model!r}) built with no "
            f"arguments; this model differs at {', '.join(differ[:3])}: build it without those "
            "arguments with pretrained=True, then replace the layers you need")
    model.load_state_dict(tensors)
    return model, meta


def check_weights(tensors: Mapping[str, torch.Tensor], meta: WeightsMeta,
                  source: str) -> nn.Module:
    """The freshly built model `meta` names, once `tensors` and `meta` are known to fit it.

    Checked: the model exists, the preprocessing makes the input size it takes, every tensor
    (:func:`lenet.storage.tensorfile.check_state`), and one class name per output.
    """
    try:
        spec = get_spec(meta.model)
    except ConfigError as e:
        raise WeightsError(f"{source}: {e}") from None
    what = f"model {meta.model!r}"
    prep, side = meta.preprocessing, spec.input_size
    if prep.input_size != side:
        raise WeightsError(
            f"{source}: its preprocessing (resize {prep.resize}, pad {prep.pad}) makes "
            f"{prep.input_size}x{prep.input_size} inputs, but {what} takes {side}x{side}; the "
            "file was edited or forged (retrain with `lenet train`)")
    with torch.random.fork_rng(devices=[]):  # reading weights must not move the global RNG
        model = spec.build()
    tensorfile.check_state(model.state_dict(), tensors, source, what=what)
    outputs = _output_size(model, side)
    if len(meta.classes) != outputs:
        raise WeightsError(f"{source}: {len(meta.classes)} class names for the {outputs} "
                           f"outputs of {what}; the file was edited or forged (retrain with "
                           "`lenet train`)")
    return model


def _output_size(model: nn.Module, side: int) -> int:
    # Asked of the model itself (one blank digit through it) rather than of a layer's name.
    with torch.no_grad():
        return int(model.eval()(torch.zeros(1, 1, side, side)).shape[-1])
