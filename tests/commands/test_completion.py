"""`lenet completion bash|zsh`: shtab's script from the real parser, one line without shtab."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

import pytest

from lenet import cli
from lenet.commands import NAMES, build_parser, completion


def _script(shell: str, capsys) -> str:
    args = build_parser().parse_args(["completion", shell])
    assert args.handler is completion.run
    assert completion.run(args) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("shell", completion.SHELLS)
def test_the_script_knows_every_command_and_flag(shell: str, capsys) -> None:
    script = _script(shell, capsys)
    assert "lenet" in script
    for name in NAMES:
        assert name in script, name
    for flag in ("--print-config", "--run-dir", "--device", "--no-tensorboard"):
        assert flag in script, flag


def test_bash_completes_a_command_and_a_flag(capsys, tmp_path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash here")
    path = tmp_path / "lenet.bash"
    path.write_text(_script("bash", capsys))
    # Complete `lenet tr` and `lenet train --print` as bash would, with the function the script
    # registered for `lenet`.
    probe = f"""
source {path}
fn=$(complete -p lenet | sed -E 's/.* -F ([^ ]+) .*/\\1/')
COMP_WORDS=(lenet tr); COMP_CWORD=1; $fn lenet tr lenet; echo "${{COMPREPLY[@]}}"
COMP_WORDS=(lenet train --print); COMP_CWORD=2; $fn lenet --print train; echo "${{COMPREPLY[@]}}"
"""
    out = subprocess.run([bash, "-c", probe], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["train", "--print-config"]


def test_an_unknown_shell_is_refused_by_the_parser(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["completion", "fish"])
    assert "invalid choice: 'fish'" in capsys.readouterr().err


def test_without_shtab_it_is_one_line_naming_the_install(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "shtab", None)  # `import shtab` raises ImportError
    assert cli.main(["completion", "bash"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("lenet: error: lenet completion needs shtab, which is missing from "
                            "this environment: pip install 'shtab>=1.7'\n")


def test_the_cli_and_completion_share_one_parser() -> None:
    def commands(parser: argparse.ArgumentParser) -> list[str]:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return list(sub.choices)

    assert commands(cli.build_parser()) == commands(build_parser()) == list(NAMES)
