"""Fig. 9's "40 PCA + quadratic": a degree-2 polynomial classifier on 40 principal components.

Each 28x28 digit (grey levels in [0, 1], not deslanted) is centred on the training mean and
projected on the 40 leading principal components of the training digits; each component is
divided by its standard deviation (our choice: the products z_i z_j then have comparable
scales, so one ridge penalty suits them all). The classifier is linear in the 861 features
[z (40), z_i z_j for i <= j (820), 1] and is fitted by ridge least squares on one-hot targets
(the paper's polynomial classifiers are least-squares fits; it does not say whether the squares
z_i^2 are kept, or the penalty). The scores are the ten outputs.
"""

from __future__ import annotations

import time

import torch

from lenet.paper.classic.base import Context, Method, Outcome, register
from lenet.paper.classic.data import digits
from lenet.paper.classic.linear import gram, one_hot, ridge

COMPONENTS = 40
RIDGE = 1.0


def principal_components(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training mean (D,) and whitening projection (D, k): z = (x - mean) @ P, var(z_i) = 1."""
    mean = x.mean(0)
    g, _ = gram(x - mean)
    values, vectors = torch.linalg.eigh(g / max(1, len(x) - 1))  # ascending
    values, vectors = values.flip(0)[:k], vectors.flip(1)[:, :k]
    scale = values.clamp_min(torch.finfo(values.dtype).eps).rsqrt()
    return mean, (vectors * scale).to(torch.float32)


def quadratic(z: torch.Tensor) -> torch.Tensor:
    """(N, k) -> (N, k + k(k+1)/2 + 1): z, every z_i z_j with i <= j, and the constant 1."""
    i, j = torch.triu_indices(z.shape[1], z.shape[1], device=z.device)
    return torch.cat([z, z[:, i] * z[:, j], torch.ones(len(z), 1, device=z.device)], 1)


def features(x: torch.Tensor, mean: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    return quadratic((x - mean) @ proj)


def macs(d: int, k: int, classes: int = 10) -> int:
    """Projection d*k, the k(k+1)/2 products, and the linear layer on them."""
    products = k * (k + 1) // 2
    return d * k + products + (k + products + 1) * classes


def memory(d: int, k: int, classes: int = 10) -> int:
    """The mean, the projection and the linear layer's weights."""
    return d + d * k + (k + k * (k + 1) // 2 + 1) * classes


def _fit(ctx: Context) -> Outcome:
    torch.manual_seed(ctx.seed)
    x, y = digits(ctx, "train")
    xt, yt = digits(ctx, "test")
    start = time.perf_counter()
    k = min(COMPONENTS, x.shape[1], len(x))
    mean, proj = principal_components(x, k)
    w = ridge(features(x, mean, proj), one_hot(y), RIDGE)
    trained = time.perf_counter()
    scores = features(xt, mean, proj) @ w
    done = time.perf_counter()
    d = x.shape[1]
    return Outcome(scores=scores.cpu(), labels=yt.cpu(), macs=macs(d, k), memory=memory(d, k),
                   train_seconds=trained - start, test_seconds=done - trained,
                   train_digits=len(x),
                   notes=f"raw 28x28; {k} components, each scaled to unit variance; features "
                         f"z, z_i z_j (i <= j), 1; ridge least squares ({RIDGE:g}) on one-hot "
                         "targets")


register(Method("pca-quadratic", "40 PCA + quadratic", 3.3, _fit))
