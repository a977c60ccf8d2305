"""Fig. 9's "1000 RBF + linear": 1,000 Gaussian units on the 28x28 digit, then a linear layer.

As in the paper, the units come in ten groups of 100, group c placed by K-means on the
training digits of class c, and the output layer (1,000 inputs and a bias, 10 outputs) is a
regularised least-squares fit (the paper's "regularized pseudo-inverse"). Our choices where it
says nothing: batch K-means (Lloyd, :data:`ITERATIONS` passes; the paper used an adaptive,
online K-means) started from 100 distinct digits of the class drawn with ``ctx.seed``; each
unit's width sigma is the root-mean-square distance of its cluster's digits to its centre
(the mean of the group's widths for a cluster left empty or with a single digit); the unit's
output is exp(-||x - c||^2 / (2 sigma^2)); the targets are one-hot, the ridge :data:`RIDGE`.
"""

from __future__ import annotations

import time

import torch

from lenet.paper.classic.base import Context, Method, Outcome, register
from lenet.paper.classic.data import digits
from lenet.paper.classic.linear import augment, one_hot, ridge

PER_CLASS = 100
ITERATIONS = 20
RIDGE = 1e-2
CHUNK = 8192  # digits per chunk of a distance computation


def squared_distances(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(N, D), (M, D) -> (N, M) squared Euclidean distances, chunked over N."""
    c2 = centres.pow(2).sum(1)
    out = torch.empty(len(x), len(centres), device=x.device)
    for start in range(0, len(x), CHUNK):
        q = x[start:start + CHUNK]
        d = torch.addmm(c2[None, :], q, centres.T, alpha=-2.0)
        out[start:start + CHUNK] = d.add_(q.pow(2).sum(1, keepdim=True)).clamp_min_(0.0)
    return out


def kmeans(x: torch.Tensor, k: int, iterations: int, generator: torch.Generator
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's K-means: centres (k, D) and widths (k,) (RMS distance of members to centre)."""
    k = min(k, len(x))
    pick = torch.randperm(len(x), generator=generator)[:k].to(x.device)
    centres = x[pick].clone()
    for _ in range(iterations):
        assign = squared_distances(x, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        moved = counts > 0  # an empty cluster keeps its centre
        centres[moved] = sums[moved] / counts[moved, None]
    d = squared_distances(x, centres)
    assign = d.argmin(1)
    near = d.gather(1, assign[:, None])[:, 0]
    counts = torch.bincount(assign, minlength=k).to(x.dtype)
    spread = torch.zeros(k, device=x.device).index_add_(0, assign, near)
    ok = counts > 1
    widths = (spread / counts.clamp_min(1)).sqrt()
    fallback = widths[ok].mean() if ok.any() else near.mean().sqrt().clamp_min(1e-3)
    widths = torch.where(ok, widths, fallback).clamp_min(1e-3)
    return centres, widths


def activations(x: torch.Tensor, centres: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    return torch.exp(-squared_distances(x, centres) / (2 * widths.pow(2)))


def _fit(ctx: Context) -> Outcome:
    torch.manual_seed(ctx.seed)
    generator = torch.Generator().manual_seed(ctx.seed)
    x, y = digits(ctx, "train")
    xt, yt = digits(ctx, "test")
    start = time.perf_counter()
    groups = [kmeans(x[y == c], PER_CLASS, ITERATIONS, generator) for c in range(10)]
    centres = torch.cat([g[0] for g in groups])
    widths = torch.cat([g[1] for g in groups])
    w = ridge(augment(activations(x, centres, widths)), one_hot(y), RIDGE)
    trained = time.perf_counter()
    scores = augment(activations(xt, centres, widths)) @ w
    done = time.perf_counter()
    m, d = centres.shape
    return Outcome(scores=scores.cpu(), labels=yt.cpu(), macs=m * d + m * 10,
                   memory=m * d + m + (m + 1) * 10, train_seconds=trained - start,
                   test_seconds=done - trained, train_digits=len(x),
                   notes=f"raw 28x28; {PER_CLASS} units per class by Lloyd K-means "
                         f"({ITERATIONS} passes, seeded start); sigma = RMS distance of the "
                         f"cluster to its centre; ridge least squares ({RIDGE:g}) on one-hot")


register(Method("rbf", "1000 RBF + linear", 3.6, _fit))
