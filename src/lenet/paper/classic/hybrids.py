"""LeNet-4 hybrids (Fig. 9): with k-NN or local learning instead of its last layer, and boosted.

The nets are LeNet-4 trained with its recipe (``configs/lenet4.yaml``) by the trainer
(:func:`lenet.training.loop.fit`) into ``lenet4-seed<S>`` (``lenet4-distort-seed<S>`` with
distortions) under ``ctx.shared`` (``lenet paper``'s ``classic/shared/``, so the k-NN and
local-learning rows read one net) or ``ctx.out``; a finished run with the same config found
there is reused, an unfinished one resumed. ``ctx.epochs``, ``ctx.train_subset`` and
``ctx.device`` apply to every net trained here.

Choices the paper leaves open (ours):

- Features: the 120 states of LeNet-4's penultimate layer (the input of its output layer).
- k-NN: k = 3, Euclidean; scores = votes + a tie-break < 1 from how close each class's
  neighbours are (:func:`vote_scores`), so the majority decides and the margin is graded.
- Local learning (Bottou & Vapnik 1992): for each test digit, ridge least squares from the
  features of its K = 200 nearest training digits (coordinates centred on the test digit, plus a
  free bias) to their one-hot labels, ridge lambda on the weights = 0.1 (:data:`RIDGE`, untuned)
  times the neighbourhood's mean squared feature (scale-free); the fit's value at the test
  digit is its 10 scores.
- Boosting (Drucker, Schapire and Simard 1993): net 1 is LeNet-4 trained with distortions;
  net 2 learns a set filtered by net 1 from fresh distorted training digits, half of them
  digits net 1 gets wrong, half right; net 3 learns fresh distorted digits on which nets 1 and 2
  disagree. Sets 2 and 3 have as many digits as net 1's training set, or as many as
  :data:`DRAWS` candidates per training digit yield (the extra records how many). Nets 2 and 3
  train on their fixed sets with net 1's recipe (same passes, optimizer and schedule). The
  answer sums the three nets' softmax outputs (the paper adds outputs; ours are unbounded
  linear units, so we bound them first). Cost: all three nets on every digit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lenet import data
from lenet.analysis.summary import summarize
from lenet.config import TrainConfig, resolve
from lenet.data.distort import Distortion
from lenet.data.transforms import Preprocessing
from lenet.models import create, get_spec, weights
from lenet.paper.classic.base import Context, Method, Outcome, register
from lenet.storage import rundir
from lenet.training.loop import fit
from lenet.training.optim import make_optimizer
from lenet.training.schedule import Schedule

K_NEIGHBOURS = 3
K_LOCAL = 200
RIDGE = 0.1  # local learning: lambda on the weights (not the bias), times the mean variance
DRAWS = 40  # boosting: at most this many distorted candidates per training digit, per filter
FEATURES = 120


# --------------------------------------------------------------------------- the nets
def lenet4_config(ctx: Context, distort: bool = False) -> TrainConfig:
    """LeNet-4's recipe with this context's overrides, into ``lenet4[-distort]-seed<S>`` under
    ``ctx.shared`` (or ``ctx.out``)."""
    name = f"lenet4{'-distort' * distort}-seed{ctx.seed}"
    folder = ctx.shared or ctx.out
    overrides = {"seed": ctx.seed, "epochs": ctx.epochs, "train_subset": ctx.train_subset or 0,
                 "test_subset": ctx.test_subset or 0, "device": ctx.device,
                 "data_dir": ctx.data_dir, "distort": distort or None,
                 "run_dir": str(folder / name), "tensorboard": False}
    return resolve("lenet4", overrides)


def trained_lenet4(ctx: Context, distort: bool = False) -> tuple[nn.Module, float]:
    """The trained net and its training seconds: reused if its run finished with this config."""
    cfg = lenet4_config(ctx, distort)
    with _TRAINING:  # two rows on worker threads (paper -j) share one net: train it once
        return _trained(ctx, cfg, distort)


_TRAINING = threading.Lock()


def _trained(ctx: Context, cfg: TrainConfig, distort: bool) -> tuple[nn.Module, float]:
    assert cfg.run_dir is not None  # lenet4_config names it
    run_dir, wanted = Path(cfg.run_dir), cfg.to_dict()
    if not cfg.threads:  # 0: the free cores, which the run saves as the number it chose
        del wanted["threads"]
    saved = rundir.read_config(run_dir) if (run_dir / rundir.CONFIG).is_file() else {}
    same = {k: saved.get(k) for k in wanted} == wanted  # the trainer adds keys (run_id)
    if not (same and (run_dir / rundir.WEIGHTS).is_file()):
        ctx.log(f"training LeNet-4{' with distortions' * distort} into {run_dir}")
        # This row's own folder: an unfinished run of this config is resumed, a run of
        # another config (other passes or subset) replaced.
        fit(cfg, log=ctx.log, progress=False, resume=same, overwrite=not same)
    else:
        ctx.log(f"reusing the finished LeNet-4 run {run_dir}")
    seconds = sum(float(r["seconds"]) for r in rundir.read_metrics(run_dir))
    model, _ = weights.load_model(run_dir, ctx.device)
    return model, seconds


def _prep() -> Preprocessing:
    return get_spec("lenet4").preprocessing


@torch.no_grad()
def outputs(model: nn.Module, images: torch.Tensor, chunk: int = 2000) -> torch.Tensor:
    """uint8 or float [0, 255] (N, 28, 28) digits -> (N, 10) net outputs."""
    prep, model = _prep(), model.eval()
    return torch.cat([model(prep(part)) for part in images.split(chunk)])


@torch.no_grad()
def features(model: nn.Module, images: torch.Tensor, chunk: int = 2000) -> torch.Tensor:
    """(N, 28, 28) digits -> (N, 120): what LeNet-4's output layer reads."""
    got: list[torch.Tensor] = []
    output_layer = model.get_submodule("output")
    hook = output_layer.register_forward_pre_hook(lambda _m, inputs: got.append(inputs[0]))
    try:
        outputs(model, images, chunk)
    finally:
        hook.remove()
    return torch.cat(got).flatten(1)


