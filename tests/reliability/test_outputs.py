"""Never replace what lenet did not write (issue 32, item 6).

Was: `lenet compare RUN --out /dev/null`, as root, turned /dev/null into a 23 KB PNG (export
refused devices, compare did not); `lenet export --format web --out DIR` replaced a user's
index.html in DIR. Every write now goes through one atomic path that replaces regular files
only, and a web export replaces only the files an earlier export wrote (its manifest).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lenet import cli
from lenet.errors import OutputError
from lenet.inference.webexport import MANIFEST, export_web
from lenet.storage import atomic, rundir
from tests.reliability.conftest import one_line_error


@contextmanager
def _special(path: Path, kind: str) -> Iterator[None]:
    """`path` made a FIFO, a socket, or a symbolic link to a file elsewhere."""
    if kind == "fifo":
        os.mkfifo(path)
        yield
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))
            yield
    else:
        target = path.parent.parent / "elsewhere.txt"
        target.write_text("not yours\n")
        path.symlink_to(target)
        yield
        assert target.read_text() == "not yours\n"


KINDS = {"fifo": "a FIFO", "socket": "a socket", "symlink": "a symbolic link"}


@pytest.mark.parametrize("kind", KINDS)
def test_the_one_write_path_replaces_only_regular_files(tmp_path, kind) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    path = folder / "figure.png"
    with _special(path, kind):
        with pytest.raises(OutputError, match=f"it is {KINDS[kind]}, which lenet never"):
            atomic.write_bytes(path, b"PNG")
        with pytest.raises(OutputError, match="not a regular file"):
            atomic.ensure_writable(path)
        mode = os.lstat(path).st_mode
    assert not stat.S_ISREG(mode)  # left as it was
    assert sorted(p.name for p in folder.iterdir()) == ["figure.png"]  # no temp file left


def _metrics_only_run(folder: Path) -> Path:
    rundir.write_metrics(folder, ["epoch", "test_accuracy"], [{"epoch": 1, "test_accuracy": 0.5},
                                                              {"epoch": 2, "test_accuracy": 0.7}])
    rundir.write_config(folder, {"model": "lenet5"})
    return folder


@pytest.mark.parametrize("kind", KINDS)
def test_compare_out_refuses_fifos_sockets_and_links(tmp_path, capsys, kind) -> None:
    run = _metrics_only_run(tmp_path / "run")
    out = tmp_path / "curves.png"
    with _special(out, kind):
        code = cli.main(["compare", str(run), "--out", str(out)])
        line = one_line_error(capsys.readouterr().err)
        assert code == 2 and str(out) in line and KINDS[kind] in line
        assert not stat.S_ISREG(os.lstat(out).st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can replace /dev/null")
def test_compare_out_dev_null_as_root_is_refused_and_dev_null_kept(tmp_path, capsys) -> None:
    run = _metrics_only_run(tmp_path / "run")
    code = cli.main(["compare", str(run), "--out", "/dev/null"])
    line = one_line_error(capsys.readouterr().err)
    assert code == 2 and "/dev/null" in line and "character device" in line
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not [n for n in os.listdir("/dev") if n.startswith(".null.")]  # no temp file


# --------------------------------------------------------------------------- web export
def _site(folder: Path) -> Path:
    return export_web("lenet5", folder)


def test_web_export_refuses_a_non_empty_folder_without_overwrite(tmp_path, capsys) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("<h1>my page</h1>")
    code = cli.main(["export", "lenet5", "--format", "web", "--out", str(out)])
    line = one_line_error(capsys.readouterr().err)
    assert code == 2 and "it is not empty (index.html)" in line and "--overwrite" in line
    assert sorted(os.listdir(out)) == ["index.html"]
    assert (out / "index.html").read_text() == "<h1>my page</h1>"


def test_overwrite_never_replaces_a_users_file_of_the_sites_names(tmp_path, capsys) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("<h1>my page</h1>")
    code = cli.main(["export", "lenet5", "--format", "web", "--out", str(out), "--overwrite"])
    line = one_line_error(capsys.readouterr().err)
    assert code == 2 and "index.html there is not a file lenet wrote" in line
    assert sorted(os.listdir(out)) == ["index.html"]
    assert (out / "index.html").read_text() == "<h1>my page</h1>"


def test_overwrite_replaces_an_earlier_export_and_nothing_else(tmp_path, capsys) -> None:
    out = _site(tmp_path / "site")
    listed = json.loads((out / MANIFEST).read_text())["files"]
    assert sorted(listed) == sorted(n for n in os.listdir(out) if n != MANIFEST)
    # The user's own things beside it: hidden notes, a folder, a file of a checkpoint's name.
    (out / ".notes.tmp").write_text("mine")
    (out / "epoch-0001.safetensors").mkdir()
    (out / "README.txt").write_text("mine too")
    # A file an older export wrote and this one no longer does: listed, so removed.
    (out / "old.js").write_text("// old")
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"]["old.js"] = hashlib.sha256(b"// old").hexdigest()
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(OutputError, match="not empty"):
        _site(out)
    assert cli.main(["export", "lenet5", "--format", "web", "--out", str(out),
                     "--overwrite"]) == 0, capsys.readouterr().err
    assert (out / ".notes.tmp").read_text() == "mine"
    assert (out / "epoch-0001.safetensors").is_dir()
    assert (out / "README.txt").read_text() == "mine too"
    assert not (out / "old.js").exists()
    assert (out / "index.html").is_file() and (out / MANIFEST).is_file()


def test_overwrite_refuses_a_file_edited_since_the_export(tmp_path) -> None:
    out = _site(tmp_path / "site")
    (out / "style.css").write_text("body { color: hotpink }")
    with pytest.raises(OutputError, match=r"style\.css there is not a file lenet wrote"):
        export_web("lenet5", out, overwrite=True)
    assert (out / "style.css").read_text() == "body { color: hotpink }"


def test_a_forged_manifest_cannot_reach_outside_the_folder(tmp_path) -> None:
    out = _site(tmp_path / "site")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    digest = hashlib.sha256(b"keep").hexdigest()
    (out / MANIFEST).write_text(json.dumps({"files": {
        "../victim.txt": digest, str(victim): digest, **json.loads(
            (out / MANIFEST).read_text())["files"]}}))
    export_web("lenet5", out, overwrite=True)
    assert victim.read_text() == "keep"


def test_a_symlink_named_like_a_site_file_is_not_written_through(tmp_path) -> None:
    out = _site(tmp_path / "site")
    victim = tmp_path / "victim.js"
    victim.write_text("keep")
    (out / "app.js").unlink()
    (out / "app.js").symlink_to(victim)
    with pytest.raises(OutputError, match=r"app\.js there is not a file lenet wrote"):
        export_web("lenet5", out, overwrite=True)
    assert victim.read_text() == "keep" and (out / "app.js").is_symlink()
