"""The grammar of a device string (``--device``): ``auto`` or ``type[:index]`` as torch parses it.

Apart from :mod:`lenet.runtime.device` (which imports torch) so that the command line checks
``--device`` while it parses, and ``lenet --help`` stays instant.
"""

from __future__ import annotations

import re

# A torch device string: a backend name, optionally ":index" (torch.device's own grammar).
_FORM = re.compile(r"[a-z][a-z0-9_]*(:[0-9]+)?")
# Device types every torch build parses; another name (a renamed private backend such as
# "npu", or a typo) is asked of torch itself.
_COMMON = frozenset({"cpu", "cuda", "mps", "xpu", "mtia", "hpu", "meta"})


def is_device_form(name: str) -> bool:
    """Whether `name` is ``auto`` or a device string torch parses (``type[:index]``); torch is
    imported only for a type outside the common ones, so the CLI parses them cheaply."""
    if _FORM.fullmatch(name) is None:
        return False
    if name == "auto" or name.partition(":")[0] in _COMMON:
        return True
    # Only here, for a rare name: the CLI checks --device while it parses, without torch.
    import torch  # noqa: PLC0415

    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        return False
    return True
