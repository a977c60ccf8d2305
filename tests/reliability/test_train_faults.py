"""Trouble while training is one line (issue 20): a full disk, a read-only place, a run dir that
is a file, a diverging loss, a bad config or metrics file, signals; never a traceback."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lenet.errors import ConfigError
from lenet.models import weights
from lenet.storage import atomic, checkpoint, rundir
from lenet.training.loop import fit as train
from lenet.training.result import TrainingError
from lenet.training.schedule import Schedule
from lenet.training.signals import TrainingInterrupted
from tests.reliability.conftest import TINY_ARGS, one_line_error


def _fail_writes(monkeypatch, err: int, when) -> list[Path]:
    """Make atomic writes of the paths `when(path)` picks raise OSError(err); those tried."""
    tried: list[Path] = []
    real = atomic.write_bytes

    def write(path, data):
        path = Path(path)
        if when(path):
            tried.append(path)
            raise OSError(err, os.strerror(err))  # as a write() fails: no file name
        return real(path, data)

    monkeypatch.setattr(atomic, "write_bytes", write)
    return tried


def test_disk_full_mid_run_is_one_line_and_the_run_resumes(tmp_path, lenet, monkeypatch) -> None:
    # Was: an ENOSPC traceback.
    run = tmp_path / "run"
    tried = _fail_writes(monkeypatch, errno.ENOSPC, lambda p: p.name == "epoch-0002.safetensors")
    code, err = lenet("train", *TINY_ARGS, "--epochs", "3", "--run-dir", str(run))
    assert code == 2 and tried
    line = one_line_error(err)
    assert f"{run}: no space left on its device" in line
    assert f"then continue with `lenet train --resume {run}`" in line
    # The checkpoint before it was kept (deleted only once a newer one is written), intact.
    kept = sorted(p.name for p in (run / checkpoint.CHECKPOINT_DIR).iterdir())
    assert kept == ["epoch-0001.safetensors"]
    assert checkpoint.latest(run).epoch == 1
    monkeypatch.undo()  # space again
    code, err = lenet("train", "--resume", str(run))
    assert code == 0, err
    assert f"resuming {run} from epoch 1" in err and weights.read(run)[1].extra["epoch"] == 3


@pytest.mark.parametrize(("err", "says"), [
    (errno.ENOSPC, "no space left on its device"),
    (errno.EROFS, "is on a read-only file system; choose another --run-dir"),
    (errno.EACCES, "permission denied; choose another --run-dir"),
])
def test_a_run_dir_that_cannot_be_written_is_one_line(tmp_path, lenet, monkeypatch, err,
                                                      says) -> None:
    # Faked for every file of the run (config.json is the first): this also runs as root,
    # whom chmod does not stop.
    run = tmp_path / "run"
    _fail_writes(monkeypatch, err, lambda p: run in p.parents)
    code, stderr = lenet("train", *TINY_ARGS, "--run-dir", str(run))
    assert code == 2
    line = one_line_error(stderr)
    assert f"lenet: error: {run}" in line and says in line
    assert "--resume" not in line  # nothing to resume: no checkpoint was written


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; see the "
                                              "faked EROFS/EACCES test above")
def test_a_read_only_run_dir_is_one_line(tmp_path, lenet) -> None:
    for run in (tmp_path / "ro", tmp_path / "ro-parent" / "run"):
        folder = run if run.name == "ro" else run.parent
        folder.mkdir()
        folder.chmod(0o555)
        try:
            code, err = lenet("train", *TINY_ARGS, "--run-dir", str(run))
        finally:
            folder.chmod(0o755)
        assert code == 2 and "permission denied" in one_line_error(err)


@pytest.mark.parametrize("kind", ["file", "under-a-file", "dev-null"])
def test_a_run_dir_that_is_not_a_directory_is_one_line(tmp_path, lenet, kind) -> None:
    # Was: a FileExistsError / NotADirectoryError traceback.
    (tmp_path / "file").write_text("not a folder")
    run = {"file": tmp_path / "file", "under-a-file": tmp_path / "file" / "run",
           "dev-null": Path(os.devnull)}[kind]
    code, err = lenet("train", *TINY_ARGS, "--run-dir", str(run))
    assert code == 2
    line = one_line_error(err)
    assert "exists and is not a directory" in line and "choose another --run-dir" in line
    assert (tmp_path / "file").read_text() == "not a folder"


def test_signals_exit_with_the_shells_codes() -> None:
    # The real SIGTERM (143) is in test_run_dir; SIGINT (130) in tests/training/test_resume.py.
    assert TrainingInterrupted("stopped", signal.SIGINT).exit_code == 130
    assert TrainingInterrupted("stopped", signal.SIGTERM).exit_code == 143


@pytest.mark.parametrize("module", [
    "lenet.cli",
    "lenet.commands.train",
    "lenet.training.loop",
    "torch",
])
def test_ctrl_c_in_the_first_moments_is_one_line(tmp_path, module) -> None:
    # Ctrl-C in the first 0.2 s lands while Python imports lenet and torch: raised here exactly
    # when `module` is imported, by an import hook (sitecustomize), so the moment is certain.
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os, sys\n"
        "class CtrlC:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == os.environ['LENET_TEST_CTRL_C']:\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, CtrlC())\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(hook), os.environ.get("PYTHONPATH")])), "LENET_TEST_CTRL_C": module}
    proc = subprocess.run([sys.executable, "-m", "lenet", "train", *TINY_ARGS, "--run-dir",
                           str(tmp_path / "run")], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 130
    assert proc.stderr == "lenet: interrupted\n", proc.stderr
    assert not (tmp_path / "run").exists()


def test_the_nan_error_names_the_rate_that_diverged(tiny, tmp_path) -> None:
    # Was: the base --lr, and a 'last good checkpoint' that did not exist.
    cfg = tiny(tmp_path / "run", optimizer="sgd", lr=1e30, scheduler="onecycle", epochs=4)
    with pytest.raises(TrainingError) as e:
        train(cfg, log=lambda _: None)
    steps = 4  # 256 digits, batch 64
    rate = Schedule(cfg, steps).lr(0, 1)  # step 2 (global step 1) of the warm-up
    assert rate != cfg.lr
    message = str(e.value)
    assert f", step 2, at learning rate {rate:g}; " in message, message
    assert "(now --lr 1e+30 with the onecycle schedule)" in message
    assert message.endswith("No checkpoint had been written yet")


@pytest.mark.parametrize(("recipe", "says"), [
    ("1: 2\n", "recipe.yaml: key 1 is not a name"),
    ("seed: 1.0e+23\n", "seed must be an integer from 0 to 9223372036854775806, got 1e+23"),
    ("seed: -1\n", "seed must be an integer from 0"),
    ("[1, 2]\n", "recipe.yaml must be a mapping of keys to values, got list"),
])
def test_bad_config_files_are_one_line(tmp_path, lenet, recipe, says) -> None:
    # Was: AttributeError ('int' object has no attribute 'replace'), OverflowError in torch.
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe)
    code, err = lenet("train", "--config", str(path), "--run-dir", str(tmp_path / "run"))
    assert code == 2 and says in one_line_error(err)
    assert not (tmp_path / "run").exists()


def test_a_huge_seed_on_the_command_line_is_refused(lenet, capsys, tmp_path) -> None:
    code, err = lenet("train", *TINY_ARGS, "--set", "seed=1e23", "--run-dir", str(tmp_path / "r"))
    assert code == 2 and "invalid value '1e23' for 'seed'" in one_line_error(err)
    with pytest.raises(SystemExit) as e:  # argparse's own: usage and one error line
        lenet("train", "--seed", "1e23")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "argument --seed: invalid int value: '1e23'" in err
    with pytest.raises(ConfigError, match="seed must be an integer"):
        from lenet.config import resolve

        resolve(None, {"seed": 2**63})


def test_a_config_json_that_is_a_list_is_one_line(two_epochs, copy_of, lenet) -> None:
    run = copy_of(two_epochs)
    (run / rundir.CONFIG).write_text("[1, 2]\n")
    code, err = lenet("train", "--resume", str(run))
    assert code == 2
    assert f"{run / rundir.CONFIG}: expected a JSON object of config keys, got list" in \
        one_line_error(err)
    (run / rundir.CONFIG).write_text("[" * 100_000 + "]" * 100_000)
    code, err = lenet("train", "--resume", str(run))
    assert code == 2 and "nested too deeply" in one_line_error(err)


@pytest.mark.parametrize(("text", "says"), [
    ("epoch,test_accuracy\n1,0.5\n2\n", "line 3: 1 values for the 2 columns"),
    ("epoch,test_accuracy\n1,0.5,7\n", "line 2: 3 values for the 2 columns"),
    ("epoch,test_accuracy\n1,high\n", "line 2: test_accuracy is 'high', not a number"),
    ("when,what\n1,2\n", "line 1: not a lenet metrics header (no epoch"),
    ("epoch,epoch\n1,2\n", "line 1: not a lenet metrics header (a column named twice)"),
])
def test_a_malformed_metrics_csv_names_the_file_and_line(tmp_path, lenet, text, says) -> None:
    # Was: a traceback in `lenet report` (a None or a str where a number was expected).
    (tmp_path / rundir.METRICS).write_text(text)
    with pytest.raises(rundir.RunDirError) as e:
        rundir.read_metrics(tmp_path)
    assert str(e.value).startswith(f"{tmp_path / rundir.METRICS}, line ")
    assert says in str(e.value)
    code, err = lenet("compare", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "c.png"))
    assert code == 2 and says in one_line_error(err)
