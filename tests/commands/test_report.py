"""`lenet report` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.analysis.helpers import run_cli


def test_cli_report(runs, capsys) -> None:
    from lenet import cli

    rep = json.loads(run_cli(["report", str(runs["mlp"].run_dir), "--json"]))
    assert Path(rep["html"]).is_file()
    capsys.readouterr()
    assert cli.main(["report", str(runs["mlp"].run_dir)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("wrote ") and "figures and" in out and "note:" not in out  # result
    assert err.startswith("note: ")  # notes on stderr: -q hides them
    assert cli.main(["report", "-q", str(runs["mlp"].run_dir)]) == 0
    out, err = capsys.readouterr()
    assert "figures and" in out and err == ""


def test_a_read_only_run_dir_fails_before_any_work(tmp_path, monkeypatch, capsys) -> None:
    import errno
    import os
    import tempfile

    from lenet import cli
    from lenet.analysis.figures import run_report as report

    def erofs(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", erofs)
    monkeypatch.setattr(report, "build", lambda *a, **k: pytest.fail("evaluated anyway"))
    assert cli.main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"lenet: error: cannot write {tmp_path / 'report.html'}: {tmp_path} is not writable "
        f"({os.strerror(errno.EROFS)}); copy the run directory somewhere writable and report "
        "on the copy\n")


def test_the_report_file_name_is_the_one_run_report_writes() -> None:
    from lenet.analysis.figures.run_report import HTML
    from lenet.commands.report import HTML_NAME

    assert HTML_NAME == HTML


def test_report_on_bundled_weights_needs_no_run(tmp_path) -> None:
    from tests.commands.cli import lenet

    out = tmp_path / "rep"
    r = json.loads(lenet("report", "--weights", "lenet5", "--out", str(out), "--json").stdout)
    assert (out / "report.html").is_file() and (out / "confusion.png").is_file()
    assert "curves are in the run that trained them" in r["notes"]["curves"]
    assert r["evaluation"]["total"] == 10_000
    proc = lenet("report", str(tmp_path), "--weights", "lenet5", check=False)
    assert proc.returncode == 2 and "not both" in proc.stderr
