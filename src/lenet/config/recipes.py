"""Recipe files: the YAML shipped in ``lenet/configs`` or a user's own, read within limits.

A recipe is a flat mapping of a few dozen keys, so it is read as one: no YAML aliases, a few
levels of nesting, a size cap, and a regular file only (a FIFO would block the read). What it
may hold, key by key, is :class:`lenet.config.TrainConfig`'s business.
"""

from __future__ import annotations

import math
import os
import reprlib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lenet.errors import ConfigError
from lenet.storage import regular


def config_dir() -> Path:
    """The recipes shipped inside the package (``configs/`` in the repo links here)."""
    return Path(str(resources.files("lenet") / "configs"))


def find_recipe(name_or_path: str) -> Path:
    """A YAML path, or the name of a shipped recipe (``lenet5-fast``)."""
    try:
        path = Path(name_or_path)
        if path.suffix in (".yaml", ".yml") or path.exists():
            if not path.is_file():
                what = "is not a regular file" if path.exists() else "does not exist"
                raise ConfigError(f"config file {path} {what}; shipped recipes: {recipes()}")
            return path
        shipped = shipped_recipe(name_or_path)
    except (TypeError, ValueError, OSError) as e:  # a NUL byte, a name too long for the OS
        raise ConfigError(f"config {show(name_or_path)}: not a usable file name ({e})") from None
    if shipped is None:
        raise ConfigError(f"no config file or recipe named {show(name_or_path)}; "
                          f"shipped recipes: {recipes()}")
    return shipped


def shipped_recipe(name: object) -> Path | None:
    """The shipped recipe called `name` (a model's own recipe has its name), if there is one."""
    if not (isinstance(name, str) and name.isprintable() and "/" not in name
            and os.sep not in name and len(name) < 100):
        return None
    path = config_dir() / f"{name}.yaml"
    return path if path.is_file() else None


def recipes() -> str:
    return ", ".join(sorted(p.stem for p in config_dir().glob("*.yaml")))


# A recipe is a flat mapping of a few dozen keys: these limits are far above any real one and
# far below what would exhaust memory or the parser's recursion ("billion laughs" aliases,
# thousands of nested brackets, a multi-gigabyte file).
MAX_RECIPE_BYTES = 1 << 20
MAX_YAML_DEPTH = 16
MAX_LIST = 1000


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases (``*name``: an alias bomb expands exponentially)
    and nesting deeper than :data:`MAX_YAML_DEPTH` (the composer recurses per level)."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(f"line {line}: YAML aliases (*{event.anchor}) are not allowed in a "
                           "config; write the value out")
        self.depth += 1
        if self.depth > MAX_YAML_DEPTH:
            raise _Refused(f"line {line}: nested more than {MAX_YAML_DEPTH} levels deep; a "
                           "config is a mapping of keys to values or short lists")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Refused(Exception):
    """What :class:`_RecipeLoader` will not load (the message says why)."""


def read_recipe(path: Path) -> dict[str, Any]:
    try:
        data = parse_recipe(_read_bounded(path))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from None
    except ConfigError as e:
        raise ConfigError(f"config file {path}: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping of keys to values, "
                          f"got {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"config file {path}: key {show(bad[0])} is not a name; keys are "
                          "config names such as epochs or lr")
    return {k.replace("-", "_"): v for k, v in data.items()}


def _read_bounded(path: Path) -> str:
    """The text of `path`, refused (not read) past :data:`MAX_RECIPE_BYTES` or when it is not a
    regular file (a FIFO would block the read forever)."""
    try:
        return regular.read_regular(path, MAX_RECIPE_BYTES).decode()
    except regular.NotRegularFile:
        raise ConfigError("not a regular file; give a YAML file") from None
    except regular.FileTooLarge:
        raise ConfigError(f"larger than {MAX_RECIPE_BYTES >> 10} KiB; a config is a short "
                          "mapping of keys to values") from None


def parse_recipe(text: str) -> Any:
    """YAML `text` as :func:`yaml.safe_load` reads it, within the limits above: a
    :class:`ConfigError` (without the file's name) for anything it cannot or will not load."""
    try:
        loader = _RecipeLoader(text)  # reads the text at once: an unprintable one fails here
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {one_line(e)}") from None
    except _Refused as e:
        raise ConfigError(str(e)) from None
    except (ValueError, OverflowError) as e:  # a date out of range, an integer too long
        why = ("a number has more digits than Python reads; write it shorter"
               if "digits" in str(e) else f"a value cannot be read ({one_line(e)})")
        raise ConfigError(why) from None
    except RecursionError:  # the limits above should prevent it; never a traceback
        raise ConfigError("nested too deeply") from None


def one_line(e: Exception) -> str:
    """An exception's message on one line, at most 300 characters."""
    return " ".join(str(e).split())[:300]


def show(value: Any) -> str:
    """`value` for a message, short (a long list or string is cut; a huge integer is not
    converted, which Python refuses past 4,300 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of about {round(value.bit_length() * math.log10(2))} digits"
    short = reprlib.Repr()
    short.maxstring = short.maxother = 60
    short.maxlist = short.maxtuple = short.maxdict = 6
    try:
        return short.repr(value)
    except ValueError:  # a list holding such an integer
        return f"a {type(value).__name__} holding an integer too long to show"