def net_cost(with_output: bool = True) -> tuple[int, int]:
    """(connections, parameters) of LeNet-4, without its output layer if asked."""
    rows = [r for r in summarize(create("lenet4"), _prep().input_size)
            if with_output or r.name != "output"]
    return sum(r.connections for r in rows), sum(r.params for r in rows)


def _images(ctx: Context, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = data.load("mnist", split, ctx.data_dir)
    n = ctx.train_subset if split == "train" else ctx.test_subset
    return x[:n].to(ctx.device), y[:n].to(ctx.device)


# --------------------------------------------------------------------------- k-NN, local
def nearest(queries: torch.Tensor, refs: torch.Tensor, k: int, chunk: int = 1000
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared Euclidean distances (N, k) and indices (N, k) of each query's k nearest refs."""
    ref_sq = (refs * refs).sum(1)
    dists, idxs = [], []
    for q in queries.split(chunk):
        d = ref_sq[None, :] - 2 * q @ refs.T + (q * q).sum(1, keepdim=True)
        top = d.topk(k, dim=1, largest=False)
        dists.append(top.values.clamp_min_(0))
        idxs.append(top.indices)
    return torch.cat(dists), torch.cat(idxs)


def vote_scores(dist: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """(N, k+1) sorted distances and labels of the k+1 nearest -> (N, 10) scores: each of the
    k nearest votes 1 + (1 - d_i / d_{k+1}) / k for its class. The bonus sums to less than 1,
    so the majority decides; it breaks ties and grades the margin toward closer neighbours."""
    d = dist.sqrt()
    bonus = (1 - d[:, :k] / d[:, k:].clamp_min(1e-12)).clamp_min(0) / k
    scores = torch.zeros(len(d), 10, device=d.device)
    return scores.scatter_add_(1, labels[:, :k], 1 + bonus)


def local_scores(queries: torch.Tensor, refs: torch.Tensor, ref_labels: torch.Tensor,
                 k: int = K_LOCAL, ridge: float = RIDGE, chunk: int = 250) -> torch.Tensor:
    """Local learning: per query, ridge least squares on its k nearest refs, centred on the
    query, from features (+ bias) to one-hot labels; the bias is the fit's value there."""
    _, idx = nearest(queries, refs, k)
    onehot = F.one_hot(ref_labels, 10).double()
    penalty = torch.ones(refs.shape[1] + 1, dtype=torch.float64, device=refs.device)
    penalty[-1] = 0.0  # the bias is free
    out = []
    for q, i in zip(queries.split(chunk), idx.split(chunk), strict=True):
        a = (refs[i] - q[:, None, :]).double()  # (B, k, F)
        a = torch.cat([a, torch.ones_like(a[..., :1])], dim=2)
        gram = a.transpose(1, 2) @ a
        scale = gram.diagonal(dim1=1, dim2=2)[:, :-1].mean(1)  # k x mean squared feature
        gram += ridge * scale[:, None, None] * torch.diag(penalty)
        w = torch.linalg.solve(gram, a.transpose(1, 2) @ onehot[i])  # (B, F+1, 10)
        out.append(w[:, -1, :].float())
    return torch.cat(out)


def _feature_row(ctx: Context, local: bool) -> Outcome:
    model, train_seconds = trained_lenet4(ctx)
    x, y = _images(ctx, "train")
    t0 = time.perf_counter()
    refs = features(model, x)
    train_seconds += time.perf_counter() - t0
    xt, yt = _images(ctx, "test")
    t0 = time.perf_counter()
    queries = features(model, xt)
    if local:
        scores = local_scores(queries, refs, y)
    else:
        dist, idx = nearest(queries, refs, K_NEIGHBOURS + 1)
        scores = vote_scores(dist, y[idx], K_NEIGHBOURS)
    test_seconds = time.perf_counter() - t0
    conn, params = net_cost(with_output=False)
    search = len(refs) * FEATURES
    fit = K_LOCAL * (FEATURES + 1) * (FEATURES + 1 + 10) + (FEATURES + 1) ** 3 // 3
    macs = conn + search + (fit if local else 0)
    what = (f"local learning: ridge least squares (lambda {RIDGE:g}) on the {K_LOCAL} nearest"
            if local else f"{K_NEIGHBOURS}-NN, Euclidean")
    notes = (f"LeNet-4 (recipe lenet4, {_epochs(ctx)}) features: the 120 penultimate states; "
             f"{what}, over {len(refs):,} training digits")
    return Outcome(scores.float().cpu(), yt.cpu(), macs, params + refs.numel(), train_seconds,
                   test_seconds, len(refs), notes)


def _epochs(ctx: Context) -> str:
    return f"{ctx.epochs} passes" if ctx.epochs else "its 20 passes"


# --------------------------------------------------------------------------- boosting
def mixed_filter(wrong: torch.Tensor, n: int) -> torch.Tensor:
    """Indices into a stream of candidates (``wrong``: net 1 misclassifies them), in stream
    order: the first ``n // 2`` wrong ones and as many right ones; fewer of both when the
    stream holds fewer than ``n // 2`` wrong ones. Drucker's coin flips between "next wrong"
    and "next right" give the same half-and-half mix of a random stream."""
    bad = wrong.nonzero().flatten()
    good = (~wrong).nonzero().flatten()
    half = min(n // 2, len(bad), len(good))
    return torch.cat([bad[:half], good[:half]]).sort().values


def disagree_filter(pred1: torch.Tensor, pred2: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` candidates on which the two nets' answers differ."""
    return (pred1 != pred2).nonzero().flatten()[:n]


def filtered_set(train_x: torch.Tensor, train_y: torch.Tensor, n: int,
                 pick: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
                 gen: torch.Generator, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Fresh distorted training digits, ``chunk`` at a time; ``pick(images, labels, need)``
    returns the indices of at most ``need`` to keep. Stops when ``n`` are kept or
    ``DRAWS * len(train_x)`` were drawn. ``gen`` lives on the digits' device."""
    distort, device = Distortion(), train_x.device
    kept_x, kept_y, have = [], [], 0
    for _ in range(0, DRAWS * len(train_x), chunk):
        idx = torch.randint(len(train_x), (chunk,), generator=gen, device=device)
        # Stored as uint8 before judging, so the filter sees what the next net will learn.
        images = distort(train_x[idx], gen).round_().to(torch.uint8)
        keep = pick(images, train_y[idx], n - have)
        kept_x.append(images[keep])
        kept_y.append(train_y[idx][keep])
        have += len(keep)
        if have >= n:
            break
    return torch.cat(kept_x), torch.cat(kept_y)


def train_net(images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig, seed: int,
              log: Callable[[str], None]) -> nn.Module:
    """LeNet-4 on a fixed set of uint8 digits with ``cfg``'s passes, batch, optimizer and
    schedule (a compact loop: the trainer reads its digits from the dataset, not a tensor)."""
    torch.manual_seed(seed)
    model = create("lenet4").to(images.device)
    prep, opt = _prep(), make_optimizer(cfg, model)
    batches = -(-len(labels) // cfg.batch_size)
    schedule, gen, step = Schedule(cfg, batches), torch.Generator().manual_seed(seed), 0
    model.train()
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(labels), generator=gen).to(images.device)
        for idx in perm.split(cfg.batch_size):
            for group in opt.param_groups:
                group["lr"] = schedule.lr(epoch, step)
            loss = F.cross_entropy(model(prep(images[idx])), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        log(f"  pass {epoch + 1}/{cfg.epochs}: loss {loss.item():.4f}")
    return model.eval()


def _boost_nets(ctx: Context, net1: nn.Module, cfg: TrainConfig, log: Callable[[str], None]
                ) -> tuple[list[nn.Module], dict]:
    """Nets 1, 2 and 3, and the sizes of the filtered sets. A filter that finds nothing in
    its draws (net 1 never wrong, or nets 1 and 2 never disagreeing) leaves its net out."""
    x, y = _images(ctx, "train")
    n, gen = len(y), torch.Generator(device=x.device).manual_seed(ctx.seed)
    nets = [net1]

    def wrong1(images: torch.Tensor, labels: torch.Tensor, need: int) -> torch.Tensor:
        return mixed_filter(outputs(net1, images).argmax(1) != labels, need)

    def disagree(images: torch.Tensor, _labels: torch.Tensor, need: int) -> torch.Tensor:
        return disagree_filter(outputs(net1, images).argmax(1),
                               outputs(nets[1], images).argmax(1), need)

    sizes = {}
    for name, pick, want, what in (
            ("net2_digits", wrong1, n - n % 2, "half of them net 1's errors"),
            ("net3_digits", disagree, n, "on which nets 1 and 2 disagree")):
        got_x, got_y = filtered_set(x, y, want, pick, gen)
        sizes[name] = len(got_y)
        log(f"boosting: net {len(nets) + 1} learns {len(got_y):,} distorted digits, {what}")
        if not len(got_y):
            break
        nets.append(train_net(got_x, got_y, cfg, ctx.seed + len(nets), log))
    return nets, {"net2_digits": 0, "net3_digits": 0, **sizes, "nets": len(nets)}


def _fit_boosted(ctx: Context) -> Outcome:
    net1, train_seconds = trained_lenet4(ctx, distort=True)
    cfg = lenet4_config(ctx, distort=True)
    t0 = time.perf_counter()
    nets, extra = _boost_nets(ctx, net1, replace(cfg, distort=False), ctx.log)
    train_seconds += time.perf_counter() - t0
    xt, yt = _images(ctx, "test")
    t0 = time.perf_counter()
    scores = outputs(nets[0], xt).softmax(1)
    for net in nets[1:]:
        scores = scores + outputs(net, xt).softmax(1)
    test_seconds = time.perf_counter() - t0
    conn, params = net_cost()
    notes = (f"{len(nets)} LeNet-4 (recipe lenet4 with distortions, {_epochs(ctx)} each); "
             f"net 2 on {extra['net2_digits']:,} distorted digits half wrong by net 1, net 3 "
             f"on {extra['net3_digits']:,} where nets 1 and 2 disagree (at most {DRAWS} draws "
             f"per training digit each); softmax outputs summed; {_count(ctx)} training digits")
    return Outcome(scores.float().cpu(), yt.cpu(), len(nets) * conn, len(nets) * params,
                   train_seconds, test_seconds, ctx.train_subset or 60_000, notes, extra)


def _count(ctx: Context) -> str:
    return f"{ctx.train_subset:,}" if ctx.train_subset else "all 60,000"


register(Method("lenet4-knn", "LeNet-4 with k-NN instead of the last layer", 1.1,
                lambda ctx: _feature_row(ctx, local=False)))
register(Method("lenet4-local", "LeNet-4 with local learning instead of the last layer", 1.1,
                lambda ctx: _feature_row(ctx, local=True)))
register(Method("boosted-lenet4", "boosted LeNet-4, distortions", 0.7, _fit_boosted))
