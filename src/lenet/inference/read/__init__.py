"""Reading whole numbers (zip codes, amounts): the 1998 paper's Sec. V-VII.

- :mod:`~lenet.inference.read.line`: any image of one line -> the normalized (28, W) strip;
- :mod:`~lenet.inference.read.decode`: Viterbi over an SDNN's output columns, with a length or
  a pattern;
- :mod:`~lenet.inference.read.segment`: the segmenting readers (over-segmentation + Viterbi,
  connected components);
- :mod:`~lenet.inference.read.reader`: :class:`Reader`, :class:`Reading` and :func:`read`, the
  front of all three (``lenet read``, ``lenet.read``).

The names below load on first use, so that importing one of the modules (the trainer imports
``decode``) does not import the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lenet.inference.read.reader import DigitRead, Reader, Reading, read

__all__ = ["DigitRead", "Reader", "Reading", "read"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("lenet.inference.read.reader"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
