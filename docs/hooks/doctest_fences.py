"""A griffe extension for the API site (mkdocs.yml): the docstrings' bare ``>>>`` examples
(doctest's form, run by tests/test_doctests.py) are shown as Python console code blocks, not
read as Markdown, where ``>>>`` is a quote and ``['7']`` a link; and Sphinx's roles
(``:class:`~lenet.config.TrainConfig```), which Markdown does not know, are shown as code."""

from __future__ import annotations

import re
from typing import Any

import griffe

_PROMPT = re.compile(r"^(\s*)>>> ")
_FENCE = re.compile(r"^\s*(```|~~~)")
_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")


def plain_roles(text: str) -> str:
    """``:func:`lenet.train``` -> ```lenet.train```; with ``~``, Sphinx's "last name only"."""
    return _ROLE.sub(lambda m: f"`{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}`", text)


def fence_examples(text: str) -> str:
    """Each run of doctest lines (a ``>>>`` line up to the next blank line) in a pycon fence."""
    out: list[str] = []
    indent: str | None = None  # inside an example block: its indent
    fenced = False  # inside a fence the docstring wrote itself
    for line in text.splitlines():
        if indent is not None and not line.strip():
            out.append(f"{indent}```")
            indent = None
        if indent is None and _FENCE.match(line):
            fenced = not fenced
        elif indent is None and not fenced and (m := _PROMPT.match(line)):
            indent = m[1]
            out.append(f"{indent}```pycon")
        out.append(line)
    if indent is not None:
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain_roles(fence_examples(obj.docstring.value))

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self.on_object(obj=pkg)  # a package's own docstring (on_object sees its members)
