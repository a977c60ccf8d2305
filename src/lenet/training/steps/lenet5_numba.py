"""The ``lenet5`` training step (ReLU, max-pool, cross-entropy) compiled with numba, any batch.

At batch 64 a torch step spends about a third of its time outside arithmetic: autograd's
graph, dispatch, and zeroing and re-reading maps that fall out of the cache (BENCHMARKS.md,
"Where a batch-64 step goes"). This step computes the same forward pass and the same
gradients as float32 loops (:mod:`lenet.training.steps.lenet5_kernels`, which also describes
their layout) and leaves the update to the run's own torch optimizer: it writes ``p.grad`` of
every parameter and calls ``optimizer.step()``, so SGD, Adam, weight decay, the schedules,
checkpoints and resuming are the ones every other step uses. Tests hold the gradients to
autograd's at 1e-5.

Threads: a batch is cut into one part per thread it is given (``threads``, else torch's count;
the trainer gives the run's threads and leaves torch one), parts of 16 digits or more; each
part runs on its own thread (the kernels release the GIL) into its own gradient buffers,
and the parts' gradients are added in a fixed order: one machine and one thread count give the
same bits every run.

Needs numba (``lenet[fast]``), imported at module level (by the kernels' module): the
trainer imports this module lazily and keeps torch's step when the import fails. The trainer
calls :meth:`NumbaLeNet5Step.warm` before its first timed epoch: it compiles the kernels, once
per CPU kind, or loads them from numba's on-disk cache (BENCHMARKS.md has both times), so that
compiling never shows as a slow epoch.
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TypeGuard

import numpy as np
import torch
from torch import nn

from lenet.models.lenet5 import LeNet5
from lenet.training.steps.lenet5_kernels import SHAPES, ZERO, part_step, workspace

MIN_PART = 16  # digits per thread: below this a part's loops are too short to pay for a thread


def supports(model: nn.Module, optimizer: torch.optim.Optimizer, loss: str
             ) -> TypeGuard[LeNet5]:
    """Whether :class:`NumbaLeNet5Step` computes this setup's step: a ``lenet5`` as registered
    (ReLU, max-pool, C1 padded by 2 on 28x28 digits, any number of classes), float32 on the
    CPU, the cross-entropy loss, every parameter held by the optimizer."""
    if type(model) is not LeNet5 or loss != "cross-entropy":
        return False
    c1, c3 = model.c1, model.c3
    shape_ok = (isinstance(model.act, nn.ReLU) and isinstance(model.s4, nn.MaxPool2d)
                and (c1.in_channels, c1.out_channels, c1.padding) == (1, 6, (2, 2))
                and (c3.in_channels, c3.out_channels, c3.padding) == (6, 16, (0, 0))
                and c1.kernel_size == c3.kernel_size == (5, 5)
                and c1.stride == c3.stride == (1, 1)
                and (model.c5.in_features, model.f6.in_features) == (400, 120)
                and model.output.in_features == 84)
    params = list(model.parameters())
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    return (shape_ok and [n for n, _ in model.named_parameters()] == [n for n, _ in SHAPES]
            and all(p.device.type == "cpu" and p.dtype == torch.float32 and id(p) in held
                    for p in params))


class NumbaLeNet5Step:
    """``step(x, y) -> (loss, scores)`` for a ``lenet5``: the batch's mean loss (label smoothing
    as ``F.cross_entropy``) and its logits, with every parameter's ``.grad`` set to the
    gradient autograd would give and ``optimizer.step()`` applied."""

    compiled = "numba"  # what the trainer names in its first line

    def __init__(self, model: LeNet5, optimizer: torch.optim.Optimizer,
                 label_smoothing: float = 0.0, threads: int | None = None) -> None:
        if not supports(model, optimizer, "cross-entropy"):
            raise ValueError("NumbaLeNet5Step needs a lenet5 (ReLU, max-pool, C1 padded by 2) "
                             "with float32 parameters on the CPU, all held by the optimizer")
        self.optimizer, self.smoothing = optimizer, float(label_smoothing)
        self.threads = threads
        self.names, self.params = zip(*model.named_parameters(), strict=True)
        self.classes = model.output.out_features
        self.size = sum(p.numel() for p in self.params)
        self._ws: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
        self._grads: list[tuple[np.ndarray, tuple[np.ndarray, ...]]] = [self._new_grads()]
        # Part 0's buffer, which the parts' gradients are summed into, in each parameter's
        # shape: the parameters' .grad (built once; ten views a step cost more than the sum).
        self._views = [torch.from_numpy(g).view(p.shape)
                       for p, g in zip(self.params, self._grads[0][1], strict=True)]
        self._pool: ThreadPoolExecutor | None = None
        self._workers = 0
        self.compile_seconds: float | None = None  # the first call: compiling or cache load

    def warm(self) -> float:
        """Compile the kernels (or load them from numba's cache) before the first timed step:
        seconds taken. Runs the real code path on one part of blank digits, so numba sees the
        very argument types of a training step; no update, and ``.grad`` is left as it was."""
        if self.compile_seconds is not None:
            return 0.0
        grads = [p.grad for p in self.params]
        blank = torch.zeros(MIN_PART, 1, 28, 28)
        self.gradients(blank, torch.zeros(MIN_PART, dtype=torch.int64))
        for p, g in zip(self.params, grads, strict=True):
            p.grad = g
        return self.compile_seconds or 0.0

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, scores, _ = self.gradients(x, y)
        self.optimizer.step()
        return loss, scores

    def gradients(self, x: torch.Tensor, y: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The batch's mean loss, its logits and {name: gradient}, which are the parameters'
        ``.grad`` tensors, set here (the next call writes over them); no update."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"NumbaLeNet5Step takes digits of shape (N, 1, 28, 28), got "
                             f"{tuple(x.shape)}")
        xs = np.ascontiguousarray(x.detach().reshape(len(x), 784).numpy(), dtype=np.float32)
        ys = np.ascontiguousarray(y.detach().numpy(), dtype=np.int64)
        bounds = self._bounds(len(xs))
        params = tuple(p.detach().contiguous().numpy().reshape(shape)
                       for p, (_, shape) in zip(self.params, SHAPES, strict=True))
        jobs = [(k, xs[a:b], ys[a:b], params, 1.0 / len(xs))
                for k, (a, b) in enumerate(itertools.pairwise(bounds))]
        while len(self._grads) < len(jobs):
            self._grads.append(self._new_grads())
        for k, (a, b) in enumerate(itertools.pairwise(bounds)):
            if (k, b - a) not in self._ws:
                self._ws[k, b - a] = workspace(b - a, self.classes)
        started = time.perf_counter()
        if len(jobs) == 1 or self.compile_seconds is None:
            # The first call loads the kernels (or compiles them) once, on this thread: two
            # threads asking numba at once took twice as long.
            totals = [self._part(*job) for job in jobs]
        else:
            pool = self._executor(len(jobs) - 1)
            later = [pool.submit(self._part, *job) for job in jobs[1:]]
            totals = [self._part(*jobs[0])] + [f.result() for f in later]
        if self.compile_seconds is None:
            self.compile_seconds = time.perf_counter() - started
        self._set_grads(len(jobs))
        scores = np.concatenate([self._ws[k, len(job[1])][5].T for k, job in enumerate(jobs)])
        grads = dict(zip(self.names, (p.grad for p in self.params), strict=True))
        loss = torch.tensor(sum(totals) / len(xs), dtype=torch.float32)
        return loss, torch.from_numpy(scores), grads

    def _bounds(self, n: int) -> list[int]:
        """Where the batch's parts start and end: one per torch thread, MIN_PART digits or
        more each, sizes differing by at most one."""
        parts = max(1, min(self.threads or torch.get_num_threads(), n // MIN_PART))
        return [k * n // parts for k in range(parts + 1)]

    def _part(self, k: int, x: np.ndarray, y: np.ndarray, params: tuple[np.ndarray, ...],
              scale: float) -> float:
        """Part k on the calling thread, into its own gradient buffer and workspace."""
        flat, grads = self._grads[k]
        flat.fill(ZERO)
        return part_step(x, y, self.smoothing, scale, *params, *grads, *self._ws[k, len(x)])

    def _new_grads(self) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        flat = np.zeros(self.size, np.float32)
        views, at = [], 0
        for p, (_, shape) in zip(self.params, SHAPES, strict=True):
            views.append(flat[at:at + p.numel()].reshape(shape))
            at += p.numel()
        return flat, tuple(views)

    def _set_grads(self, parts: int) -> None:
        """Add the parts' gradients into part 0's buffer (in a fixed order) and make them each
        parameter's ``.grad``: views of that buffer, no copy, except where the parameter is
        laid out otherwise (channels-last kernels), whose ``.grad`` gets a copy in its layout."""
        total = self._grads[0][0]
        for k in range(1, parts):
            total += self._grads[k][0]
        for p, g in zip(self.params, self._views, strict=True):
            if p.stride() == g.stride():
                if p.grad is None or p.grad.data_ptr() != g.data_ptr():
                    p.grad = g
                continue
            if p.grad is None or p.grad.stride() != p.stride():
                p.grad = torch.empty_like(p)
            p.grad.copy_(g)

    def _executor(self, workers: int) -> ThreadPoolExecutor:
        if self._pool is None or self._workers != workers:
            self.close()
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="lenet-step")
            self._workers = workers
        return self._pool

    def close(self) -> None:
        """Stop the part threads (idle between steps; they also end with the process)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
