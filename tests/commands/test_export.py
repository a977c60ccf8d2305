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


def test_the_pages_reader_is_chosen_with_reader(tmp_path, capsys):
    from lenet.models.readers import DEFAULT_READER, is_reader_name, publish, reader_meta
    from lenet.models.sdnn import SDNN

    if not is_reader_name(DEFAULT_READER):
        pytest.skip("no bundled reader weights")
    mine = publish(SDNN(), reader_meta(0.5, {"margin": 12}), "mine", tmp_path / "mine")
    assert cli.main(["export", "lenet5", "--format", "web", "--reader", str(mine),
                     "-o", str(tmp_path / "own")]) == 0
    assert (tmp_path / "own" / "reader.js").is_file()
    assert cli.main(["export", "lenet5", "--format", "web", "--reader", "none",
                     "-o", str(tmp_path / "digits")]) == 0
    assert not (tmp_path / "digits" / "reader.js").exists()
    capsys.readouterr()
    assert cli.main(["export", "lenet5", "--format", "web", "--reader",
                     str(tmp_path / "nosuch.safetensors"), "-o", str(tmp_path / "bad")]) == 2
    assert "nosuch.safetensors: no such weights file" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
    # --reader is the page's: with ONNX it is a one-line error naming the way to export one.
    assert cli.main(["export", "lenet5", "--reader", "lenet5-sdnn"]) == 2
    assert "lenet export lenet5-sdnn" in capsys.readouterr().err
