"""Training criteria. Every model returns *scores*: larger means more likely, argmax predicts.

The 1998 network's RBF units output squared distances y_i (smaller is better), so it returns
scores = -y. The paper's losses are then:

- Eq. 8 (``rbf-mle``): E = mean_p y_D = mean_p (-score_D).
- Eq. 9 (``rbf-map``): E = mean_p [ y_D + log(e^-j + sum_i e^-y_i) ], i.e. cross-entropy over the
  scores with one extra, constant "rubbish" class of score -j. The constant keeps the loss from
  rewarding a collapse of all codes together: pushing every y_i up raises log(e^-j + ...) only
  until e^-j dominates.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from lenet.errors import ConfigError

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def rbf_map_loss(scores: torch.Tensor, targets: torch.Tensor, j: float = 1.0) -> torch.Tensor:
    y_correct = -scores.gather(1, targets[:, None]).squeeze(1)
    rubbish = torch.full_like(scores[:, :1], -j)
    return (y_correct + torch.logsumexp(torch.cat([rubbish, scores], dim=1), dim=1)).mean()


def rbf_mle_loss(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -scores.gather(1, targets[:, None]).mean()


def make_loss(name: str, *, label_smoothing: float = 0.0, rbf_j: float = 1.0) -> Loss:
    if name == "cross-entropy":
        return lambda s, t: F.cross_entropy(s, t, label_smoothing=label_smoothing)
    if name == "rbf-map":
        return lambda s, t: rbf_map_loss(s, t, rbf_j)
    if name == "rbf-mle":
        return rbf_mle_loss
    raise ConfigError(f"unknown loss {name!r}; choose cross-entropy, rbf-map or rbf-mle")
