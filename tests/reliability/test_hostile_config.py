"""Hostile configs (issue 32): alias bombs, deep nesting, huge files and numbers, values of the
wrong type, bad environment variables: each is one `lenet: error:` line (a ConfigError from
Python), never a MemoryError, RecursionError or ValueError traceback, and nothing is trained."""

from __future__ import annotations

import dataclasses
import os
import sys
from itertools import pairwise
from pathlib import Path

import pytest

from lenet.config import TrainConfig, resolve
from lenet.config.recipes import MAX_RECIPE_BYTES
from lenet.errors import ConfigError
from lenet.storage import rundir
from tests.reliability.conftest import TINY_ARGS, one_line_error

# "Billion laughs": nine levels of nine aliases, 9^9 strings once expanded.
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in pairwise("abcdefghi"))
FLOAT_KEYS = [f.name for f in dataclasses.fields(TrainConfig) if f.type == "float"]
assert {"lr", "rbf_j", "gamma"} <= set(FLOAT_KEYS)


def _train_with(tmp_path: Path, lenet, recipe: str) -> str:
    """`lenet train --config RECIPE`: asserts status 2 and nothing trained; the error line."""
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe)
    code, err = lenet("train", "--config", str(path), "--run-dir", str(tmp_path / "run"))
    assert code == 2, err
    assert not (tmp_path / "run").exists()
    return one_line_error(err)


@pytest.mark.parametrize(("recipe", "says"), [
    (BOMB, "line 2: YAML aliases (*a) are not allowed in a config; write the value out"),
    (BOMB.replace("\ni:", "\nmodel:"), "YAML aliases (*a) are not allowed"),
    ("base: &b {lr: 0.1}\n<<: *b\n", "YAML aliases (*b) are not allowed"),
    ("epochs: " + "[" * 5000 + "]" * 5000 + "\n", "line 1: nested more than 16 levels deep"),
    ("epochs: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", "nested more than 16 levels deep"),
    ("lr: 1" + "0" * 5000 + "\n", "a number has more digits than Python reads"),
    ("model: !!python/object:os.system ls\n", "not valid YAML: could not determine a constructor"),
])
def test_yaml_bombs_are_one_line(tmp_path, lenet, recipe, says) -> None:
    # Was: MemoryError (aliases expanded by str()), RecursionError, ValueError tracebacks.
    assert says in _train_with(tmp_path, lenet, recipe)


