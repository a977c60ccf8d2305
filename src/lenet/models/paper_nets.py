"""The 1998 paper's other MNIST networks (Fig. 9, Section III-C), for ``lenet paper``.

Choices where the paper leaves a detail open:

- All of them read the paper's input scaling (ink 1.175, background -0.1).
- ``lenet1``: the digit is down-sampled to 16x16 and centred in 28x28. C1 4@24x24 (5x5), S2 4@12x12,
  C3 12@8x8 (5x5), S4 12@4x4, 10 outputs fully connected to the 192 S4 states. Subsampling is the
  1998 kind (trainable coefficient and bias per map) and each C3 map sees one or two S2 maps, as
  in LeNet-1's original description (LeCun et al., NIPS 1990): maps 0-3 one map each, maps 4-11
  the pairs in :data:`LENET1_TABLE` (our choice of pairs). That gives 2,578 parameters and
  98,442 connections, the paper's "about 2,600" (and exactly the 1990 paper's counts).
- ``lenet4``: 32x32 input; C1 4@28x28; S2 8@14x14, each C1 map subsampled twice with separate
  coefficients ("connected in pairs"); C3 16@10x10, each map seeing three S2 maps
  (:data:`LENET4_TABLE`, our choice); S4 16@5x5; 120 units fully connected (a 5x5 convolution
  over S4); 10 outputs. 262,306 connections matches the paper's "about 260,000"; its
  "about 17,000 free parameters" cannot hold with 120 units fully connected to 16 5x5 maps
  (48,120 weights alone), so this net has 50,698.
- Both use the paper's squashing 1.7159 tanh(2a/3) and ±2.4/fan-in init, but ordinary linear
  output units trained with cross-entropy (the paper does not say which output code and loss
  these used).
- The fully connected nets 28x28-300-10, -1000-10, -300-100-10, -500-150-10 and the linear
  classifier: :class:`lenet.models.mlp.MLP` with tanh hidden units and PyTorch's default init,
  cross-entropy on the outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

import torch

from lenet.data.transforms import scaled
from lenet.models.interfaces import LeNetModule
from lenet.models.lenet1998 import SparseConv2d, Subsampling, paper_conv, paper_linear, squash
from lenet.models.mlp import MLP
from lenet.models.registry import ModelSpec, register

LENET1_TABLE: tuple[tuple[int, ...], ...] = (
    (0,), (1,), (2,), (3,),
    (0, 1), (1, 2), (2, 3), (3, 0), (0, 2), (1, 3), (0, 1), (2, 3),
)
LENET4_TABLE: tuple[tuple[int, ...], ...] = tuple(
    tuple((i + d) % 8 for d in (0, 1, 2)) for i in range(8)
) + tuple(tuple((i + d) % 8 for d in (0, 3, 5)) for i in range(8))

PAPER_INPUT = scaled(-0.1, 1.175)


class LeNet1(LeNetModule):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = paper_conv(1, 4, 5)
        self.s2 = Subsampling(4)
        self.c3 = SparseConv2d(4, LENET1_TABLE, 5)
        self.s4 = Subsampling(12)
        self.output = paper_linear(12 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = squash(self.s2(squash(self.c1(x))))
        x = squash(self.s4(squash(self.c3(x))))
        return self.output(x.flatten(1))


class LeNet4(LeNetModule):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = paper_conv(1, 4, 5)
        self.s2 = Subsampling(8, source=(0, 0, 1, 1, 2, 2, 3, 3))
        self.c3 = SparseConv2d(8, LENET4_TABLE, 5)
        self.s4 = Subsampling(16)
        self.c5 = paper_conv(16, 120, 5)
        self.output = paper_linear(120, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = squash(self.s2(squash(self.c1(x))))
        x = squash(self.s4(squash(self.c3(x))))
        return self.output(squash(self.c5(x)).flatten(1))


register(ModelSpec(
    name="lenet1", build=LeNet1,
    preprocessing=replace(PAPER_INPUT, pad=6, resize=16),
    source="LeCun et al. 1998 Sec. III-C / LeCun et al. 1990: 16x16 digit in 28x28, 4-12 maps",
    description="LeNet-1 (2,578 parameters), paper: 1.7 % test error", tags=("paper",)))
register(ModelSpec(
    name="lenet4", build=LeNet4, preprocessing=replace(PAPER_INPUT, pad=2),
    source="LeCun et al. 1998 Sec. III-C: 4-8-16-16 maps, 120 units, 10 outputs",
    description="LeNet-4, paper: 1.1 % test error", tags=("paper",)))

_MLPS = {
    "mlp-300": ((300,), "28x28-300-10, paper: 4.7 % (3.6 % distorted)"),
    "mlp-1000": ((1000,), "28x28-1000-10, paper: 4.5 % (3.8 % distorted)"),
    "mlp-300-100": ((300, 100), "28x28-300-100-10, paper: 3.05 % (2.5 % distorted)"),
    "mlp-500-150": ((500, 150), "28x28-500-150-10, paper: 2.95 % (2.45 % distorted)"),
    "linear": ((), "linear classifier on the 784 pixels, paper: 12.0 %"),
}


def _mlp_builder(hidden: tuple[int, ...]) -> Callable[..., MLP]:
    return partial(MLP, hidden, activation="tanh")


for _name, (_hidden, _description) in _MLPS.items():
    register(ModelSpec(
        name=_name, build=_mlp_builder(_hidden), preprocessing=PAPER_INPUT,
        source="LeCun et al. 1998 Fig. 9: " + (
            "fully connected net, tanh hidden units" if _hidden else "linear classifier"),
        description=_description, tags=("paper",)))
