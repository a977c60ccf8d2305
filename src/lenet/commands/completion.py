"""`lenet completion bash|zsh`: the shell's tab-completion script for every command and flag,
written by shtab from the same parser the command line uses, so it never goes stale."""

from __future__ import annotations

import argparse

SHELLS = ("bash", "zsh")

_HOWTO = """\
Install the script where your shell looks for completions, for example:
  bash: lenet completion bash > ~/.local/share/bash-completion/completions/lenet
  zsh:  lenet completion zsh > ~/.zfunc/_lenet   (with fpath+=(~/.zfunc) before compinit in
        ~/.zshrc)
then open a new shell."""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("completion", help="print the shell completion script (bash or zsh)",
                       description="Print the tab-completion script for SHELL on stdout.",
                       epilog=_HOWTO, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash or zsh")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from lenet.commands import build_parser
    from lenet.errors import LenetError

    try:
        import shtab
    except ImportError:
        raise LenetError("lenet completion needs shtab, which is missing from this "
                         "environment: pip install 'shtab>=1.7'") from None
    print(shtab.complete(build_parser(), shell=args.shell), end="")
    return 0
