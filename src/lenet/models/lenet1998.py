"""LeNet-5 exactly as LeCun, Bottou, Bengio and Haffner (1998) specify it (``lenet5-1998``).

Section II-B and Appendix A, layer by layer (trainable parameters / connections):

- C1: 6 maps 28x28, 5x5 convolution of the 32x32 input (156 / 122,304);
- S2: 6 maps 14x14; each unit adds its four 2x2 inputs, multiplies the sum by its map's trainable
  coefficient, adds its map's trainable bias (12 / 5,880);
- C3: 16 maps 10x10, 5x5 windows in the subsets of S2's maps given by Table I (1,516 / 151,600);
- S4: 16 maps 5x5, as S2 (32 / 2,000);
- C5: 120 maps, a 5x5 convolution over all 16 S4 maps, 1x1 on a 32x32 input (48,120 / 48,120);
- F6: 84 units fully connected to C5 (10,164 / 10,164);
- output: 10 Euclidean RBF units y_i = sum_j (x_j - w_ij)^2 with fixed w_ij = +-1 taken from a
  7x12 bitmap of each digit (0 / 840).

Totals: 60,000 trainable parameters and 340,908 connections (``lenet summary lenet5-1998``).
Every layer C1..F6, the subsampling layers included, is followed by the squashing function
f(a) = 1.7159 tanh(2a/3). Weights and biases start uniform in (-2.4/F_i, 2.4/F_i), F_i the fan-in
of the receiving unit (25 for C1, 4 for S2/S4, 75, 100 or 150 for C3 depending on the map, 400 for
C5, 120 for F6).

Sparse C3 is a dense 6->16 convolution whose weight tensor is assembled on every forward pass
from the 1,500 real weights (stored packed, one row of 25 per Table I connection) by one
``index_put`` into zeros: the absent connections are not parameters, get no gradient, and the
model has exactly the paper's parameter count.

The model returns scores = -y (negative squared distances), so argmax picks the nearest code, and
trains with the paper's Eq. 9 loss (``rbf-map`` in :mod:`lenet.models.losses`). For the stochastic
diagonal Levenberg-Marquardt optimizer (:mod:`lenet.training.optim.sdlm`) it splits itself into
:meth:`LeNet1998.curvature_features` (input -> the 84 F6 states) and
:meth:`LeNet1998.curvature_head` (the RBF layer), so that the RBF layer counts as part of the loss,
as in the paper's Appendix C, and lists the layers of the former in
:meth:`LeNet1998.curvature_layers`, which lets SDLM back-propagate second derivatives with squared
weights layer by layer as the paper does (:func:`lenet.training.optim.sdlm.paper_diagonal`). It
shows its output codes as pictures through :meth:`LeNet1998.rbf_bitmaps` (``lenet report`` draws
them).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lenet.data.transforms import scaled
from lenet.models.interfaces import LeNetModule
from lenet.models.registry import ModelSpec, register

# Table I: the S2 maps each C3 map sees.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)

# The output layer's codes: a stylized 7 (wide) x 12 (tall) picture of each digit, '#' = +1 and
# '.' = -1, read row by row into the 84 weights of that digit's RBF unit (Fig. 3 of the paper;
# checked against the public transcription in mattwang44/LeNet-from-Scratch).
DIGIT_BITMAPS: tuple[tuple[str, ...], ...] = (
    (".#####.", ".......", "..###..", ".##.##.", "##...##", "##...##",
     "##...##", "##...##", ".##.##.", "..###..", ".......", "......."),  # 0
    ("...##..", "..###..", ".####..", "...##..", "...##..", "...##..",
     "...##..", "...##..", "...##..", ".######", ".......", "......."),  # 1
    (".#####.", ".......", ".#####.", "##...##", "#....##", "....##.",
     "..###..", ".##....", "##.....", "#######", ".......", "......."),  # 2
    ("#######", ".....##", "....##.", "...##..", "..####.", ".....##",
     ".....##", ".....##", "##...##", ".#####.", ".......", "......."),  # 3
    (".#####.", ".......", ".......", ".##..##", ".##..##", "###..##",
     "##...##", "##...##", "##..###", ".######", ".....##", ".....##"),  # 4
    (".#####.", ".......", "#######", "##.....", "##.....", ".####..",
     "..####.", ".....##", "##...##", ".#####.", ".......", "......."),  # 5
    ("..####.", ".##....", "##.....", "##.....", "######.", "###..##",
     "##...##", "##...##", "###..##", ".#####.", ".......", "......."),  # 6
    ("#######", ".....##", ".....##", "....##.", "...##..", "...##..",
     "..##...", "..##...", "..##...", "..##...", ".......", "......."),  # 7
    (".#####.", "##...##", "##...##", "##...##", ".#####.", "##...##",
     "##...##", "##...##", "##...##", ".#####.", ".......", "......."),  # 8
    (".#####.", "##..###", "##...##", "##...##", "##..###", ".######",
     ".....##", ".....##", "....##.", ".####..", ".......", "......."),  # 9
)

SQUASH_A = 1.7159
SQUASH_S = 2.0 / 3.0


def rbf_codes() -> torch.Tensor:
    """The (10, 84) matrix of +-1 RBF weights, one row per digit, from :data:`DIGIT_BITMAPS`."""
    rows = [[1.0 if c == "#" else -1.0 for line in bitmap for c in line]
            for bitmap in DIGIT_BITMAPS]
    return torch.tensor(rows)


def squash(a: torch.Tensor) -> torch.Tensor:
    """f(a) = 1.7159 tanh(2a/3), so that f(+-1) = +-1 (Appendix A)."""
    return torch.tanh(a * SQUASH_S) * SQUASH_A


class Squash(nn.Module):
    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return squash(a)


def init_uniform_(tensor: torch.Tensor, fan_in: int) -> torch.Tensor:
    """The paper's init: uniform in (-2.4/F_i, 2.4/F_i)."""
    bound = 2.4 / fan_in
    with torch.no_grad():
        return tensor.uniform_(-bound, bound)


