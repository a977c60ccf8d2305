"""Flags that several commands share, spelled one way everywhere.

``--run-dir DIR`` is a run folder (or a folder of runs), ``--out FILE`` a file the command
writes, ``--device`` takes ``auto`` (the default: this machine's accelerator, else the CPU) or
any torch device string (``cpu``, ``cuda:1``, ``mps``, ``xpu``). An older spelling of a
flag stays accepted as a hidden alias, so existing scripts keep working.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

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
    import torch

    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        return False
    return True


def count(text: str) -> int:
    """A flag's type for a count: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


# -q/--quiet and -v/--verbose: the level of the `lenet` logger while the command runs.
QUIET, VERBOSE, NORMAL = 40, 10, 20  # logging.ERROR, DEBUG, INFO (logging is not imported here)


def add_verbosity(p: argparse.ArgumentParser, top: bool = False) -> None:
    """``-q/--quiet`` (errors only on stderr; the result on stdout stays) and ``-v/--verbose``
    (debug detail too). On the top parser and on every subcommand, so that ``lenet -q train``
    and ``lenet train -q`` both work: a subcommand's parser sets the level only when its flag
    is given (argparse would otherwise reset the top parser's value with its own default)."""
    default = NORMAL if top else argparse.SUPPRESS
    group = p.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", dest="log_level", action="store_const", const=QUIET,
                       default=default, help="print only errors on stderr (progress and notes "
                                             "are not shown; results on stdout still are)")
    group.add_argument("-v", "--verbose", dest="log_level", action="store_const", const=VERBOSE,
                       default=default, help="print debug detail on stderr as well")


def add_json(p: argparse.ArgumentParser, what: str = "the result") -> None:
    p.add_argument("--json", action="store_true",
                   help=f"print {what} as one JSON object on stdout (progress goes to stderr)")


def device_name(text: str) -> str:
    """``--device``'s type: a device string torch parses is accepted here; whether this
    machine has that device is :func:`lenet.runtime.device.pick`'s question, when the command
    runs."""
    if not is_device_form(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a device: expected auto or a torch device string such as cpu, "
            "cuda, cuda:1, mps or xpu")
    return text


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", type=device_name, metavar="DEVICE",
                   help="auto (default: this machine's accelerator, else the CPU) or a torch "
                        "device such as cpu, cuda, cuda:1, mps, xpu")


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="where datasets live (default $LENET_DATA_DIR or cache)")


def add_run_dir(p: argparse.ArgumentParser, help: str, *aliases: str,
                default: str | None = None) -> None:
    """``--run-dir DIR``; `aliases` are older spellings, accepted but not shown."""
    p.add_argument("--run-dir", dest="run_dir", metavar="DIR", default=default, help=help)
    for alias in aliases:
        p.add_argument(alias, dest="run_dir", metavar="DIR", help=argparse.SUPPRESS)


def add_out(p: argparse.ArgumentParser, help: str, *aliases: str,
            default: str | None = None) -> None:
    """``--out FILE``; `aliases` are older spellings, accepted but not shown."""
    p.add_argument("--out", dest="out", metavar="FILE", default=default, help=help)
    for alias in aliases:
        p.add_argument(alias, dest="out", metavar="FILE", help=argparse.SUPPRESS)


WEIGHTS_HELP = ("bundled weights by name (`lenet weights list`: lenet5, lenet5-1998, ...), a run "
                "directory or a .safetensors file; an existing path wins over a name")


def add_weights(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--weights NAME|RUN_DIR|FILE``: the same vocabulary in every command that loads weights.
    """
    shown = f" (default: the bundled {default})" if default else ""
    p.add_argument("--weights", metavar="NAME|RUN_DIR|FILE", default=None,
                   help=WEIGHTS_HELP + shown)


def pick_weights(positional: str | None, flag: str | None, default: str | None = None
                 ) -> str:
    """The weights a command loads: its positional argument or ``--weights`` (not two different
    ones), else `default`."""
    from lenet.errors import ConfigError

    if positional is not None and flag is not None and positional != flag:
        raise ConfigError(f"two weights given ({positional!r} and --weights {flag!r}); "
                          "give one")
    chosen = positional or flag or default
    if chosen is None:
        raise ConfigError("no weights given: name a run directory or a weights file, or pass "
                          "--weights NAME (`lenet weights list`)")
    return chosen


def print_file_results(results: list[dict], as_json: bool, line: Callable[[dict], str],
                       key: str) -> int:
    """`lenet predict`'s and `lenet read`'s output: one line (or the JSON list) per file, then
    one error line per failed file (shown under -q too); exit status 1 if any failed."""
    # Imported here, as commands do: `lenet --help` stays instant.
    from lenet.console import logger, print_json

    failed = [r for r in results if "error" in r]
    if as_json:
        print_json(results)
    else:
        for r in results:
            if "error" not in r:
                print(line(r))
    for r in failed:
        logger().error(f"lenet: error: {r[key]}: {r['error']}")
    return 1 if failed else 0

