"""lenet: LeNet-5, faithful and fast, as real software.

>>> import lenet
>>> model = lenet.create_model("lenet5", pretrained=True)      # the bundled weights
>>> reader = lenet.load("lenet5")                               # or a run dir, or a file
>>> reader.predict_image("digit.png").label
>>> result = lenet.train("lenet5", epochs=2, train_subset=6000)  # as `lenet train` does
>>> test = lenet.data.MNIST(train=False)                        # torchvision-style datasets

The top-level import stays light (no torch): the names below load on first use (PEP 562), so
``lenet --help`` answers instantly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lenet._version import __version__
from lenet.errors import ConfigError, DatasetError, LenetError, WeightsError

if TYPE_CHECKING:
    from lenet import data, models
    from lenet.inference.predict import Predictor
    from lenet.models import create as create_model
    from lenet.training import train

_SUBMODULES = ("data", "models")


def load(name_or_path: Any, backend: str | None = None) -> Predictor:
    """A ready-to-use reader: bundled weights by name (``"lenet5"``), a run directory, a
    ``.safetensors`` file or a ``.onnx`` file; see :class:`lenet.inference.predict.Predictor`."""
    from lenet.inference.predict import Predictor

    return Predictor.load(name_or_path, backend=backend)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"lenet.{name}")
    if name == "train":
        from lenet.training import train

        return train
    if name == "create_model":
        from lenet.models import create

        return create
    if name == "Predictor":
        from lenet.inference.predict import Predictor

        return Predictor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES, "create_model", "Predictor", "train"])


__all__ = ["ConfigError", "DatasetError", "LenetError", "Predictor", "WeightsError",
           "__version__", "create_model", "data", "load", "models", "train"]