def test_a_huge_or_special_config_file_is_refused_unread(tmp_path, lenet) -> None:
    assert "larger than 1024 KiB" in _train_with(
        tmp_path, lenet, "# padding\n" * (MAX_RECIPE_BYTES // 10 + 1) + "epochs: 1\n")
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # reading it would block until a writer comes: forever
    code, err = lenet("train", "--config", str(fifo))
    assert code == 2 and "fifo.yaml is not a regular file" in one_line_error(err)


@pytest.mark.parametrize(("recipe", "says"), [
    ("nesterov: [1]\n", "invalid value [1] for 'nesterov' (expected true or false, got a list)"),
    ("nesterov: 2\n", "for 'nesterov' (expected true or false, got an integer)"),
    ("nesterov: maybe\n", "'maybe' is not a boolean; use true or false"),
    ("epochs: true\n", "for 'epochs' (expected a whole number, got a boolean)"),
    ("epochs: 2.5\n", "invalid value 2.5 for 'epochs' (2.5 is not an integer)"),
    ("epochs: [3]\n", "for 'epochs' (expected a whole number, got a list)"),
    ("lr: [0.1]\n", "for 'lr' (expected a number, got a list)"),
    ("lr: {a: 1}\n", "for 'lr' (expected a number, got a mapping)"),
    ("lr: false\n", "for 'lr' (expected a number, got a boolean)"),
    ("model: [lenet5]\n", "for 'model' (expected a string, got a list)"),
    ("model: 2001-12-05\n", "for 'model' (expected a string, got a date)"),
    ("milestones: {3: 4}\n", "for 'milestones' (expected a list, got a mapping)"),
    ("milestones: [[3]]\n", "for 'milestones' (expected a whole number, got a list)"),
    ("milestones: [" + "1, " * 1001 + "]\n", "(1001 items, more than 1000)"),
])
def test_typed_keys_take_only_their_type(tmp_path, lenet, recipe, says) -> None:
    # Was: `nesterov: [1]` silently taken as true (bool([1])).
    assert says in _train_with(tmp_path, lenet, recipe)


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("value", ["-1e400", ".inf", "-.inf", ".nan"])
def test_every_float_key_refuses_inf_and_nan(tmp_path, lenet, key, value) -> None:
    # Was: rbf_j: -1e400 (a string to YAML, -inf to float()) accepted, then a traceback.
    assert f"for {key!r} (expected a finite number)" in _train_with(
        tmp_path, lenet, f"{key}: {value}\n")


def test_numbers_are_bounded_where_the_machine_is(tmp_path, lenet) -> None:
    # Was: --threads 10000000 reached torch.set_num_threads (a segfault in the first matmul).
    code, err = lenet("train", *TINY_ARGS, "--threads", "10000000", "--run-dir",
                      str(tmp_path / "run"))
    assert code == 2 and "threads must be at most" in one_line_error(err)
    assert not (tmp_path / "run").exists()
    for overrides, says in [
        ({"epochs": 10**5000}, "epochs must be at most 1,000,000, got an integer of about "
                               "5000 digits"),
        ({"batch_size": 10**12}, "batch_size must be at most 1,000,000,000"),
        ({"train_subset": 2**70}, "train_subset must be at most"),
        ({"rbf_j": -1.0}, "rbf_j must be from 0 to 1000"),
        ({"rbf_j": 1e300}, "rbf_j must be from 0 to 1000"),
        ({"lr": 10**400}, "invalid value an integer of about 400 digits for 'lr' (int too large"),
        ({"seed": 10**5000}, "seed must be an integer from 0 to 9223372036854775806, got an "
                             "integer of about 5000 digits"),
        ({"scheduler": "milestones", "milestones": [2, 10**9], "lr_values": [1, 2, 3]},
         "milestones must be epochs from 0 to 1,000,000"),
        ({"milestones": [10**5000]}, "got a list holding an integer too long to show"),
    ]:
        with pytest.raises(ConfigError) as e:
            resolve(None, overrides)
        assert says in str(e.value), (overrides, str(e.value))


def test_a_huge_integer_in_a_resumed_config_json_is_one_line(two_epochs, copy_of, lenet) -> None:
    # Was: ValueError (Exceeds the limit (4300 digits) for integer string conversion).
    run = copy_of(two_epochs)
    text = (run / rundir.CONFIG).read_text()
    (run / rundir.CONFIG).write_text(text.replace('"epochs": 2', '"epochs": 1' + "0" * 5000))
    assert '"epochs": 1000' in (run / rundir.CONFIG).read_text()
    code, err = lenet("train", "--resume", str(run))
    assert code == 2 and str(run / rundir.CONFIG) in one_line_error(err)


def test_unknown_keys_and_choices_suggest_the_nearest(tmp_path, lenet) -> None:
    line = _train_with(tmp_path, lenet, "epochz: 3\n")
    assert "unknown key 'epochz' (did you mean 'epochs'?); valid keys: model," in line
    with pytest.raises(ConfigError, match=r"unknown key 'warmup-frac' \(did you mean "
                                          r"'warmup_fraction'\?\)"):
        resolve(None, {"warmup-frac": 0.1})
    with pytest.raises(ConfigError, match=r"optimizer must be one of .*, got 'adan' \(did you "
                                          r"mean 'adam'\?\)"):
        resolve(None, {"optimizer": "adan"})
    with pytest.raises(ConfigError, match=r"unknown key 'zzzzzz'; valid keys"):  # none near
        resolve(None, {"zzzzzz": 1})


@pytest.mark.parametrize(("flag", "says"), [
    (("--model", "lenet6"), "unknown model 'lenet6'; known models: lenet5"),
    (("--dataset", "mnistt"), "unknown dataset 'mnistt'; known datasets: mnist"),
])
def test_print_config_checks_the_names(lenet, capsys, flag, says) -> None:
    # Was: `lenet train --model lenet6 --print-config` printed a recipe and exited 0.
    code, err = lenet("train", *flag, "--print-config")
    assert code == 2 and says in one_line_error(err)
    assert capsys.readouterr().out == ""


def test_a_config_name_the_os_cannot_take_is_one_line() -> None:
    for name in ["a\0b", "x" * 5000, "x" * 5000 + ".yaml"]:
        with pytest.raises(ConfigError):
            resolve(name)
    with pytest.raises(ConfigError, match="unknown key"):  # the model's recipe is not looked up
        resolve(None, {"model": "../" * 50 + "etc/passwd\0", "nope": 1})


@pytest.mark.parametrize(("var", "value", "says"), [
    ("NUMBA_NUM_THREADS", "0", "NUMBA_NUM_THREADS='0', read by numba's thread pool: expected a "
                               "whole number from 1 to"),
    ("LENET_DATA_DIR", "~nosuchuser/x", "LENET_DATA_DIR='~nosuchuser/x', read by lenet, the "
                                        "data dir: expected a path whose ~ expands"),
    ("XDG_CACHE_HOME", "~nosuchuser", "XDG_CACHE_HOME='~nosuchuser'"),
    ("OMP_NUM_THREADS", "abc", "OMP_NUM_THREADS='abc', read by torch's OpenMP threads: "
                               "expected a thread count from 1 to"),
    ("OMP_NUM_THREADS", "10000000", "OMP_NUM_THREADS='10000000'"),
    ("MKL_NUM_THREADS", "-1", "MKL_NUM_THREADS='-1', read by MKL"),
    ("NUMBA_OPT", "fast", "NUMBA_OPT='fast', read by numba: expected one of 0, 1, 2, 3, max"),
    ("NUMBA_THREADING_LAYER", "gpu", "NUMBA_THREADING_LAYER='gpu'"),
    ("RANK", "x", "RANK='x', read by torch.distributed, set by torchrun"),
    ("WORLD_SIZE", "0", "WORLD_SIZE='0'"),
    ("TQDM_MININTERVAL", "soon", "TQDM_MININTERVAL='soon', read by tqdm: expected a number"),
    ("TQDM_NCOLS", "wide", "TQDM_NCOLS='wide'"),
    ("LENET_MIRRORS", "ftp://old.example/mnist", "LENET_MIRRORS='ftp://old.example/mnist'"),
])
def test_environment_variables_are_checked_up_front(monkeypatch, lenet, var, value, says):
    # Was: ValueError at numba's import, RuntimeError "Could not determine home directory",
    # an int() traceback, tqdm's float() at import; OMP/MKL garbage silently ignored.
    monkeypatch.setenv(var, value)
    code, err = lenet("models")
    line = one_line_error(err)
    assert code == 2 and line.startswith("lenet: error: environment variable ")
    assert says in line and f"(`unset {var}`)" in line


def test_distributed_variables_must_agree(monkeypatch, lenet) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    code, err = lenet("models")
    assert code == 2 and "WORLD_SIZE=2 asks for distributed training, and MASTER_ADDR is not " \
                         "set" in one_line_error(err)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("RANK", "2")
    code, err = lenet("models")
    assert code == 2 and "RANK=2 and WORLD_SIZE=2: the rank must be below" in one_line_error(err)


def test_good_environment_values_pass(monkeypatch) -> None:
    from lenet.runtime.environment import check_environment

    check_environment({"OMP_NUM_THREADS": "4,2", "MKL_NUM_THREADS": " 3 ", "NUMBA_OPT": "max",
                       "LENET_DATA_DIR": "~/data", "LENET_MIRRORS": "", "RANK": "1",
                       "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "29500",
                       "TQDM_MININTERVAL": "0.5", "NUMBA_NUM_THREADS": ""})
    check_environment({})


def test_the_environment_check_reads_nothing_heavy() -> None:
    import subprocess

    code = ("import sys; import lenet.runtime.environment, lenet.config; "
            "print(sorted(m for m in ('torch', 'numba', 'tqdm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "[]"


def test_a_thread_count_no_machine_runs_is_refused_before_torch_sees_it() -> None:
    # A TrainConfig built by hand skips resolve(); the block that sets torch's threads checks.
    import torch

    from lenet.runtime.threads import threads

    before = torch.get_num_threads()
    with pytest.raises(ValueError, match="10000000 threads is more than"), threads(10_000_000):
        pass
    assert torch.get_num_threads() == before


def test_a_wrong_type_in_a_resumed_config_json_names_the_file(two_epochs, copy_of, lenet):
    run = copy_of(two_epochs)
    text = (run / rundir.CONFIG).read_text()
    (run / rundir.CONFIG).write_text(text.replace('"nesterov": false', '"nesterov": [1]'))
    code, err = lenet("train", "--resume", str(run))
    assert code == 2
    assert f"{run / rundir.CONFIG} or the command line: invalid value [1] for 'nesterov' " \
           "(expected true or false, got a list)" in one_line_error(err)
