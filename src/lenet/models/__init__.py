"""LeNet-5 and its relatives, by name: ``lenet.models.create("lenet5", pretrained=True)``.

As in torchvision and timm, the registry (:mod:`lenet.models.registry`) is a leaf that knows no
model, and each family module registers its models into it when imported here. A new family is
one file in this folder and one import line below. :mod:`lenet.models.hub` holds the pretrained
weights that ship in the package and checks that a weights file fits the model it names; what
any set of weights is, is :class:`lenet.models.metadata.WeightsMeta`.
"""

import builtins
import fnmatch
import inspect
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

import lenet.models.lenet5
import lenet.models.lenet1998
import lenet.models.mlp
import lenet.models.paper_nets  # noqa: F401
from lenet.errors import ConfigError
from lenet.models.hub import (
    Weights,
    check_weights,
    default_weights,
    get_weights,
    list_pretrained,
    load_fitting,
    load_pretrained,
    output_size,
    tagged,
)
from lenet.models.interfaces import LeNetModule
from lenet.models.registry import ModelSpec, count_parameters, get_spec, names, register

_log = logging.getLogger("lenet")

# Bounds on create()'s timm arguments, checked before anything is allocated: far above any
# digit or character set (EMNIST has 47 classes, CJK sets tens of thousands), far below what
# would exhaust memory (100,000 classes make lenet5's head 8.4 M weights, 34 MB).
MAX_CLASSES = 100_000
MAX_IN_CHANS = 1_024
# Any other constructor argument (``input_size``...) is bounded by the model it makes: at most
# 100 M parameters and buffers (400 MB of float32), measured on torch's meta device first.
MAX_PARAMETERS = 100_000_000


class ModelArgumentError(ConfigError, ValueError):
    """A model argument out of range (``num_classes=-1``): a ValueError from Python, one
    ``lenet: error:`` line from the CLI."""


class ModelArgumentTypeError(ConfigError, TypeError):
    """A model argument of the wrong type (``num_classes="10"``, a model name that is not a
    string)."""


def create(name: str, pretrained: bool = False, *, num_classes: int | None = None,
           in_chans: int | None = None, **kwargs: Any) -> LeNetModule:
    """A model by registry name, freshly initialized or (``pretrained=True``) with bundled
    weights, as timm's ``create_model``; see :func:`list_models`.

    `name` is a model (``"lenet5"``: its default weights) or timm's ``arch.tag``, the tag
    naming the weights by their dataset (``"lenet5.mnist"``; ``list_models(pretrained=True)``
    lists them). `num_classes` (1 to :data:`MAX_CLASSES`) and `in_chans` (1 to
    :data:`MAX_IN_CHANS`) are timm's: with ``pretrained=True`` every layer that fits is
    loaded and the rest (a head of another size) keep their fresh initialization, named in
    one warning on the ``lenet`` logger; a first convolution for more channels gets the grey
    filters spread over them. Other keyword arguments go to the model's constructor. The
    weights' metadata (recorded accuracy, ``transforms()``, the classes of their own head) is
    ``model.pretrained_weights`` (None when not pretrained).

    >>> model = create("lenet5", pretrained=True, num_classes=47)   # a 47-way head, reset
    >>> model.output.out_features, model.pretrained_weights.name
    (47, 'lenet5')
    """
    if not isinstance(name, str):
        raise ModelArgumentTypeError(
            f"model name must be a string such as 'lenet5' (see lenet.list_models()), got "
            f"{type(name).__name__}")
    arch, dot, _ = name.partition(".")
    spec = get_spec(arch)
    chosen = _weights_name(name, arch) if (pretrained or dot) else None
    args = {**kwargs, **_timm_args(spec, arch, num_classes, in_chans)}
    model = _build(spec, arch, args)
    if not isinstance(model, LeNetModule):
        raise TypeError(f"model {arch!r} is a {type(model).__name__}: registered models "
                        "derive from lenet.models.LeNetModule")
    if num_classes is not None and "num_classes" not in args:
        _check_fixed_head(model, spec, arch, num_classes)
    if pretrained and chosen is not None:
        _load(model, chosen, name, in_chans)
    return model


def _build(spec: ModelSpec, arch: str, args: dict[str, Any]) -> nn.Module:
    """`spec` built with `args`, once a shape-only build (torch's meta device: no memory, no
    random numbers drawn) shows that they make a model of at most :data:`MAX_PARAMETERS`."""
    try:
        with torch.device("meta"):
            size = sum(t.numel() for t in spec.build(**args).state_dict().values())
    except TypeError as e:
        raise ConfigError(f"model {arch!r}: {e}; see its class in lenet.models for the "
                          "arguments it takes") from None
    except (RuntimeError, ValueError, KeyError, OverflowError) as e:
        shown = ", ".join(f"{k}={v!r:.40}" for k, v in args.items())
        raise ModelArgumentError(f"model {arch!r} cannot be built with {shown}: "
                                 f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
                                 ) from None
    if size > MAX_PARAMETERS:
        raise ModelArgumentError(f"model {arch!r} with these arguments would hold {size:,} "
                                 f"numbers; at most {MAX_PARAMETERS:,} are allowed")
    return spec.build(**args)


