"""lenet: LeNet-5, faithful and fast, as real software.

>>> import lenet
>>> model = lenet.create_model("lenet5", pretrained=True)       # the bundled weights
>>> model.pretrained_weights.test_accuracy                       # as recorded when published
0.9907
>>> lenet.list_models("lenet5*", pretrained=True)  # doctest: +NORMALIZE_WHITESPACE
['lenet5-1998.mnist', 'lenet5-sigmoid.fashion-mnist', 'lenet5-tanh.mnist', 'lenet5.mnist',
 'lenet5.real-mnist']
>>> test = lenet.data.MNIST(train=False)                         # torchvision-style datasets
>>> reader = lenet.load()            # the default, lenet5-real (photos); or a name, a run, a file
>>> reader.predict(test.data[:3].numpy())[0].label, int(test.targets[0])
('7', 7)

``lenet.train(...)`` trains as ``lenet train`` does (see :func:`lenet.training.train`);
``lenet.read(image)`` reads a whole number, a zip code or an amount, and ``lenet.Reader`` is
its :class:`~lenet.inference.read.reader.Reader` (see there).
The top-level import stays light (no torch): the names below load on first use (PEP 562), so
``lenet --help`` answers instantly.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import TYPE_CHECKING, Any

from lenet._version import __version__
from lenet.errors import ConfigError, DatasetError, LenetError, WeightsError

# A library configures no logging output: its messages are records of the "lenet" logger, and
# lenet.console decides at the first one (see there) whether the program configured any.
logging.getLogger("lenet").addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from lenet import data, models
    from lenet.inference.predict import Predictor
    from lenet.inference.read.reader import Reader, read
    from lenet.models import create as create_model
    from lenet.models import list_models
    from lenet.training import train

_SUBMODULES = ("data", "models")


def load(name_or_path: str | os.PathLike[str] | None = None, backend: str | None = None
         ) -> Predictor:
    """A ready-to-use reader: bundled weights by name (default: ``"lenet5-real"``, made for
    photos and scans; ``"lenet5"``, ``"lenet5.mnist"``), a run directory, a ``.safetensors``
    file or a ``.onnx`` file; see :class:`lenet.inference.predict.Predictor`.

    >>> reader = load("lenet5")
    >>> reader.model_name, reader.dataset, reader.test_accuracy
    ('lenet5', 'mnist', 0.9907)
    """
    from lenet.inference.predict import Predictor
    from lenet.models.hub import DEFAULT_WEIGHTS

    return Predictor.load(DEFAULT_WEIGHTS if name_or_path is None else name_or_path,
                          backend=backend)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"lenet.{name}")
    if name == "train":
        from lenet.training import train

        return train
    if name == "create_model":
        from lenet.models import create

        return create
    if name == "list_models":
        from lenet.models import list_models

        return list_models
    if name == "Predictor":
        from lenet.inference.predict import Predictor

        return Predictor
    if name in ("read", "Reader"):
        from lenet.inference.read import reader

        return getattr(reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # The public names only: not this module's own imports (TYPE_CHECKING, importlib...).
    return sorted(__all__)


__all__ = ["ConfigError", "DatasetError", "LenetError", "Predictor", "Reader", "WeightsError",
           "__version__", "create_model", "data", "list_models", "load", "models", "read",
           "train"]
