"""LeNet-5 and its relatives, by name: ``lenet.models.create("lenet5", pretrained=True)``.

As in torchvision and timm, the registry (:mod:`lenet.models.registry`) is a leaf that knows no
model, and each family module registers its models into it when imported here. A new family is
one file in this folder and one import line below. :mod:`lenet.models.hub` holds the pretrained
weights that ship in the package and checks that a weights file fits the model it names; what
any set of weights is, is :class:`lenet.models.metadata.WeightsMeta`.
"""

import builtins
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

import lenet.models.lenet5
import lenet.models.lenet1998
import lenet.models.mlp
import lenet.models.paper_nets  # noqa: F401
from lenet.errors import ConfigError
from lenet.models.hub import Weights, check_weights, get_weights, list_pretrained, load_pretrained
from lenet.models.registry import ModelSpec, count_parameters, get_spec, names, register


def create(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """A model by registry name, freshly initialized, or with the bundled weights of that name
    (``pretrained=True``; see :func:`list_models` with ``pretrained=True``). Keyword arguments
    go to the model's constructor (``num_classes=47``), as in timm; with ``pretrained=True``
    they must leave every layer's shape as the weights have it. The loaded weights' metadata
    (recorded accuracy, preprocessing, classes) is ``model.pretrained_weights``.
    """
    spec = get_spec(name)
    try:
        model = spec.build(**kwargs)
    except TypeError as e:
        raise ConfigError(f"model {name!r}: {e}; see its class in lenet.models for the "
                          "arguments it takes") from None
    if pretrained:
        load_pretrained(name, model)
        # torch types a module's attributes as tensors or modules; this one is neither.
        model.pretrained_weights = get_weights(name)  # type: ignore[assignment]
    return model


def list_models(pretrained: bool = False) -> builtins.list[str]:
    """Every registered model's name; with ``pretrained=True``, those with bundled weights."""
    return list_pretrained() if pretrained else names()


# `lenet.models.list()`, the short spelling beside torchvision-style `list_models`
list = list_models


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` inside the block, then the training mode it had before."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


__all__ = ["ModelSpec", "Weights", "check_weights", "count_parameters", "create", "eval_mode",
           "get_spec", "get_weights", "list", "list_models", "list_pretrained", "load_pretrained",
           "names", "register"]