def _weights_name(name: str, arch: str) -> str:
    """The manifest name of the weights `name` (a model or an ``arch.tag``) means."""
    if "." in name:
        names = tagged()
        if name not in names:
            known = ", ".join(t for t in sorted(names) if t.startswith(arch + ".")) or "none"
            raise ConfigError(f"no pretrained weights tagged {name!r}; {arch}'s: {known} "
                              "(see lenet.list_models(pretrained=True))")
        return names[name]
    found = default_weights(arch)
    return get_weights(arch).name if found is None else found  # the first raises, naming all


def _timm_args(spec: ModelSpec, arch: str, num_classes: object, in_chans: object
               ) -> dict[str, int]:
    """`num_classes` and `in_chans`, checked, for the constructors that take them."""
    takes = inspect.signature(spec.build).parameters
    out: dict[str, int] = {}
    for key, value, bound in (("num_classes", num_classes, MAX_CLASSES),
                              ("in_chans", in_chans, MAX_IN_CHANS)):
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise ModelArgumentTypeError(f"{key} must be an integer, got "
                                         f"{type(value).__name__} {value!r:.40}")
        if not 1 <= value <= bound:
            shown = f"{value:.3g}" if abs(value) > 10**9 else str(value)
            raise ModelArgumentError(f"{key} must be from 1 to {bound:,}, got {shown}")
        if key in takes:
            out[key] = value
        elif key == "in_chans" and value != 1:
            raise ModelArgumentError(f"model {arch!r} takes grey digits only (in_chans 1), got "
                                     f"in_chans={value}; models that take in_chans: "
                                     f"{', '.join(_taking('in_chans'))}")
    return out


def _taking(argument: str) -> builtins.list[str]:
    """The registered models whose constructor takes `argument`."""
    return [n for n in names() if argument in inspect.signature(get_spec(n).build).parameters]


def _check_fixed_head(model: nn.Module, spec: ModelSpec, arch: str, num_classes: int) -> None:
    outputs = output_size(model, spec.input_size)
    if outputs != num_classes:
        raise ModelArgumentError(f"model {arch!r} has a fixed {outputs}-way output, got "
                                 f"num_classes={num_classes}; models that take num_classes: "
                                 f"{', '.join(_taking('num_classes'))}")


def _load(model: LeNetModule, chosen: str, name: str, in_chans: int | None) -> None:
    weights = get_weights(chosen)
    tensors, _ = weights.read()
    reset = load_fitting(model, tensors)
    if reset:
        _log.warning("%s: loaded pretrained weights %r except %s, whose shapes differ (left "
                     "freshly initialized)", name, chosen, ", ".join(reset))
    if in_chans not in (None, 1):
        _log.info("%s: first convolution's grey filters spread over %d input channels", name,
                  in_chans)
    model.pretrained_weights = weights


def list_models(filter: str | Sequence[str] = "", pretrained: bool | None = None
                ) -> builtins.list[str]:
    """The registered models (in registry order), as timm's ``list_models``; with
    ``pretrained=True`` the bundled weights' ``arch.tag`` names (sorted), each of which
    :func:`create` takes. `filter` is a shell-style pattern, or several (``"lenet5*"``).
    ``pretrained=False``, like None, does not filter (as in timm).

    >>> list_models("lenet5*", pretrained=True)  # doctest: +NORMALIZE_WHITESPACE
    ['lenet5-1998.mnist', 'lenet5-sigmoid.fashion-mnist', 'lenet5-tanh.mnist', 'lenet5.mnist',
     'lenet5.real-mnist']
    """
    found = sorted(tagged()) if pretrained else names()
    patterns = [filter] if isinstance(filter, str) else builtins.list(filter)
    patterns = [p for p in patterns if p]
    if not patterns:
        return found
    return [n for n in found if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


# `lenet.models.list()`, the short spelling beside torchvision-style `list_models`
list = list_models


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` inside the block, then the training mode it had before.

    >>> model = create("lenet5")
    >>> with eval_mode(model):
    ...     model.training
    False
    >>> model.training
    True
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


__all__ = ["MAX_CLASSES", "MAX_IN_CHANS", "MAX_PARAMETERS", "LeNetModule", "ModelArgumentError",
           "ModelArgumentTypeError", "ModelSpec", "Weights", "check_weights", "count_parameters",
           "create", "eval_mode", "get_spec", "get_weights", "list", "list_models",
           "list_pretrained", "load_fitting", "load_pretrained", "names", "register"]
