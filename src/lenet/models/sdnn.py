"""The Space Displacement Neural Network (the 1998 paper, Sec. VII): LeNet-5 replicated over a
28-pixel-high line of text.

C5, F6 and the output layer of :class:`~lenet.models.lenet5.LeNet5` (the ``lenet5``
architecture: ReLU, max-pool, C1 padded by 2) become convolutions, so that one forward pass over a
``(B, 1, 28, W)`` strip scores every class at every position: one output column every 4 input
pixels (the two 2x2 poolings), each column seeing a 32-pixel-wide window (28 plus C1's padding),
as if LeNet-5 had been run on each window separately, at a fraction of the cost. Twelve outputs:
the ten digits, the decimal point and "none" (the paper's blank-space class, CTC's blank).

:meth:`SDNN.from_classifier` is the paper's replication: the digit weights of a trained
LeNet-5 copied into the convolutions. The strip is extended by ``margin`` background columns on
each side (12 by default), so that a digit at the strip's edge is centred in some window.

:meth:`SDNN.ensemble` joins several trained SDNNs into one (``members``): their convolutions
side by side as groups, their logits averaged by one output layer, one forward pass.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn

from lenet.data.transforms import Preprocessing
from lenet.models.interfaces import LeNetModule
from lenet.models.lenet5 import LeNet5

ALPHABET = "0123456789."  # class k is ALPHABET[k] (data.strings.ALPHABET is the same string)
BLANK = len(ALPHABET)  # "none": no character is centred here (CTC's blank)
CLASSES = [*ALPHABET, "none"]
STRIDE = 4
# The input the bundled lenet5 digit weights take (uint8 / 255 - 0.5) / 0.5, so the background
# (0) is -1 and C1's zero padding is mid-grey, exactly as the classifier was trained.
PREPROCESSING = Preprocessing(mean=0.5, std=0.5)


class SDNN(LeNetModule):
    """LeNet-5 over a line: ``(B, 1, 28, W)`` normalized -> ``(B, T, 12)`` logits, one column
    every :attr:`stride` pixels.

    >>> model = SDNN()
    >>> model(torch.zeros(2, 1, 28, 100)).shape
    torch.Size([2, 25, 12])
    >>> model.columns(100), model.centre(0)
    (25, 2.0)
    """

    stride = STRIDE

    def __init__(self, num_classes: int = len(CLASSES), margin: int = 12,
                 background: float = -1.0, members: int = 1) -> None:
        super().__init__()
        if isinstance(members, bool) or not isinstance(members, int) or members < 1:
            raise ValueError(f"members {members!r}: expected a whole number >= 1")
        self.margin = margin
        self.background = background
        self.members = m = members
        # `members` LeNet-5s side by side (grouped convolutions, each group one member's maps),
        # their logits averaged by the shared output layer: see SDNN.ensemble.
        self.c1 = nn.Conv2d(1, 6 * m, kernel_size=5, padding=2)
        self.c3 = nn.Conv2d(6 * m, 16 * m, kernel_size=5, groups=m)
        self.c5 = nn.Conv2d(16 * m, 120 * m, kernel_size=5, groups=m)
        self.f6 = nn.Conv2d(120 * m, 84 * m, kernel_size=1, groups=m)
        self.output = nn.Conv2d(84 * m, num_classes, kernel_size=1)
        # Channels-last weights and maps: ATen's CPU max-pool and convolutions run several
        # times faster on these few-channel, wide maps than in the default layout.
        for conv in (self.c1, self.c3, self.c5, self.f6, self.output):
            conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != 28:
            raise ValueError(f"SDNN takes (B, 1, 28, W) normalized strips, got "
                             f"{tuple(x.shape)}")
        if self.margin:
            x = F.pad(x, (self.margin, self.margin), value=self.background)
        x = x.contiguous(memory_format=torch.channels_last)
        # Pool, then ReLU: the same values as LeNet-5's ReLU-then-pool (max commutes with a
        # monotone function) on a map 4 times smaller.
        pool = F.max_pool2d if self.training else max2x2
        x = F.relu(pool(self.c1(x) if self.training else c1_rows(self.c1, x), 2))
        x = F.relu(pool(self.c3(x), 2))
        x = F.relu(self.c5(x))
        x = F.relu(self.f6(x))
        return self.output(x).squeeze(2).transpose(1, 2)  # (B, T, classes)

    def columns(self, width: int) -> int:
        """T, the number of output columns for an input `width` (0 when too narrow).

        >>> SDNN(margin=0).columns(28)
        1
        """
        w = width + 2 * self.margin
        return max(0, (w // 2 - 4) // 2 - 4)

    def centre(self, t: int) -> float:
        """The x (in input pixels, 0 at the strip's left edge) of the centre of column `t`'s
        32-pixel window.

        >>> [SDNN().centre(t) for t in range(3)]
        [2.0, 6.0, 10.0]
        """
        return float(STRIDE * t + 14 - self.margin)

    @classmethod
    def from_classifier(cls, model: LeNet5, margin: int = 12) -> SDNN:
        """The SDNN that runs `model` (a ``lenet5``: ReLU, max-pool, C1 padded by 2, 10
        digits) at every column: its weights reshaped into convolutions. The decimal point
        and "none" start with zero weights and a bias that keeps them below a clear digit;
        training teaches them.

        >>> sdnn = SDNN.from_classifier(LeNet5(), margin=0)
        >>> sdnn.output.weight.shape
        torch.Size([12, 84, 1, 1])
        """
        if (model.c1.padding != (2, 2) or not isinstance(model.act, nn.ReLU)
                or not isinstance(model.s2, nn.MaxPool2d) or model.c5.in_features != 400
                or model.output.out_features != 10 or model.c1.in_channels != 1):
            raise ValueError("SDNN.from_classifier takes a 'lenet5' model (ReLU, max-pool, C1 "
                             "padded by 2, one grey channel, 10 digits)")
        sd = model.state_dict()
        # A logit of -4 for "." (rare); "none" sits at the digits' mean logit bias, so it
        # wins only where no digit is confident.
        extra_bias = torch.tensor([-4.0, float(sd["output.bias"].mean())])
        sdnn = cls(margin=margin)
        sdnn.load_state_dict({
            "c1.weight": sd["c1.weight"], "c1.bias": sd["c1.bias"],
            "c3.weight": sd["c3.weight"], "c3.bias": sd["c3.bias"],
            "c5.weight": sd["c5.weight"].view(120, 16, 5, 5), "c5.bias": sd["c5.bias"],
            "f6.weight": sd["f6.weight"].view(84, 120, 1, 1), "f6.bias": sd["f6.bias"],
            "output.weight": torch.cat([sd["output.weight"].view(10, 84, 1, 1),
                                        torch.zeros(2, 84, 1, 1)]),
            "output.bias": torch.cat([sd["output.bias"], extra_bias]),
        })
        return sdnn

    @classmethod
    def ensemble(cls, models: list[SDNN]) -> SDNN:
        """One SDNN that runs trained single SDNNs side by side and averages their logits
        (which is averaging their log-probabilities: the columns' geometric mean), in one
        forward pass: their convolutions stacked as groups, their output layers scaled by
        1/len(models) and joined.

        >>> a, b, x = SDNN(margin=0), SDNN(margin=0), torch.randn(1, 1, 28, 60)
        >>> both = SDNN.ensemble([a, b]).eval()
        >>> torch.allclose(both(x), (a.eval()(x) + b.eval()(x)) / 2, atol=1e-5)
        True
        """
        first = models[0] if models else None
        if first is None or any(m.members != 1 or m.margin != first.margin
                                or m.background != first.background
                                or m.output.out_channels != first.output.out_channels
                                for m in models):
            raise ValueError("SDNN.ensemble takes single SDNNs (members=1) of one margin, "
                             "background and class count")
        out = cls(first.output.out_channels, first.margin, first.background, len(models))
        states = [m.state_dict() for m in models]
        state = {f"{layer}.{kind}": torch.cat([sd[f"{layer}.{kind}"] for sd in states])
                 for layer in ("c1", "c3", "c5", "f6") for kind in ("weight", "bias")}
        state["output.weight"] = torch.cat([sd["output.weight"] for sd in states], 1) / len(models)
        state["output.bias"] = torch.stack([sd["output.bias"] for sd in states]).mean(0)
        out.load_state_dict(state)
        return out


def c1_rows(c1: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``c1(x)`` (one input channel, 5x5, padded by 2), the same sums to float rounding, as a
    1x5 convolution over the five input rows each output row sees, stacked as channels: CPU's
    oneDNN runs a one-channel 5x5 convolution at a fraction of its speed with five, and C1 was
    half the reader's time (BENCHMARKS.md, issue 30). A plain convolution while exporting to
    ONNX, whose graph stays the layer it is.

    >>> c1 = nn.Conv2d(1, 6, 5, padding=2); x = torch.randn(2, 1, 28, 40)
    >>> torch.allclose(c1_rows(c1, x), c1(x), atol=1e-5)
    True
    """
    # torch.onnx is imported by an export alone: importing it here would cost each process
    # 20-90 ms on its first strip (a forked worker of `lenet read` too).
    onnx = sys.modules.get("torch.onnx")
    if onnx is not None and onnx.is_in_onnx_export():
        return c1(x)
    height = x.shape[-2]
    padded = F.pad(x[:, 0], (2, 2, 2, 2))
    # (B, H, W + 4, 5) in memory: channels last, as the other layers run.
    rows = torch.stack([padded[:, i:i + height] for i in range(5)], -1).permute(0, 3, 1, 2)
    weight = c1.weight.reshape(-1, 5, 1, 5).contiguous(memory_format=torch.channels_last)
    return F.conv2d(rows, weight, c1.bias)


def max2x2(x: torch.Tensor, kernel_size: int = 2) -> torch.Tensor:
    """``F.max_pool2d(x, 2)``, the same values, as the maximum of strided slices: ~4 times
    faster than ATen's CPU max-pool on these few-channel wide maps (inference only: no
    indices are kept).

    >>> x = torch.randn(2, 6, 9, 13)
    >>> torch.equal(max2x2(x), F.max_pool2d(x, 2))
    True
    """
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w]
    x = torch.maximum(x[..., 0::2], x[..., 1::2])
    return torch.maximum(x[..., 0::2, :], x[..., 1::2, :])


def prepare(strips: list[torch.Tensor] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``(28, W_i)`` white-on-black strips -> the normalized ``(B, 1, 28, Wmax)`` batch
    (padded on the right with background) and each strip's width.

    >>> x, widths = prepare([torch.zeros(28, 40, dtype=torch.uint8)])
    >>> x.shape, widths.tolist(), x.min().item()
    (torch.Size([1, 1, 28, 40]), [40], -1.0)
    """
    items = list(strips) if not isinstance(strips, torch.Tensor) or strips.dim() == 3 \
        else [strips]
    widths = torch.tensor([int(s.shape[-1]) for s in items], dtype=torch.int64)
    batch = torch.zeros(len(items), 28, int(widths.max()) if len(items) else 0,
                        dtype=torch.uint8)
    for i, s in enumerate(items):
        batch[i, :, : s.shape[-1]] = torch.as_tensor(s)
    return PREPROCESSING(batch), widths
