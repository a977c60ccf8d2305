"""Flags that several commands share, spelled one way everywhere.

``--run-dir DIR`` is a run folder (or a folder of runs), ``--out FILE`` a file the command
writes, ``--device`` defaults to ``auto`` (CUDA, then MPS, then the CPU). An older spelling of a
flag stays accepted as a hidden alias, so existing scripts keep working.
"""

from __future__ import annotations

import argparse

DEVICES = ("auto", "cpu", "cuda", "mps")


def add_json(p: argparse.ArgumentParser, what: str = "the result") -> None:
    p.add_argument("--json", action="store_true",
                   help=f"print {what} as one JSON object on stdout (progress goes to stderr)")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=DEVICES,
                   help="auto (default: CUDA, then MPS, then the CPU), cpu, cuda or mps")


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