def paper_conv(in_maps: int, out_maps: int, kernel: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_maps, out_maps, kernel)
    assert conv.bias is not None  # nn.Conv2d makes one unless told bias=False
    fan_in = in_maps * kernel * kernel
    init_uniform_(conv.weight, fan_in)
    init_uniform_(conv.bias, fan_in)
    return conv


def paper_linear(in_features: int, out_features: int) -> nn.Linear:
    fc = nn.Linear(in_features, out_features)
    init_uniform_(fc.weight, in_features)
    init_uniform_(fc.bias, in_features)
    return fc


class Subsampling(nn.Module):
    """S2/S4: sum of each non-overlapping 2x2 block, times a per-map coefficient, plus a bias.

    Two trainable parameters per map; five connections per unit (four inputs and the bias). The
    squashing function is applied by the caller. ``source[i]`` names the input map that output map
    i subsamples (identity by default; LeNet-4 subsamples each first-layer map twice).
    """

    def __init__(self, maps: int, source: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.source = None if source is None else torch.tensor(source)
        self.coefficient = nn.Parameter(init_uniform_(torch.empty(maps), 4))
        self.bias = nn.Parameter(init_uniform_(torch.empty(maps), 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.source is not None:
            x = x[:, self.source.to(x.device)]
        # avg_pool * 4 is the sum of the block; fold the 4 into the coefficient.
        pooled = F.avg_pool2d(x, 2)
        return torch.addcmul(self.bias[:, None, None], pooled,
                             (self.coefficient * 4.0)[:, None, None])

    def connections(self, output_shape: tuple[int, ...]) -> int:
        return math.prod(output_shape) * 5


class SparseConv2d(nn.Module):
    """A convolution where output map o sees only the input maps ``table[o]`` (C3's Table I).

    Only the real weights are parameters: ``weight`` holds one k x k kernel per (output, input)
    pair of the table, in table order; each forward scatters them into a dense zero tensor.
    Each output map is initialized with its own fan-in, len(table[o]) * k * k.
    """

    # Buffers (register_buffer), declared for the type checker, which sees Tensor | Module.
    _out_idx: torch.Tensor
    _in_idx: torch.Tensor

    def __init__(self, in_maps: int, table: tuple[tuple[int, ...], ...], kernel: int) -> None:
        super().__init__()
        self.in_maps, self.out_maps, self.kernel = in_maps, len(table), kernel
        self.table = table
        pairs = [(o, i) for o, inputs in enumerate(table) for i in inputs]
        self.register_buffer("_out_idx", torch.tensor([o for o, _ in pairs]), persistent=False)
        self.register_buffer("_in_idx", torch.tensor([i for _, i in pairs]), persistent=False)
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel, kernel))
        self.bias = nn.Parameter(torch.empty(self.out_maps))
        with torch.no_grad():
            for n, (o, _) in enumerate(pairs):
                init_uniform_(self.weight[n], len(table[o]) * kernel * kernel)
            for o, inputs in enumerate(table):
                init_uniform_(self.bias[o:o + 1], len(inputs) * kernel * kernel)

    def dense_weight(self) -> torch.Tensor:
        """The (out, in, k, k) convolution weight, zero where Table I has no connection."""
        k = self.kernel
        dense = self.weight.new_zeros(self.out_maps, self.in_maps, k, k)
        return dense.index_put((self._out_idx, self._in_idx), self.weight)

    def mask(self) -> torch.Tensor:
        """(out, in) 0/1 connection matrix."""
        m = torch.zeros(self.out_maps, self.in_maps)
        m[self._out_idx, self._in_idx] = 1.0
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)

    def connections(self, output_shape: tuple[int, ...]) -> int:
        per_position = self.weight.numel() + self.out_maps  # every weight plus every bias
        return math.prod(output_shape[1:]) * per_position


