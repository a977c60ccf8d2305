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

>>> w = get_weights("lenet5")          # or by timm's arch.tag: get_weights("lenet5.mnist")
>>> w.test_accuracy, w.dataset           # the recorded accuracy, what they were trained on
(0.9907, 'mnist')
>>> preprocess = w.transforms()         # the exact input preprocessing
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
from lenet.data.transforms import DigitTransform
from lenet.errors import ConfigError, WeightsError
from lenet.models.metadata import WeightsMeta
from lenet.models.registry import get_spec
from lenet.storage import atomic, tensorfile

PRETRAINED_DIR = Path(__file__).with_name("pretrained")
# The weights `lenet.load()`, `lenet predict`, `lenet serve` and the page use when none are
# named: LeNet-5 trained for real input (recipe lenet5-real: photos and scans, not only MNIST).
# The faithful "lenet5" (the tutorials' recipe) stays available by name.
DEFAULT_WEIGHTS = "lenet5-real"
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
            "command": _command(name, recipe, seed, meta.reject_margin is not None),
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

    def transforms(self) -> DigitTransform:
        """The exact input preprocessing these weights were trained with, as torchvision's
        ``weights.transforms()``: a PIL image, a uint8 tensor or ToTensor's float tensor in
        [0, 1] in, float32 (1, S, S) out (see :class:`~lenet.data.transforms.DigitTransform`).

        >>> t = get_weights("lenet5").transforms()
        >>> t(torch.zeros(28, 28, dtype=torch.uint8)).shape
        torch.Size([1, 28, 28])
        >>> t.preprocessing.mean, t.preprocessing.std
        (0.5, 0.5)
        """
        return DigitTransform(self.weights_meta.preprocessing)

    def read(self) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
        """Tensors and metadata, checked against the manifest's SHA-256, model and dataset, the
        file's own digest and the model they name."""
        return _read_checked(self.name)


def _command(name: str, recipe: str, seed: Any, reject: bool) -> str:
    """How an entry's file was made. With a reject margin, that margin was chosen on held-out
    training digits: by a run of the same recipe and seed with a validation split."""
    train = f"OMP_NUM_THREADS=1 lenet train --config {recipe} --seed {seed}"
    publish = f"lenet weights publish runs/weights/{name} --name {name} --recipe {recipe}"
    if not reject:
        return f"{train} --run-dir runs/weights/{name} && {publish}"
    val = f"runs/weights/{name}-val"
    return (f"{train} --set val_size=10000 --run-dir {val} && {train} --run-dir "
            f"runs/weights/{name} && {publish} --reject-from {val}")


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


def tagged() -> dict[str, str]:
    """Every bundled set of weights by its timm-style ``arch.tag`` name, the tag being the
    dataset it was trained on (``lenet5.mnist``, ``lenet5-sigmoid.fashion-mnist``), mapped to
    its manifest name. A second set of one model on one dataset is told apart by what its
    manifest name adds to the model's, before the dataset, as timm's tags are
    (``lenet5-real`` is ``lenet5.real-mnist``; a name that adds nothing: ``lenet5.NAME``)."""
    out: dict[str, str] = {}
    for name, entry in sorted(manifest().items()):
        model, dataset = entry.get("model"), entry.get("dataset")
        if not (isinstance(model, str) and isinstance(dataset, str)):
            continue  # a malformed entry: get_weights(name) says so
        key = f"{model}.{dataset}"
        if key in out:
            extra = name.removeprefix(f"{model}-")
            key = f"{model}.{extra}-{dataset}" if extra != name else f"{model}.{name}"
        out[key] = name
    return out


def default_weights(model: str) -> str | None:
    """The manifest name of `model`'s default weights (those ``create(model, pretrained=True)``
    loads): the entry named as the model, else its first tagged one; None if it has none."""
    entries, names = manifest(), tagged()
    if model in entries and entries[model].get("model") == model:
        return model
    return next((names[t] for t in sorted(names) if t.partition(".")[0] == model), None)


def is_weights_name(name: str) -> bool:
    """Whether `name` names bundled weights: a manifest name or an ``arch.tag``."""
    return name in manifest() or name in tagged()


def get_weights(name: str) -> Weights:
    """Bundled weights by manifest name (``lenet5-sigmoid``) or ``arch.tag``
    (``lenet5.mnist``)."""
    entries = manifest()
    if name not in entries:
        name = tagged().get(name, name)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none are installed"
        tags = ", ".join(sorted(tagged()))
        raise ConfigError(f"no pretrained weights named {name!r}; bundled: {known}"
                          + (f" (tagged: {tags})" if tags else "")
                          + " (see `lenet weights list`)")
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


def load_fitting(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Copy into `model` every tensor of `tensors` whose name and shape fit it, as timm loads
    pretrained weights into a model built with other arguments; the names of the model's
    tensors left as built (reset: a head of another size, say), sorted.

    The first convolution's weight, when only its input channels differ, is adapted as timm's
    ``adapt_input_conv`` does (:func:`adapt_input_conv`): a grey image repeated over the
    `in_chans` channels then gives the pretrained outputs."""
    state = model.state_dict()
    first = next((f"{n}.weight" for n, m in model.named_modules()
                  if isinstance(m, nn.Conv2d)), None)
    fitting: dict[str, torch.Tensor] = {}
    for key, target in state.items():
        t = tensors.get(key)
        if t is None:
            continue
        if key == first and t.shape != target.shape:
            t = adapt_input_conv(t, target.shape[1]) if (
                t.dim() == 4 and t.shape[0] == target.shape[0]
                and t.shape[2:] == target.shape[2:]) else t
        if t.shape == target.shape:
            fitting[key] = t.to(target.dtype)
    model.load_state_dict(fitting, strict=False)
    return sorted(set(state) - set(fitting))


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Conv filters of ``weight.shape[1]`` input channels for `in_chans` channels: summed to
    one channel, or repeated (and scaled to keep the response) over more, as timm does."""
    have = weight.shape[1]
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeat = -(-in_chans // have)
    return weight.repeat(1, repeat, 1, 1)[:, :in_chans] * (have / in_chans)


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
    outputs = output_size(model, side)
    if len(meta.classes) != outputs:
        raise WeightsError(f"{source}: {len(meta.classes)} class names for the {outputs} "
                           f"outputs of {what}; the file was edited or forged (retrain with "
                           "`lenet train`)")
    return model


def output_size(model: nn.Module, side: int) -> int:
    """How many outputs `model` gives for a `side` x `side` grey digit."""
    # Asked of the model itself (one blank digit through it) rather than of a layer's name.
    with torch.no_grad():
        return int(model.eval()(torch.zeros(1, 1, side, side)).shape[-1])
