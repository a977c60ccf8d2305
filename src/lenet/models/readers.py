"""Reader weights: an :class:`~lenet.models.sdnn.SDNN` and what it was trained with, bundled or
from a file.

The bundled reader weights live beside the digit weights in ``lenet/models/pretrained/`` but
have their own manifest, ``readers.json`` (an SDNN reads lines, not 28x28 digits, so it is
kept out of the digit weights' manifest, which ``lenet weights`` and the digit benchmarks
walk). A file carries the usual :class:`~lenet.models.metadata.WeightsMeta` (model ``sdnn``,
the preprocessing, the 12 classes) plus, in its extra fields, the reject threshold chosen on
held-out *training* strings (``reject``), the SDNN's margin and its ``members`` (an ensemble of
several LeNet-5s, :meth:`~lenet.models.sdnn.SDNN.ensemble`, is stored compactly: int8 weights
with a scale per output channel, :func:`compact`; it computes in float32). Every read checks
the manifest's SHA-256 (bundled), the file's own digest, and the tensors against a fresh SDNN.

>>> model, meta = load_reader(DEFAULT_READER)
>>> meta.model, len(meta.classes), 0 < meta.extra["reject"] < 1
('sdnn', 12, True)
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import torch

from lenet.errors import WeightsError
from lenet.models import hub, weights
from lenet.models.metadata import WeightsMeta
from lenet.models.sdnn import CLASSES, PREPROCESSING, SDNN
from lenet.storage import atomic, tensorfile

DEFAULT_READER = "lenet5-sdnn"
MANIFEST = "readers.json"
MODEL = "sdnn"
MAX_MEMBERS = 8  # LeNet-5s an ensemble reader may run side by side
SCALE = ".scale"  # suffix of an int8 tensor's per-channel scales in a compact file
MAX_WIDTH = 16384  # px: the widest strip the ONNX export takes (a 20,000 px strip is cut first)
_FIX = "remake it with `make reader` (python -m lenet.training.reader)"


def manifest() -> dict[str, dict[str, Any]]:
    """The bundled reader weights' entries by name ({} where none are installed).

    >>> manifest()["lenet5-sdnn"]["model"]
    'sdnn'
    """
    return _entries(hub.PRETRAINED_DIR)


def _entries(directory: Path) -> dict[str, dict[str, Any]]:
    path = directory / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise WeightsError(f"{path}: unreadable manifest of reader weights ({e}); {_FIX}"
                           ) from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise WeightsError(f"{path}: not a JSON object of entries; {_FIX}")
    return data


def is_reader_name(name: str | os.PathLike[str]) -> bool:
    """Whether `name` means bundled reader weights: not an existing path, and a name in
    ``readers.json``.

    >>> is_reader_name("lenet5-sdnn"), is_reader_name("lenet5")
    (True, False)
    """
    text = os.fspath(name)
    return not os.path.lexists(text) and text in manifest()


def is_reader(source: str | os.PathLike[str]) -> bool:
    """Whether `source` is reader weights: a bundled reader's name, or a weights file (or run
    directory) whose metadata names the ``sdnn`` model.

    >>> is_reader("lenet5-sdnn"), is_reader("no-such-file.safetensors")
    (True, False)
    """
    if is_reader_name(source):
        return True
    try:
        return weights.read_file(source)[1].model == MODEL
    except WeightsError:
        return False


def load_reader(source: str | os.PathLike[str] = DEFAULT_READER, device: str = "cpu"
                ) -> tuple[SDNN, WeightsMeta]:
    """The SDNN (eval mode) and its metadata from bundled reader weights (by name), a
    ``.safetensors`` file or a run directory.

    >>> model, meta = load_reader("lenet5-sdnn")
    >>> model.training, meta.classes[-1]
    (False, 'none')
    """
    tensors, meta = read_reader(source)
    model = SDNN(margin=int(meta.extra.get("margin", 12)), members=members(meta))
    model.load_state_dict(tensors)
    return model.to(device).eval(), meta


def read_reader(source: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    """Tensors and metadata of reader weights, checked (see the module's notes).

    >>> tensors, meta = read_reader("lenet5-sdnn")           # four members, stored as int8
    >>> tuple(tensors["output.weight"].shape), tensors["output.weight"].dtype
    ((12, 336, 1, 1), torch.float32)
    """
    if is_reader_name(source):
        return _bundled(os.fspath(source))
    path = tensorfile.resolve_path(source)
    tensors, meta = weights.read_file(path)
    tensors = _float(tensors, str(path))
    check_reader(tensors, meta, str(path))
    return tensors, meta


def _float(tensors: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """A compact file's tensors (:func:`compact`) as the float32 the SDNN computes in; a full
    one's as they are."""
    out = {}
    for name, value in tensors.items():
        if name.endswith(SCALE):
            if name.removesuffix(SCALE) not in tensors:
                raise WeightsError(f"{source}: scale {name} without its weights; {_FIX}")
            continue
        if value.dtype == torch.int8:
            scale = tensors.get(name + SCALE)
            if scale is None or not scale.is_floating_point() or tuple(scale.shape) != (
                    value.shape[0], *[1] * (value.dim() - 1)):
                raise WeightsError(f"{source}: int8 tensor {name} lacks its per-channel scale "
                                   f"{name + SCALE}; {_FIX}")
            out[name] = value.float() * scale.float()
        else:
            out[name] = value.float() if value.dtype == torch.float16 else value
    return out


def compact(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors to store small (an ensemble's, within the bundled weights' 300 KB): each
    weight as int8 times a float16 scale per output channel (symmetric, the channel's largest
    magnitude to 127), each bias as float16. Reading them back costs an ensemble of four
    nothing measurable on held-out strings (BENCHMARKS.md).

    >>> w = torch.tensor([[1.0, -0.5], [0.02, 0.01]])
    >>> c = compact({"a.weight": w})
    >>> c["a.weight"].dtype, torch.allclose(_float(c, "x")["a.weight"], w, atol=5e-3)
    (torch.int8, True)
    """
    out = {}
    for name, value in tensors.items():
        if name.endswith("weight") and value.is_floating_point():
            dims = tuple(range(1, value.dim()))
            peak = value.abs().amax(dim=dims, keepdim=True) if dims else value.abs()
            scale = (peak / 127).clamp_min(torch.finfo(torch.float16).tiny).half()
            out[name] = torch.round(value / scale.float()).clamp(-127, 127).to(torch.int8)
            out[name + SCALE] = scale
        else:
            out[name] = value.half() if value.is_floating_point() else value
    return out


def members(meta: WeightsMeta) -> int:
    """How many LeNet-5s the reader runs side by side (1 unless it is an ensemble)."""
    value = meta.extra.get("members", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@cache
def _bundled(name: str) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    entry = manifest()[name]
    path = hub.PRETRAINED_DIR / str(entry.get("file", ""))
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WeightsError(f"{path}: bundled reader weights {name!r} missing or unreadable "
                           f"({e.strerror}); {_FIX}") from None
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise WeightsError(f"{path}: bundled reader weights {name!r} do not match the SHA-256 "
                           f"in {MANIFEST}; the file was damaged or replaced; {_FIX}")
    tensors, raw = tensorfile.decode(data, tensorfile.METADATA_KEY, str(path),
                                     what="weights file", fix=_FIX)
    meta = WeightsMeta.from_dict(raw, str(path))
    tensors = _float(tensors, str(path))
    check_reader(tensors, meta, str(path))
    return tensors, meta


def check_reader(tensors: dict[str, torch.Tensor], meta: WeightsMeta, source: str) -> None:
    """Refuse, in one :class:`WeightsError`, reader weights that do not fit an SDNN.

    >>> tensors, meta = read_reader("lenet5-sdnn")
    >>> check_reader(tensors, meta, "here")          # fits: no error
    """
    if meta.model != MODEL:
        raise WeightsError(f"{source}: these are {meta.model!r} weights, not a reader ("
                           f"{MODEL!r}); pass digit weights with --digits, or reader weights "
                           f"such as {DEFAULT_READER!r}")
    if meta.classes != CLASSES:
        raise WeightsError(f"{source}: reader classes {meta.classes!r:.80}, expected "
                           f"{CLASSES!r}; {_FIX}")
    if meta.preprocessing.input_size != 28 or meta.preprocessing.resize is not None:
        raise WeightsError(f"{source}: a reader takes 28-high strips without resizing; {_FIX}")
    reject = meta.extra.get("reject")
    if not (isinstance(reject, (int, float)) and 0 <= reject <= 1):
        raise WeightsError(f"{source}: reject threshold {reject!r:.40} is not a number in "
                           f"0..1; {_FIX}")
    count = members(meta)
    if not 1 <= count <= MAX_MEMBERS:
        raise WeightsError(f"{source}: members {meta.extra.get('members')!r:.40} is not a "
                           f"whole number in 1..{MAX_MEMBERS}; {_FIX}")
    with torch.random.fork_rng(devices=[]):
        fresh = SDNN(members=count)
    tensorfile.check_state(fresh.state_dict(), tensors, source, what=f"model {MODEL!r}")


def reader_meta(reject: float, extra: dict[str, Any]) -> WeightsMeta:
    """The metadata a trained reader's file carries.

    >>> reader_meta(0.9, {"margin": 12}).extra["reject"]
    0.9
    """
    return WeightsMeta(model=MODEL, preprocessing=PREPROCESSING, dataset="mnist",
                       classes=list(CLASSES), extra={"reject": float(reject), **extra})


def publish(model: SDNN, meta: WeightsMeta, name: str, directory: Path | None = None,
            entry: dict[str, Any] | None = None, small: bool = False) -> Path:
    """Write `model` as reader weights `name` into `directory` (default: the bundled folder),
    atomically, and its manifest entry (file, SHA-256, bytes and `entry`'s fields).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = publish(SDNN(), reader_meta(0.9, {"margin": 12}), "mine", Path(d))
    ...     load_reader(path)[1].extra["reject"]
    0.9
    """
    directory = hub.PRETRAINED_DIR if directory is None else Path(directory)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if small:  # int8 and float16 on disk (compact), float32 once loaded
        tensors = compact(tensors)
    data = tensorfile.encode(tensors, tensorfile.METADATA_KEY, meta.to_dict())
    file = f"{name}.safetensors"
    path = atomic.write_bytes(directory / file, data)
    entries = _entries(directory)
    entries[name] = {**(entry or {}), "file": file, "model": MODEL, "dataset": meta.dataset,
                     "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    atomic.write_text(directory / MANIFEST, json.dumps(entries, indent=2, sort_keys=True) + "\n")
    _bundled.cache_clear()
    return path
