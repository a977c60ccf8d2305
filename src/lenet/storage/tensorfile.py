"""lenet's tensor files: safetensors tensors plus JSON metadata and a SHA-256; never a pickle.

Weights files (``model.safetensors``, the bundled pretrained weights) and training checkpoints
(:mod:`lenet.storage.checkpoint`) share this format. The metadata (``__metadata__["lenet"]``, a JSON
string) holds the model name, the exact preprocessing, the dataset and its class names, the
accuracy measured at the end of training, and the lenet and torch versions, so inference can
never disagree with training.

Integrity: the metadata also holds ``sha256``, a SHA-256 over the canonical JSON of the rest of
the metadata and over every tensor (name, dtype, shape and bytes; see :func:`digest`). Reading
recomputes it, so a flipped bit in a tensor, an edited preprocessing or class list, or a
truncated file is refused with a :class:`~lenet.errors.WeightsError` instead of silently
predicting something else. A lenet file *without* a digest (written before lenet stored one, or
with the digest removed) is refused too: its integrity cannot be checked. JSON nested too
deeply to parse is a :class:`WeightsError` too.

Size: a file is refused by its size before it is read (:func:`read_bytes`): a weights file
above :data:`MAX_BYTES` (64 MiB; the largest LeNet of the registry, mlp-1000, is ~3 MB, the
bundled ones ~250 KB) is a :class:`WeightsError`, so a sparse 6 GB file costs nothing, never a
MemoryError. A checkpoint (weights plus optimizer state) may be four times that.

This module knows no model: whether a file's tensors fit the model it names is
:func:`lenet.models.check_weights`'s question, and :mod:`lenet.models.weights` asks it on every
read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError

from lenet._version import __version__
from lenet.errors import WeightsError
from lenet.storage import regular

METADATA_KEY = "lenet"
WEIGHTS_NAME = "model.safetensors"
DIGEST_KEY = "sha256"  # in the JSON metadata: the hex SHA-256 of everything else (see digest)
MAX_BYTES = 64 * 2**20  # a weights file: LeNets are 0.2-3 MB; see the module's notes
FIX = ("Copy it again from an intact source, or retrain with `lenet train` (a run directory "
        "holds its weights in model.safetensors).")


def digest(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of `meta` (less its own ``sha256`` field) and of every tensor.

    The metadata enters as canonical JSON (sorted keys, no spaces), so it does not depend on
    how the JSON text was laid out; each tensor enters, in name order, as its name, dtype,
    shape and raw bytes, so it does not depend on the file's layout either.
    """
    h = hashlib.sha256()
    body = json.dumps({k: v for k, v in meta.items() if k != DIGEST_KEY}, sort_keys=True,
                      separators=(",", ":")).encode()
    h.update(b"lenet-meta:%d;" % len(body))
    h.update(body)
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)  # hashed in place, not copied
    return h.hexdigest()


def encode(tensors: dict[str, torch.Tensor], key: str, meta: Mapping[str, Any]) -> bytes:
    """safetensors bytes whose metadata `key` is `meta` as JSON, with its digest added."""
    plain = json.loads(json.dumps(meta))  # what a reader will parse: str keys, lists, ...
    plain[DIGEST_KEY] = digest(tensors, plain)
    return safetensors.torch.save(tensors, metadata={key: json.dumps(plain)})


