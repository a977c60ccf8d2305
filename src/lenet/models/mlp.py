"""Fully connected baselines on the flattened 28x28 digit.

``mlp`` is 784-300-100-10 with ReLU, the usual modern baseline. The paper's own fully connected
nets (Fig. 9) register further names from the same class.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from lenet.data.transforms import Preprocessing
from lenet.models.interfaces import LeNetModule
from lenet.models.registry import ModelSpec, register


class MLP(LeNetModule):
    def __init__(self, hidden: tuple[int, ...] = (300, 100), activation: str = "relu",
                 in_features: int = 28 * 28, num_classes: int = 10) -> None:
        super().__init__()
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), act()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


register(
    ModelSpec(
        name="mlp",
        build=partial(MLP, (300, 100)),
        # MNIST's own mean and std, the usual choice for an MLP baseline.
        preprocessing=Preprocessing(mean=0.1307, std=0.3081),
        source="baseline: 784-300-100-10 with ReLU",
        description="multilayer perceptron baseline",
    )
)
