"""From weights files to models: whether a file's tensors fit a registered model, and the
pretrained weights that ship inside the package.

What a set of weights *is* (the model, the exact preprocessing, the dataset and its classes) is
one type, :class:`~lenet.models.metadata.WeightsMeta`, which every weights file carries. The
bundled weights live in ``lenet/models/pretrained/``: one ``NAME.safetensors`` per entry of
``manifest.json``, and an entry adds only how its file was published: the file and its SHA-256,
the recipe and seed that trained it (with the command and the machine), and the test accuracy
measured again on the whole test set then (`lenet weights publish`, run by ``make weights``).
An entry is written from the file's WeightsMeta (:meth:`Weights.publication`) and parsed
(:meth:`Weights.from_entry`) here and nowhere else; the model and dataset names it repeats, for
listing without opening the files, are checked against the file's own on every read. A bundled
file is checked against its entry's SHA-256, then read like any other weights file (digest,
then fit).

Like torchvision's, each entry carries its metadata (``meta``, the entry as a dict) and its
transform:

>>> w = get_weights("lenet5")
>>> w.test_accuracy, w.transforms()     # the recorded accuracy, the exact input preprocessing
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lenet._version import __version__
from lenet.data.transforms import Preprocessing
from lenet.errors import ConfigError, WeightsError
from lenet.models.metadata import WeightsMeta
from lenet.models.registry import get_spec
from lenet.storage import atomic, tensorfile

PRETRAINED_DIR = Path(__file__).with_name("pretrained")
MANIFEST = "manifest.json"
_REINSTALL = "reinstall lenet (pip install --force-reinstall lenet), or rebuild it with " \
             "`make weights`"
# A run's config keys that name places on the publishing machine, not how the weights were made.
_LOCAL_KEYS = ("run_dir", "data_dir")


@dataclass(frozen=True)
class Weights:
    """One bundled set of weights: its manifest entry, and its file's :class:`WeightsMeta`.

    ``meta`` is the whole entry as manifest.json holds it (as torchvision's ``Weights.meta``);
    the fields are the parts of it that the file does not say about itself. What the weights
    are (``classes``, ``transforms()``) is read from the file; ``model`` and ``dataset``, which
    the manifest repeats from it, are compared with the file on every read.
    """

    name: str
    file: str
    sha256: str
    recipe: str  # the shipped recipe that trained it
    seed: int  # its seed (-1: the run recorded none)
    test_accuracy: float  # measured on the whole test set when it was published
    meta: dict[str, Any]

    @classmethod
    def from_entry(cls, name: str, entry: Mapping[str, Any], source: str) -> Weights:
        """The manifest's entry `name` (`source`: the manifest, for the error)."""
        try:
            for key in ("model", "dataset"):  # repeated from the file, compared on every read
                if not isinstance(entry[key], str):
                    raise TypeError(f"{key} is not a string")
            return cls(name, str(entry["file"]), str(entry["sha256"]), str(entry["recipe"]),
                       int(entry["seed"]), float(entry["test_accuracy"]), dict(entry))
        except (KeyError, TypeError, ValueError) as err:
            raise WeightsError(f"{source}: entry {name!r} is malformed ({err!r:.100}); "
                               f"{_REINSTALL}") from None

    @classmethod
    def publication(cls, name: str, meta: WeightsMeta, data: bytes, *, recipe: str,
                    config: Mapping[str, Any], measured: Mapping[str, Any],
                    machine: str) -> Weights:
        """The entry that publishes `data`, a weights file whose metadata is `meta`, as `name`:
        trained by `recipe` with the run's `config` (its ``config.json``; {} for a bare file),
        with `measured` (accuracy, errors and total on the whole test set, and first_1000)."""
        seed = config.get("seed")
        entry = {
            "file": f"{name}.safetensors", "model": meta.model, "dataset": meta.dataset,
            "recipe": recipe, "seed": seed if isinstance(seed, int) else -1,
            "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            "test_accuracy": measured["accuracy"], "test_errors": measured["errors"],
            "test_digits": measured["total"], "test_accuracy_first_1000": measured["first_1000"],
            "epochs": meta.extra.get("epoch"),
            "command": (f"OMP_NUM_THREADS=1 lenet train --config {recipe} --seed {seed} "
                        f"--run-dir runs/weights/{name} && lenet weights publish "
                        f"runs/weights/{name} --name {name} --recipe {recipe}"),
            "machine": machine, "published": datetime.date.today().isoformat(),
            "lenet_version": __version__, "torch_version": torch.__version__,
            "config": {k: v for k, v in config.items() if k not in _LOCAL_KEYS},
        }
        return cls.from_entry(name, entry, f"weights {name!r}")

    @property
    def path(self) -> Path:
        return PRETRAINED_DIR / self.file

    @property
    def weights_meta(self) -> WeightsMeta:
        """What the file says about itself, checked (see :meth:`read`)."""
        return self.read()[1]

    # The manifest repeats these two from the file's WeightsMeta (Weights.publication), so that
    # listing the bundled weights reads no file; every read compares them (_read_checked).
    @property
    def model(self) -> str:
        return str(self.meta["model"])

    @property
    def dataset(self) -> str:
        return str(self.meta["dataset"])

    @property
    def classes(self) -> list[str]:
        return self.weights_meta.classes

    def transforms(self) -> Preprocessing:
        """The exact input preprocessing these weights were trained with (uint8 digits in)."""
        return self.weights_meta.preprocessing

    def read(self) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
        """Tensors and metadata, checked against the manifest's SHA-256, model and dataset, the
        file's own digest and the model they name."""
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


def write_manifest(directory: Path, entries: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write `entries` as `directory`'s manifest, atomically (the layout :func:`manifest`
    reads: sorted keys, two-space indents)."""
    text = json.dumps(entries, indent=2, sort_keys=True) + "\n"
    return atomic.write_bytes(directory / MANIFEST, text.encode())


def list_pretrained() -> list[str]:
    """The names of the bundled weights, e.g. ``["lenet5", "lenet5-1998", ...]``."""
    return sorted(manifest())


def get_weights(name: str) -> Weights:
    entries = manifest()
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none are installed"
        raise ConfigError(f"no pretrained weights named {name!r}; bundled: {known} "
                          "(see `lenet weights list`)")
    return Weights.from_entry(name, entries[name], str(PRETRAINED_DIR / MANIFEST))


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
    listed = (w.meta["model"], w.meta["dataset"])
    if (meta.model, meta.dataset) != listed:
        raise WeightsError(f"{w.path}: bundled weights {name!r} are {meta.model} on "
                           f"{meta.dataset}, but {MANIFEST} lists {listed[0]} on {listed[1]}; "
                           f"{_REINSTALL}")
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
