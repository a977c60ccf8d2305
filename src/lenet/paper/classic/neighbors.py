"""Fig. 9's nearest-neighbour rows: Euclidean k-NN (raw and deslanted) and tangent distance.

k-NN keeps every training digit as a prototype and answers with the majority class of the
k = 3 nearest (squared Euclidean distance ||a||^2 + ||b||^2 - 2 a.b, one chunk of test digits
against all prototypes at a time). The scores are the votes plus a tie-break below one vote,
d_1 / d_c (the nearest distance over the nearest distance of class c among the 10 nearest,
0 when c is not among them): equal votes go to the class of the nearer prototype, and the
top-two margin grows with both the vote and the distance gap.

Tangent distance (Simard, LeCun and Denker, 1993) on 16x16 digits: the 20x20 box about each
deslanted digit, area-resampled. Deslanting is our choice: the paper names only the 16x16
size, and the tangents, a first-order approximation, cannot undo a large slant (on all 60,000
prototypes it takes the error from 1.78 % to 1.36 %). The distance is the two-sided
min over a, b of ||x + T_x a - y - T_y b||, with 7 tangents per image computed from its
Gaussian-smoothed version (sigma :data:`SIGMA`): x and y translation, rotation, scaling, the
two hyperbolic transformations and thickening. As the paper's authors did, the Euclidean
distance first keeps the :data:`PREFILTER` nearest prototypes, which the tangent distance then
re-ranks; the least-squares problems (14 unknowns each) are solved in batches, with a small
ridge :data:`SPRING` (Simard's "spring" that keeps the transformations small and the systems
well posed).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from lenet.paper.classic.base import Context, Method, Outcome, register
from lenet.paper.classic.data import digits

K = 3  # neighbours that vote
KEEP = 10  # neighbours kept for the tie-break
CHUNK_ELEMENTS = 1 << 26  # test x prototype distances per chunk (256 MB of float32)
TANGENTS = 7
SIGMA = 0.7  # pixels: smoothing before the tangents' derivatives (16x16 digits)
PREFILTER = 100  # Euclidean nearest prototypes re-ranked by tangent distance
SPRING = 1e-2  # ridge on the 14 transformation coefficients, relative to the mean tangent norm
TD_CHUNK = 256  # test digits per batch of tangent-distance solves
DESLANT = True  # tangent distance on deslanted digits (our choice, see the module doc)


def nearest(queries: torch.Tensor, prototypes: torch.Tensor, k: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared Euclidean distances (N, k), ascending, and prototype indices (N, k)."""
    k = min(k, len(prototypes))
    p2 = prototypes.pow(2).sum(1)
    rows = max(1, CHUNK_ELEMENTS // max(1, len(prototypes)))
    dists, index = [], []
    for start in range(0, len(queries), rows):
        q = queries[start:start + rows]
        d = torch.addmm(p2[None, :], q, prototypes.T, alpha=-2.0)
        d += q.pow(2).sum(1, keepdim=True)
        top = torch.topk(d, k, dim=1, largest=False, sorted=True)
        dists.append(top.values.clamp_min_(0.0))
        index.append(top.indices)
    return torch.cat(dists), torch.cat(index)


def vote_scores(dist: torch.Tensor, labels: torch.Tensor, k: int = K, classes: int = 10
                ) -> torch.Tensor:
    """(N, classes) votes of the k nearest plus the tie-break d_1 / d_c (see the module doc).

    ``dist`` (N, M >= k) are ascending squared distances, ``labels`` (N, M) their classes.
    """
    n = len(dist)
    votes = torch.zeros(n, classes, device=dist.device)
    votes.scatter_add_(1, labels[:, :k], torch.ones_like(labels[:, :k], dtype=votes.dtype))
    d = dist.sqrt()
    best = torch.full((n, classes), float("inf"), device=dist.device)
    best.scatter_reduce_(1, labels, d, reduce="amin")
    tie = torch.where(best.isinf(), torch.zeros_like(best),
                      d[:, :1] / best.clamp_min(torch.finfo(best.dtype).tiny))
    tie = torch.where(best == 0, torch.ones_like(tie), tie)  # an exact copy: d_1 = d_c = 0
    return votes + 0.99 * tie.clamp(0.0, 1.0)


def smooth(images: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    """(N, H, W) Gaussian blur, separable, zero outside the field."""
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    g = torch.exp(-t * t / (2 * sigma * sigma))
    g = g / g.sum()
    x = images[:, None]
    x = F.conv2d(x, g.view(1, 1, 1, -1), padding=(0, radius))
    x = F.conv2d(x, g.view(1, 1, -1, 1), padding=(radius, 0))
    return x[:, 0]


def tangents(images: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    """(N, H, W) -> (N, 7, H*W): the 7 tangent vectors of each image.

    Coordinates are measured from the image centre in units of half the side, so the
    rotation, scaling and hyperbolic tangents have norms comparable to the translations'.
    """
    n, h, w = images.shape
    s = smooth(images, sigma)
    gx = torch.zeros_like(s)
    gy = torch.zeros_like(s)
    gx[:, :, 1:-1] = (s[:, :, 2:] - s[:, :, :-2]) / 2
    gy[:, 1:-1, :] = (s[:, 2:, :] - s[:, :-2, :]) / 2
    xs = (torch.arange(w, dtype=s.dtype, device=s.device) - (w - 1) / 2) / (w / 2)
    ys = (torch.arange(h, dtype=s.dtype, device=s.device) - (h - 1) / 2) / (h / 2)
    x, y = xs[None, None, :], ys[None, :, None]
    t = torch.stack([gx, gy, y * gx - x * gy, x * gx + y * gy, x * gx - y * gy,
                     y * gx + x * gy, gx * gx + gy * gy], dim=1)
    return t.reshape(n, TANGENTS, h * w)


def tangent_distance(x: torch.Tensor, tx: torch.Tensor, y: torch.Tensor, ty: torch.Tensor,
                     spring: float) -> torch.Tensor:
    """Two-sided squared tangent distances between each x and its K candidates y.

    x (B, D), tx (B, 7, D); y (B, K, D), ty (B, K, 7, D) -> (B, K). With r = x - y and
    M = [T_x, -T_y], the minimum over c of ||r + M c||^2 + spring ||c||^2 is
    ||r||^2 - v^T (M^T M + spring I)^-1 v with v = M^T r.
    """
    b, k, _ = y.shape
    r = x[:, None, :] - y  # (B, K, D)
    gxx = (tx @ tx.transpose(1, 2))[:, None].expand(b, k, TANGENTS, TANGENTS)
    gyy = ty @ ty.transpose(2, 3)
    gxy = -torch.einsum("bid,bkjd->bkij", tx, ty)
    top = torch.cat([gxx, gxy], dim=3)
    bottom = torch.cat([gxy.transpose(2, 3), gyy], dim=3)
    g = torch.cat([top, bottom], dim=2)  # (B, K, 14, 14)
    g = g + spring * torch.eye(2 * TANGENTS, dtype=g.dtype, device=g.device)
    v = torch.cat([torch.einsum("bid,bkd->bki", tx, r),
                   -torch.einsum("bkid,bkd->bki", ty, r)], dim=2)  # (B, K, 14)
    coef = torch.linalg.solve(g, v.unsqueeze(-1)).squeeze(-1)
    return (r.pow(2).sum(2) - (v * coef).sum(2)).clamp_min(0.0)


def tangent_rerank(queries: torch.Tensor, prototypes: torch.Tensor, side: int,
                   proto_tangents: torch.Tensor, prefilter: int = PREFILTER,
                   spring: float = SPRING) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean prefilter, then tangent distance: (N, prefilter) ascending distances, indices."""
    _, cand = nearest(queries, prototypes, prefilter)
    q_tangents = tangents(queries.view(-1, side, side))
    dists, index = [], []
    for start in range(0, len(queries), TD_CHUNK):
        c = cand[start:start + TD_CHUNK]
        d = tangent_distance(queries[start:start + TD_CHUNK], q_tangents[start:start + TD_CHUNK],
                             prototypes[c], proto_tangents[c], spring)
        order = d.argsort(dim=1)
        dists.append(d.gather(1, order))
        index.append(c.gather(1, order))
    return torch.cat(dists), torch.cat(index)


def spring_for(proto_tangents: torch.Tensor) -> float:
    """:data:`SPRING` times the mean squared norm of a tangent (scale-free)."""
    return SPRING * float(proto_tangents.pow(2).sum(2).mean())


def td_macs(n_train: int, d: int, prefilter: int) -> int:
    """Per digit: the Euclidean prefilter, the digit's 7 tangents (~ 10 MACs a pixel each, with
    the smoothing), then per candidate the cross Gram T_x^T T_y, v = M^T r, ||r||^2 and a 14x14
    solve (~ 14^3 / 3 + 2 * 14^2)."""
    solve = 14 ** 3 // 3 + 2 * 14 * 14
    per_candidate = d * (TANGENTS * TANGENTS + 2 * TANGENTS + 1) + solve
    return n_train * d + TANGENTS * 10 * d + prefilter * per_candidate


def _knn_outcome(ctx: Context, deslant: bool) -> Outcome:
    torch.manual_seed(ctx.seed)
    x, y = digits(ctx, "train", deslant=deslant)
    xt, yt = digits(ctx, "test", deslant=deslant)
    start = time.perf_counter()
    dist, idx = nearest(xt, x, KEEP)
    scores = vote_scores(dist, y[idx])
    done = time.perf_counter()
    n, d = x.shape
    return Outcome(scores=scores.cpu(), labels=yt.cpu(), macs=n * d, memory=n * d,
                   train_seconds=0.0, test_seconds=done - start, train_digits=n,
                   notes=f"k = {K}, every training digit a prototype, 28x28 grey levels in "
                         f"[0, 1]{', deslanted' * deslant}; ties by the nearest distance")


def _fit_td(ctx: Context) -> Outcome:
    torch.manual_seed(ctx.seed)
    side = 16
    x, y = digits(ctx, "train", deslant=DESLANT, crop=20, size=side)
    xt, yt = digits(ctx, "test", deslant=DESLANT, crop=20, size=side)
    start = time.perf_counter()
    proto_tangents = tangents(x.view(-1, side, side))
    spring = spring_for(proto_tangents)
    trained = time.perf_counter()
    dist, idx = tangent_rerank(xt, x, side, proto_tangents, PREFILTER, spring)
    scores = vote_scores(dist[:, :KEEP], y[idx[:, :KEEP]])
    done = time.perf_counter()
    n, d = x.shape
    return Outcome(scores=scores.cpu(), labels=yt.cpu(), macs=td_macs(n, d, PREFILTER),
                   memory=n * d * (1 + TANGENTS), train_seconds=trained - start,
                   test_seconds=done - trained, train_digits=n,
                   notes=f"16x16 (the 20x20 box about the ink, area-resampled)"
                         f"{', deslanted' * DESLANT}; two-sided, 7 "
                         f"tangents from a sigma {SIGMA} px blur; Euclidean prefilter to "
                         f"{PREFILTER}, spring {SPRING} x mean tangent norm^2; k = {K}")


register(Method("knn", "k-NN Euclidean", 5.0, lambda ctx: _knn_outcome(ctx, False)))
register(Method("knn-deslant", "k-NN Euclidean, deslanted", 2.4,
                lambda ctx: _knn_outcome(ctx, True)))
register(Method("tangent-distance", "tangent distance k-NN, 16x16", 1.1, _fit_td))
