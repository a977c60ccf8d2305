"""What a weights file says about itself: the model, the exact preprocessing, the dataset and
its classes, the test accuracy, and whatever else training recorded (:class:`WeightsMeta`).

The one description of a set of weights: training writes it into every weights file, and
everything that reads weights (inference, evaluation, export, the web page) takes it from there.
A bundled file's manifest entry (:class:`lenet.models.hub.Weights`) is derived from it; a
:class:`lenet.models.registry.ModelSpec` describes an architecture and its defaults, not weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from lenet._version import __version__
from lenet.data.transforms import Preprocessing
from lenet.errors import WeightsError
from lenet.storage.tensorfile import DIGEST_KEY

_KNOWN = ("model", "preprocessing", "dataset", "classes", "test_accuracy", "reject_margin",
          DIGEST_KEY)


@dataclass
class WeightsMeta:
    model: str
    preprocessing: Preprocessing
    dataset: str
    classes: list[str]
    test_accuracy: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Predictions whose top-two score margin is at most this are "unsure": chosen for 0.5 %
    # error on held-out training digits (the 1998 paper's Fig. 10); None: never unsure.
    # Written only when set, so that files without it keep their bytes.
    reject_margin: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "preprocessing": self.preprocessing.to_dict(),
            "dataset": self.dataset,
            "classes": self.classes,
            "test_accuracy": self.test_accuracy,
            "lenet_version": __version__,
            "torch_version": torch.__version__,
            **{k: v for k, v in self.extra.items() if k != DIGEST_KEY},
            **({} if self.reject_margin is None else {"reject_margin": self.reject_margin}),
        }

    @classmethod
    def from_dict(cls, d: Any, source: str) -> WeightsMeta:
        try:
            classes, accuracy = d["classes"], d.get("test_accuracy")
            if not isinstance(classes, list):
                raise TypeError(f"classes is {type(classes).__name__}, not a list")
            if accuracy is not None and not (isinstance(accuracy, (int, float))
                                             and not isinstance(accuracy, bool)
                                             and 0 <= accuracy <= 1):
                raise ValueError(f"test_accuracy {accuracy!r:.40} is not a number in 0..1")
            reject = d.get("reject_margin")
            if reject is not None and not (isinstance(reject, (int, float))
                                           and not isinstance(reject, bool)
                                           and math.isfinite(reject)):
                raise ValueError(f"reject_margin {reject!r:.40} is not a finite number")
            return cls(
                model=str(d["model"]),
                preprocessing=Preprocessing.from_dict(d["preprocessing"], source=source),
                dataset=str(d["dataset"]),
                classes=[str(c) for c in classes],
                test_accuracy=accuracy,
                extra={k: v for k, v in d.items() if k not in _KNOWN},
                reject_margin=None if reject is None else float(reject),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise WeightsError(f"{source}: lenet metadata is malformed ({e!r:.200}); "
                               "was it written by `lenet train`?") from None
