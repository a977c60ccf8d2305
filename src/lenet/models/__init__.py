"""LeNet-5 and its relatives, by name: ``lenet.models.create("lenet5")``.

As in torchvision and timm, the registry (:mod:`lenet.models.registry`) is a leaf that knows no
model, and each family module registers its models into it when imported here. A new family is
one file in this folder and one import line below.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

import lenet.models.lenet5
import lenet.models.lenet1998
import lenet.models.mlp
import lenet.models.paper_nets  # noqa: F401
from lenet.models.registry import ModelSpec, count_parameters, create, get_spec, names, register


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` inside the block, then the training mode it had before."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


__all__ = ["ModelSpec", "count_parameters", "create", "eval_mode", "get_spec", "names",
           "register"]
