"""What a model (or one of its layers) may offer beyond ``forward``, declared once.

lenet's tools never guess at attribute names: the trainer's optimizer, ``lenet summary`` and
the pictures ask for these protocols with ``isinstance`` and fall back to plain PyTorch behaviour
when a module does not offer them. A new model that implements one gets the feature for free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import nn

if TYPE_CHECKING:
    from lenet.models.hub import Weights


class LeNetModule(nn.Module):
    """The base of every lenet model: an ``nn.Module`` that says which bundled weights it was
    loaded with (``pretrained_weights``: None for a freshly initialized model).

    :func:`lenet.models.create` returns this type, so that ``model.pretrained_weights`` type
    checks (torch types a plain module's unknown attributes as tensors or modules). It adds no
    parameter and no buffer: state-dict keys are those of the layers each family defines.
    """

    # A class attribute, not a module attribute: nn.Module.__setattr__ keeps a per-instance
    # value in the instance __dict__, outside the state dict.
    pretrained_weights: Weights | None = None


@runtime_checkable
class CountsConnections(Protocol):
    """A layer that counts its own connections, as the 1998 paper does (``lenet summary``).

    The sparse C3 and the trainable subsampling layers share weights in ways the generic count
    (weights per output unit) does not see."""

    def connections(self, output_shape: tuple[int, ...]) -> int: ...


@runtime_checkable
class SparseConvolution(Protocol):
    """A convolution whose input maps are wired by a connection table (the 1998 C3)."""

    def dense_weight(self) -> torch.Tensor:
        """The (out, in, kh, kw) kernels, zero where the table has no link."""
        ...

    def mask(self) -> torch.Tensor:
        """The (out, in) 0/1 connection table."""
        ...


@runtime_checkable
class CurvatureModel(Protocol):
    """A model split at the point where SDLM estimates curvature (:mod:`lenet.training.optim.sdlm`):
    the features below its output layer, the output layer itself, and the layers of the
    features in order for the paper's squared-weight back-propagation."""

    def curvature_features(self, x: torch.Tensor) -> torch.Tensor: ...

    def curvature_head(self, features: torch.Tensor) -> torch.Tensor: ...

    def curvature_layers(self) -> list[nn.Module]: ...


@runtime_checkable
class RBFOutput(Protocol):
    """A model whose output units are Euclidean RBFs with one code per class (the 1998
    network's Fig. 3 bitmaps), drawn by ``lenet report``."""

    def rbf_bitmaps(self) -> torch.Tensor:
        """The codes as (classes, height, width) images."""
        ...