def decode(data: bytes, key: str, source: str, *, what: str, fix: str = ""
           ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and verified metadata of a file written by :func:`encode`; never unpickles.

    A pickle, a truncated or foreign file, missing or malformed metadata, a missing digest and
    a digest mismatch each raise :class:`WeightsError` naming `source` (and ending in `fix`);
    so does JSON nested too deeply for Python's parser (a RecursionError, caught here).
    """
    tail = f" {fix}" if fix else ""
    try:
        return _decode(data, key, source, what=what, tail=tail)
    except RecursionError:
        raise WeightsError(f"{source}: not a valid {what}: its JSON header or metadata is "
                           "nested too deeply to parse; the file is corrupt or forged." + tail
                           ) from None


def _decode(data: bytes, key: str, source: str, *, what: str, tail: str
            ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    header_len = int.from_bytes(data[:8], "little")
    # A safetensors file starts with its header's length (little-endian u64), then the JSON
    # header: "{" at byte 8. Only a file that cannot be one is checked for a pickle's opening
    # (PROTO 2-5, or a torch.save zip); that length's first byte may well be 0x80.
    safetensors_like = 8 + header_len <= len(data) and data[8:9] == b"{"
    pickle_like = data[:4] == b"PK\x03\x04" or (data[:1] == b"\x80" and data[1:2] in (
        b"\x02", b"\x03", b"\x04", b"\x05"))
    if pickle_like and not safetensors_like:
        raise WeightsError(f"{source}: this is a pickle/torch.save file, not a lenet {what}; "
                           "lenet never unpickles (it could run arbitrary code)." + tail)
    try:
        header = json.loads(data[8:8 + header_len])
        tensors = safetensors.torch.load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError) as e:
        raise WeightsError(f"{source}: not a valid safetensors file ({e}); it may be truncated "
                           "or corrupt." + tail) from None
    table = header.get("__metadata__") if isinstance(header, dict) else None
    text = table.get(key) if isinstance(table, dict) else None
    if not isinstance(text, str):
        raise WeightsError(f"{source}: safetensors file without lenet metadata (no {key!r} "
                           f"entry), so not a lenet {what}." + tail)
    try:
        meta = json.loads(text)
    except ValueError as e:
        meta = e
    if not isinstance(meta, dict):
        raise WeightsError(f"{source}: lenet metadata is malformed (expected a JSON object, "
                           f"got {meta!r:.80}); the file is damaged or was edited." + tail)
    stored = meta.get(DIGEST_KEY)
    if not isinstance(stored, str):
        raise WeightsError(f"{source}: no SHA-256 digest in its lenet metadata, so damage or "
                           f"edits cannot be detected; lenet {__version__} refuses such a "
                           f"{what} (written by an older lenet, or the digest was removed)."
                           + tail)
    if digest(tensors, meta) != stored:
        raise WeightsError(f"{source}: damaged or modified: SHA-256 mismatch (the checksum "
                           f"written with this {what} no longer matches its tensors and "
                           "metadata)." + tail)
    return tensors, meta


def read_bytes(path: str | os.PathLike[str], *, what: str, limit: int = MAX_BYTES,
               fix: str = FIX) -> bytes:
    """The bytes of tensor file `path`, checked before reading: a regular file (a FIFO would
    wait forever) of at most `limit` bytes. Anything else, and any OSError, is one
    :class:`WeightsError` naming the file and ending in `fix`."""
    tail = f" {fix}" if fix else ""
    try:
        return regular.read_regular(path, limit)
    except regular.NotRegularFile:
        raise WeightsError(f"{path}: not a regular file (a FIFO, socket or device), so not a "
                           f"lenet {what}.{tail}") from None
    except regular.FileTooLarge as e:
        raise WeightsError(f"{path}: {e.size:,} bytes, more than a lenet {what} can be (at "
                           f"most {limit:,}); the file is damaged or not lenet's.{tail}") from None
    except OSError as e:
        raise WeightsError(f"{path}: cannot read the {what} ({e.strerror or e}); check that it "
                           "exists and that you may read it") from None


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """A run directory or a weights file -> the weights file."""
    p = Path(path)
    if p.is_dir():
        p = p / WEIGHTS_NAME
    if p.exists() and not p.is_file():  # reading a FIFO would wait forever for a writer
        raise WeightsError(f"{path}: not a regular file (a FIFO, socket or device); give a "
                           f"weights file or a run directory holding {WEIGHTS_NAME}")
    if not p.is_file():
        raise WeightsError(f"{path}: no such weights file or run directory "
                           f"(a run directory holds {WEIGHTS_NAME}; see `lenet train`)")
    return p


def check_state(expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor],
                source: str, *, what: str = "the model", finite: bool = True,
                fix: str = "retrain with `lenet train`") -> None:
    """Raise :class:`WeightsError` naming `source` (and ending in `fix`) unless `got` holds
    exactly the tensors of `expected` (a fresh model's ``state_dict()``), each with the same
    shape and dtype, and, with `finite`, no NaN or infinite value in a floating-point one.

    A valid checksum proves a file is the one written, not that it fits the model: checked
    before ``load_state_dict``, whose own errors are long tracebacks.
    """
    why = f"the file was edited, forged or written for another model ({fix})"
    missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if missing or unexpected:
        parts = [f"{label} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                 for label, names in (("missing", missing), ("unexpected", unexpected)) if names]
        raise WeightsError(f"{source}: tensors do not match {what}: {'; '.join(parts)}; {why}")
    for name in sorted(expected):
        want, have = expected[name], got[name]
        if have.dtype != want.dtype or tuple(have.shape) != tuple(want.shape):
            raise WeightsError(
                f"{source}: tensors do not match {what}: {name} is {_describe(have)}, expected "
                f"{_describe(want)}; {why}")
        if finite and have.is_floating_point() and not bool(torch.isfinite(have).all()):
            raise WeightsError(f"{source}: tensor {name} holds NaN or infinite values, so every "
                               "prediction would be NaN; the training diverged or the file was "
                               f"edited ({fix})")


def _describe(t: torch.Tensor) -> str:
    return f"{str(t.dtype).removeprefix('torch.')} {tuple(t.shape)}"
