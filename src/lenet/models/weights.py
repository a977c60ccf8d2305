"""Weights by name or path: a run directory, a ``.safetensors`` file, or bundled weights.

Every read is checked twice: the file's own SHA-256 digest (:mod:`lenet.storage.tensorfile`, the
format shared with checkpoints), then its fit to the model it names
(:func:`lenet.models.hub.check_weights`): the preprocessing in its bounds and making the model's
input size, every tensor's name, shape and dtype those of a freshly built model, no NaN or
infinity, and one class name per output. A valid digest proves a file is the one written, not
that it is usable (it may have been forged and re-signed, or written by a bug).

A name such as ``lenet5`` (or ``lenet5.mnist``, timm's ``arch.tag``) that is not an existing
path is the bundled weights of that name (``lenet weights list``); an existing path always wins.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from lenet.errors import WeightsError
from lenet.models.hub import check_weights, get_weights, is_weights_name, list_pretrained
from lenet.models.metadata import WeightsMeta
from lenet.models.registry import get_spec
from lenet.storage import atomic, tensorfile
from lenet.storage.tensorfile import (
    DIGEST_KEY,
    FIX,
    METADATA_KEY,
    WEIGHTS_NAME,
    check_state,
    decode,
    digest,
    encode,
)

__all__ = ["DIGEST_KEY", "METADATA_KEY", "WEIGHTS_NAME", "WeightsMeta", "check_model",
           "check_state", "decode", "digest", "encode", "is_bundled", "load_model", "read",
           "resolve_path", "save"]


def is_bundled(name: str | os.PathLike[str]) -> bool:
    """Whether `name` means bundled weights: not an existing path, and a bundled name
    (``lenet5``) or ``arch.tag`` (``lenet5.mnist``)."""
    text = os.fspath(name)
    return not os.path.lexists(text) and is_weights_name(text)


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """A run directory, a weights file or a bundled name -> the weights file."""
    if is_bundled(path):
        return get_weights(os.fspath(path)).path
    try:
        return tensorfile.resolve_path(path)
    except WeightsError as e:
        named = ", ".join(list_pretrained())
        raise WeightsError(f"{e}; or name bundled weights: {named}" if named else str(e)
                           ) from None


def read(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    """Read and verify tensors and metadata; a pickle, a truncated, edited or foreign file,
    or one without a digest, is refused with a :class:`WeightsError`; so is one whose digest
    verifies but whose content is not sane (see :func:`check_model`)."""
    if is_bundled(path):
        return get_weights(os.fspath(path)).read()
    p = resolve_path(path)
    tensors, meta = read_file(p)
    check_model(tensors, meta, str(p))
    return tensors, meta


def check_model(tensors: dict[str, torch.Tensor], meta: WeightsMeta, source: str) -> nn.Module:
    """The freshly built model `meta` names, once `tensors` and `meta` are known to fit it."""
    return check_weights(tensors, meta, source)


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu"
               ) -> tuple[nn.Module, WeightsMeta]:
    # Through read() (checked there against a fresh model), so that a run's weights are read,
    # and counted by the tests, once per load.
    tensors, meta = read(path)
    model = get_spec(meta.model).build()
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:  # check_model makes this unreachable; never a traceback anyway
        raise WeightsError(f"{resolve_path(path)}: tensors do not match model {meta.model!r}: "
                           f"{str(e).splitlines()[0]}") from None
    return model.to(device).eval(), meta


def save(path: str | os.PathLike[str], model: nn.Module, meta: WeightsMeta) -> Path:
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return atomic.write_bytes(path, encode(tensors, METADATA_KEY, meta.to_dict()))


def read_file(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    """Tensors and metadata of a weights file (or a run directory's), digest verified; a pickle,
    a truncated, edited or foreign file, or one without a digest, is a :class:`WeightsError`.
    Whether the tensors fit the model named is not checked here (:func:`read` checks it)."""
    p = tensorfile.resolve_path(path)
    try:
        data = tensorfile.read_bytes(p, what="weights file")  # size-checked first
    except OSError as e:
        raise WeightsError(f"{p}: cannot read the weights file ({e.strerror}); check its "
                           "permissions") from None
    tensors, raw = decode(data, METADATA_KEY, str(p), what="weights file", fix=FIX)
    return tensors, WeightsMeta.from_dict(raw, str(p))
