"""`lenet export`'s command line: --out names the file, its old spellings still work."""

from __future__ import annotations

import pytest

from lenet import cli


def test_out_names_the_file_and_old_spellings_still_work(run_dir, tmp_path, capsys):
    for flag in ("--out", "-o", "--output"):
        target = tmp_path / flag.strip("-") / "digits.onnx"
        assert cli.main(["export", str(run_dir), flag, str(target)]) == 0
        assert capsys.readouterr().out.strip() == f"wrote {target}"
        assert target.is_file()
    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    help_text = capsys.readouterr().out
    assert "--out FILE" in help_text and "--output" not in help_text


def test_a_directory_as_output_is_one_line_and_status_2(tmp_path, capsys):
    # The check comes first: the weights need not even exist for it to answer.
    assert cli.main(["export", str(tmp_path / "absent"), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (f"lenet: error: cannot write {tmp_path}: it is a directory (give a file "
                   "name); choose another path with --out\n")
