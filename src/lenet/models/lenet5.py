"""The LeNet-5 variants people actually meet, each exactly as its source writes it.

- ``lenet5``: ReLU + max-pool, C1 padded by 2 on a 28x28 digit (the "Paper Study" PyTorch code),
  the most common "LeNet-5" online. 61,706 parameters.
- ``lenet5-tanh``: tanh + average pool on the unpadded 28x28 digit, so C3's maps are 8x8 and S4's
  4x4 (16*4*4 = 256 inputs to C5), as in the notebook notes. 44,426 parameters.
- ``lenet5-sigmoid``: sigmoid + average pool with Xavier-uniform init (d2l's LeNet chapter).
  61,706 parameters.

The faithful 1998 network (C3 table, trainable subsampling, RBF output) lives in its own module.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from lenet.data.transforms import Preprocessing
from lenet.models.interfaces import LeNetModule
from lenet.models.pooling import max_pool2x2
from lenet.models.registry import ModelSpec, register

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
_POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class LeNet5(LeNetModule):
    """conv(6,5x5) -> act -> pool -> conv(16,5x5) -> act -> pool -> 120 -> 84 -> 10 logits.

    `in_chans` (default 1, a grey digit) and `num_classes` are timm's arguments, for
    ``lenet.models.create("lenet5", in_chans=3, num_classes=47)``."""

    def __init__(
        self,
        activation: str = "relu",
        pool: str = "max",
        c1_padding: int = 2,
        input_size: int = 28,
        num_classes: int = 10,
        init: str = "default",
        in_chans: int = 1,
    ) -> None:
        super().__init__()
        act, pool_cls = _ACTIVATIONS[activation], _POOLS[pool]
        self.c1 = nn.Conv2d(in_chans, 6, kernel_size=5, padding=c1_padding)
        self.s2 = pool_cls(kernel_size=2, stride=2)
        self.c3 = nn.Conv2d(6, 16, kernel_size=5)
        self.s4 = pool_cls(kernel_size=2, stride=2)
        side = ((input_size + 2 * c1_padding - 4) // 2 - 4) // 2  # 5 with padding, 4 without
        self.c5 = nn.Linear(16 * side * side, 120)
        self.f6 = nn.Linear(120, 84)
        self.output = nn.Linear(84, num_classes)
        self.act = act()
        self._pool_first = pool == "max"  # relu, tanh and sigmoid are all monotone
        if init == "xavier":
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.xavier_uniform_(m.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self._pool_first:
            # Max-pooling commutes with a monotone activation, act(max(v)) = max(act(v)), in
            # value and in gradient (the same element of each window gets it), so training runs
            # the activation on the 4x smaller pooled map, which saves a visible share of a
            # CPU step (BENCHMARKS.md).
            # S2's pool is max_pool2x2 (the same as self.s2, faster in bf16 channels-last).
            # Evaluation and the visualizations keep the textbook order, whose S2/S4 outputs
            # are the activated maps people expect to see.
            x = self.act(max_pool2x2(self.c1(x)))
            return self.act(self.s4(self.c3(x)))
        x = self.s2(self.act(self.c1(x)))
        return self.s4(self.act(self.c3(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).flatten(1)
        x = self.act(self.c5(x))
        x = self.act(self.f6(x))
        return self.output(x)


# Normalize(0.5, 0.5) as in the Paper Study recipe and d2l; the notes feed plain ToTensor() [0, 1].
_HALF = Preprocessing(mean=0.5, std=0.5)

register(
    ModelSpec(
        name="lenet5",
        build=partial(LeNet5, "relu", "max", c1_padding=2),
        preprocessing=_HALF,
        source="'Paper Study (Lenet-5)' PyTorch code: ReLU, max-pool, C1 padding 2",
        description="modern LeNet-5: ReLU, max-pool, softmax head",
    )
)
register(
    ModelSpec(
        name="lenet5-tanh",
        build=partial(LeNet5, "tanh", "avg", c1_padding=0),
        # The notes' transform: ToTensor then Normalize((0.5,), (0.5,)), so pixels lie in
        # [-1, 1], centred where tanh is steepest.
        preprocessing=_HALF,
        source="notebook notes: tanh, average pool, 28x28 unpadded, 16*4*4 -> 120 -> 84 -> 10",
        description="classic-style LeNet-5 with tanh and average pooling",
    )
)
register(
    ModelSpec(
        name="lenet5-sigmoid",
        build=partial(LeNet5, "sigmoid", "avg", c1_padding=2, init="xavier"),
        preprocessing=_HALF,
        source="d2l 'Convolutional Neural Networks (LeNet)': sigmoid, average pool, Xavier init",
        description="d2l's LeNet: sigmoid, average pooling, Xavier-uniform init",
    )
)