class EuclideanRBF(nn.Module):
    """y_i = sum_j (x_j - w_ij)^2 with fixed codes w (a buffer, not a parameter); returns -y."""

    codes: torch.Tensor  # a buffer (register_buffer), declared for the type checker

    def __init__(self, codes: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("codes", codes.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -(x.unsqueeze(1) - self.codes).square().sum(-1)

    def connections(self, output_shape: tuple[int, ...]) -> int:
        return math.prod(output_shape) * self.codes.shape[1]


class LeNet1998(LeNetModule):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = paper_conv(1, 6, 5)
        self.s2 = Subsampling(6)
        self.c3 = SparseConv2d(6, C3_TABLE, 5)
        self.s4 = Subsampling(16)
        self.c5 = paper_conv(16, 120, 5)
        self.f6 = paper_linear(120, 84)
        self.output = EuclideanRBF(rbf_codes())

    def curvature_features(self, x: torch.Tensor) -> torch.Tensor:
        """The 84 F6 states: everything below the RBF layer."""
        x = squash(self.s2(squash(self.c1(x))))
        x = squash(self.s4(squash(self.c3(x))))
        x = squash(self.c5(x)).flatten(1)
        return squash(self.f6(x))

    def curvature_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.output(features)

    def curvature_layers(self) -> list[nn.Module]:
        """:meth:`curvature_features` as a list of layers, applied in order, for SDLM's
        squared-weight back-propagation (:func:`lenet.training.optim.sdlm.paper_diagonal`)."""
        sq = Squash()
        return [self.c1, sq, self.s2, sq, self.c3, sq, self.s4, sq, self.c5, sq, nn.Flatten(),
                self.f6, sq]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.curvature_features(x))

    def rbf_bitmaps(self) -> torch.Tensor:
        """The output codes as (10, 12, 7) images, +1 ink and -1 background (Fig. 3);
        :class:`lenet.models.interfaces.RBFOutput`, drawn by ``lenet report``."""
        rows, cols = len(DIGIT_BITMAPS[0]), len(DIGIT_BITMAPS[0][0])
        return self.output.codes.view(-1, rows, cols)


register(
    ModelSpec(
        name="lenet5-1998",
        build=LeNet1998,
        # 0 -> -0.1 (background), 255 -> 1.175 (ink), the 28x28 digit centred in 32x32.
        preprocessing=scaled(-0.1, 1.175, pad=2),
        source="LeCun et al. 1998, Sec. II-B and App. A: C3 Table I, trainable subsampling, "
               "1.7159 tanh(2a/3), Euclidean RBF output with fixed 7x12 digit codes",
        description="the faithful 1998 LeNet-5 (60,000 parameters, RBF output, Eq. 9 loss)",
        loss="rbf-map",
        tags=("paper",),
    )
)
