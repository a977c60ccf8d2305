"""A 2x2 max-pool for few-channel bf16 maps on a CPU, equal to ``F.max_pool2d`` bit for bit.

Why: in channels-last memory ATen's CPU max-pool vectorizes over channels, and LeNet-5's S2
has 6 of them, fewer than one AVX-512 register holds, so in bf16 (``--bf16``) that kernel
leaves most of each vector empty and takes a large share of the training step. Laid out with
the batch innermost, the same pool sees 6 x batch channels, fills its vectors and runs several
times faster, copies included (BENCHMARKS.md has the measurements). Max-pool indices count
positions within one (sample, channel) plane, so they are the same in either layout, and the
backward is ATen's own, fed with them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _BatchInnerMaxPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        # (N, C, H, W) -> one "sample" whose N*C channels lie innermost: [h][w][n][c].
        wide = x.permute(2, 3, 0, 1).reshape(1, h, w, n * c).permute(0, 3, 1, 2)
        values, indices = F.max_pool2d_with_indices(wide, (2, 2))

        def back(t: torch.Tensor) -> torch.Tensor:
            t = t.permute(0, 2, 3, 1).reshape(h // 2, w // 2, n, c).permute(2, 3, 0, 1)
            return t.contiguous(memory_format=torch.channels_last)

        indices = back(indices)
        ctx.save_for_backward(x, indices)
        return back(values)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        x, indices = ctx.saved_tensors
        return torch.ops.aten.max_pool2d_with_indices_backward(
            g.contiguous(memory_format=torch.channels_last), x, [2, 2], [2, 2], [0, 0], [1, 1],
            False, indices)


def max_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2)``, taking the batch-innermost route where it pays: a bf16,
    channels-last CPU map with fewer than 16 channels and even height and width."""
    _, c, h, w = x.shape
    if (x.device.type == "cpu" and x.dtype == torch.bfloat16 and c < 16 and h % 2 == 0
            and w % 2 == 0 and x.is_contiguous(memory_format=torch.channels_last)):
        return _BatchInnerMaxPool2x2.apply(x)
    return F.max_pool2d(x, 2)
