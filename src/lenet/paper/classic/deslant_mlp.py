"""Fig. 9's "[deslant] 20x20-300-10": a 400-300-10 net on deslanted digits cut to 20x20.

The paper's digits were size-normalised into a 20x20 box before being centred in the 28x28
field; this row feeds the net that box. Our choices where the paper says nothing: the
deslanted digit's 20x20 window centred on its ink box (see
:func:`lenet.paper.classic.data.box_crop`), grey levels in [0, 1] minus the training mean;
tanh hidden units; softmax cross-entropy; plain SGD with momentum :data:`MOMENTUM`, minibatches
of :data:`BATCH`, learning rate :data:`LR` decayed along a cosine to zero over :data:`EPOCHS`
passes (or ``ctx.epochs``), PyTorch's default initialisation, all seeded by ``ctx.seed``.
"""

from __future__ import annotations

import itertools
import math
import time

import torch
from torch import nn

from lenet.paper.classic.base import Context, Method, Outcome, register
from lenet.paper.classic.data import digits

HIDDEN = 300
EPOCHS = 20
BATCH = 32
LR = 0.05
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-5


def network(inputs: int, hidden: int = HIDDEN, classes: int = 10) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, classes))


def fit_sgd(net: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int,
            generator: torch.Generator) -> None:
    """SGD with momentum on shuffled minibatches; cosine-decayed learning rate per step."""
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM,
                          weight_decay=WEIGHT_DECAY)
    steps = epochs * math.ceil(len(x) / BATCH)
    step = 0
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for start in range(0, len(x), BATCH):
            idx = order[start:start + BATCH]
            for group in opt.param_groups:
                group["lr"] = LR * 0.5 * (1 + math.cos(math.pi * step / steps))
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    net.eval()


def macs(sizes: list[int]) -> int:
    return sum(a * b for a, b in itertools.pairwise(sizes))


def _fit(ctx: Context) -> Outcome:
    torch.manual_seed(ctx.seed)
    generator = torch.Generator().manual_seed(ctx.seed)
    x, y = digits(ctx, "train", deslant=True, crop=20, size=20)
    xt, yt = digits(ctx, "test", deslant=True, crop=20, size=20)
    mean = x.mean()
    x, xt = x - mean, xt - mean
    epochs = ctx.epochs if ctx.epochs is not None else EPOCHS
    start = time.perf_counter()
    net = network(x.shape[1]).to(ctx.device)
    fit_sgd(net, x, y, epochs, generator)
    trained = time.perf_counter()
    with torch.no_grad():
        scores = net(xt)
    done = time.perf_counter()
    params = sum(p.numel() for p in net.parameters())
    return Outcome(scores=scores.float().cpu(), labels=yt.cpu(),
                   macs=macs([x.shape[1], HIDDEN, 10]), memory=params,
                   train_seconds=trained - start, test_seconds=done - trained,
                   train_digits=len(x), extra={"epochs": epochs},
                   notes=f"deslanted, 20x20 window about the ink box; tanh; cross-entropy; "
                         f"SGD momentum {MOMENTUM}, batch {BATCH}, lr {LR} cosine to 0, "
                         f"{epochs} passes")


register(Method("mlp-300-deslant", "20x20 deslanted 300-10 net", 1.6, _fit))
