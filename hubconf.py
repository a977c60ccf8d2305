"""torch.hub entry points: every lenet model, and every bundled set of weights by ``arch.tag``::

    model = torch.hub.load("/path/to/lenet", "lenet5", source="local", pretrained=True)
    model = torch.hub.load("/path/to/lenet", "lenet5.mnist", source="local", num_classes=47)

Each entry point is :func:`lenet.models.create` for that name (``pretrained=False`` unless
asked, as in torchvision; ``num_classes`` and ``in_chans`` as in timm); ``torch.hub.list``
names them all. lenet is imported from this checkout's ``src/`` when it is not installed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

dependencies = ["torch"]

try:
    import lenet.models as _models
except ImportError:  # a bare checkout: its own sources
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    import lenet.models as _models


def _entry(name: str) -> Callable[..., Any]:
    def create(pretrained: bool = False, **kwargs: Any) -> Any:
        return _models.create(name, pretrained=pretrained, **kwargs)

    create.__name__ = create.__qualname__ = name
    create.__doc__ = (f"lenet.models.create({name!r}, pretrained=pretrained, **kwargs): "
                      "num_classes and in_chans as in timm.")
    return create


def _names() -> list[str]:
    return [*_models.list_models(), *_models.list_models(pretrained=True)]


# Most names ("lenet5-1998", "lenet5.mnist") are not identifiers: torch.hub looks entry points
# up with dir() and getattr(), which a module answers through __dir__ and __getattr__ (PEP 562).
def __getattr__(name: str) -> Callable[..., Any]:
    if name in _names():
        return _entry(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_names()])
