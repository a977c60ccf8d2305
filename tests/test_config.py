import dataclasses
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from lenet.config import TrainConfig, config_dir, resolve
from lenet.errors import ConfigError


def test_default_is_the_paper_study_recipe() -> None:
    cfg = resolve()
    assert (cfg.model, cfg.optimizer, cfg.lr, cfg.batch_size, cfg.epochs) == (
        "lenet5", "adam", 0.01, 64, 10)
    assert (cfg.scheduler, cfg.step_size, cfg.gamma) == ("step", 3, 0.1)


def test_model_flag_picks_that_models_recipe() -> None:
    cfg = resolve(None, {"model": "lenet5-tanh"})
    assert (cfg.optimizer, cfg.momentum, cfg.batch_size, cfg.epochs) == ("sgd", 0.9, 128, 16)


def test_flags_override_the_recipe() -> None:
    cfg = resolve("lenet5", {"epochs": "3", "lr": 0.5, "nesterov": "true"})
    assert (cfg.epochs, cfg.lr, cfg.nesterov) == (3, 0.5, True)


def test_every_shipped_recipe_resolves() -> None:
    recipes = sorted(config_dir().glob("*.yaml"))
    assert len(recipes) >= 5
    for path in recipes:
        resolve(str(path))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochz": 3}, "unknown key 'epochz'"),
        ({"epochs": "three"}, "invalid value 'three' for 'epochs'"),
        ({"optimizer": "lbfgs"}, "optimizer must be one of"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"lr": -1}, "lr must be a positive number"),
        ({"lr": 0}, "lr must be a positive number"),
        ({"lr": "nan"}, r"invalid value 'nan' for 'lr' \(expected a finite number\)"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"batch_size": -5}, "batch_size must be at least 1"),
        ({"epochs": -1}, "epochs must be at least 1"),
        ({"scheduler": "exponential"}, "scheduler must be one of none, step"),
        ({"scheduler": "step", "step_size": 0}, "step_size must be at least 1"),
        ({"gamma": 0}, "gamma must be a positive decay factor"),
        ({"optimizer": "sgd", "momentum": -0.9}, "momentum must be 0 or more"),
        ({"weight_decay": -1e-4}, "weight_decay must be 0 or more"),
        ({"warmup_fraction": 1.5}, r"warmup_fraction must be in \[0, 1\]"),
        ({"scheduler": "milestones", "milestones": "2", "lr_values": "0.1,-0.01"},
         "lr_values must all be positive"),
        ({"seed": 1e23}, "seed must be an integer from 0 to 9223372036854775806, got 1e"),
        ({"seed": -1}, "seed must be an integer from 0"),
        ({"seed": "1e23"}, "invalid value '1e23' for 'seed'"),
        ({"val_fraction": 1.0}, r"val_fraction must be in \[0, 1\), got 1.0"),
        ({"val_fraction": -0.1}, r"val_fraction must be in \[0, 1\)"),
        ({"val_size": 500, "val_fraction": 0.2},
         r"val_size \(500\) and val_fraction \(0.2\) both set the validation split"),
        ({"early_stop": 3}, "early_stop 3 watches the validation loss, and there is no "
                            "validation split: add --val-size N or --val-fraction F"),
        ({"early_stop": -1, "val_size": 10}, "early_stop must be 0 or more"),
    ],
)
def test_bad_values_name_the_field(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(None, overrides)


def test_bad_yaml_file_names_the_file(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        resolve(str(bad))
    bad.write_text("epochs: 2\n3: 4\n")  # a YAML integer key
    with pytest.raises(ConfigError, match=r"bad\.yaml: key 3 is not a name"):
        resolve(str(bad))
    with pytest.raises(ConfigError, match="does not exist"):
        resolve(str(tmp_path / "missing.yaml"))


def test_nesterov_without_momentum_is_a_config_error_not_a_torch_traceback() -> None:
    # `lenet train --optimizer sgd --nesterov` with the default momentum 0.
    with pytest.raises(ConfigError, match=r"nesterov needs momentum > 0.*--momentum 0\.9"):
        resolve(None, {"model": "lenet5", "optimizer": "sgd", "nesterov": True})
    with pytest.raises(ConfigError, match="nesterov needs momentum > 0"):
        resolve("lenet5-fast", {"momentum": 0})
    cfg = resolve(None, {"model": "lenet5", "optimizer": "sgd", "nesterov": True,
                         "momentum": 0.9})
    assert (cfg.nesterov, cfg.momentum) == (True, 0.9)
    # Every accepted combination builds its torch optimizer.
    from lenet.models import create
    from lenet.training.optim import make_optimizer

    assert make_optimizer(cfg, create("lenet5")).defaults["nesterov"] is True


def test_cli_reports_bad_combinations_without_a_traceback(capsys, tmp_path) -> None:
    from lenet import cli

    # Small and in tmp_path, should a combination ever be accepted and start training.
    small = ["--train-subset", "64", "--test-subset", "64", "--no-tensorboard",
             "--run-dir", str(tmp_path / "run")]

    for argv, message in [
        (["--optimizer", "sgd", "--nesterov"], "nesterov needs momentum > 0"),
        (["--lr", "-0.1"], "lr must be a positive number"),
        (["--epochs", "0"], "epochs must be at least 1"),
        (["--batch-size", "0"], "batch_size must be at least 1"),
        (["--scheduler", "warm"], "scheduler must be one of"),
    ]:
        assert cli.main(["train", "--model", "lenet5", *small, *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("lenet: error: ") and message in err, (argv, err)
        assert "Traceback" not in err


def test_train_flags_and_choices_come_from_the_config_keys() -> None:
    import argparse
    import dataclasses

    from lenet.config import TrainConfig
    from lenet.config.arguments import add_train_arguments, train_overrides

    p = argparse.ArgumentParser()
    add_train_arguments(p)
    text = p.format_help()
    flags = set(re.findall(r"--[a-z][a-z0-9-]*", text))  # whole flags: --step is not --step-size
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        assert (flag in flags) == f.metadata["flag"], flag  # the rest go through --set
        if f.metadata["choices"] and f.metadata["flag"]:
            assert "{" + ",".join(f.metadata["choices"]) + "}" in text
        elif f.metadata["choices"]:  # a --set key's choices are checked when it is resolved
            with pytest.raises(ConfigError, match=f"{f.name} must be one of"):
                resolve(None, {f.name: "not-a-choice"})
    args = p.parse_args(["--lr", "0.1", "--bf16", "--no-tensorboard", "--set", "rbf_j=2",
                         "--set", "lr=0.2"])
    overrides = train_overrides(args)
    assert overrides["lr"] == "0.2" and overrides["bf16"] is True  # --set comes last, wins
    assert overrides["tensorboard"] is False and overrides["rbf_j"] == "2"
    assert overrides["epochs"] is None  # not given: the recipe's value stays
    assert resolve(None, overrides).lr == 0.2


def test_resume_config_changes_only_where_and_how_long(tmp_path) -> None:
    from lenet.config.arguments import resume_config
    from lenet.storage import rundir

    rundir.write_config(tmp_path, resolve("lenet5-fast", {"seed": 3}).to_dict())
    cfg = resume_config(str(tmp_path), None, {"epochs": 7, "lr": None})
    assert (cfg.epochs, cfg.seed, cfg.run_dir) == (7, 3, str(tmp_path))
    with pytest.raises(ConfigError, match="drop lr, config"):
        resume_config(str(tmp_path), "lenet5", {"lr": 0.5})
    # The run id that train stamps into config.json is the run's identity, not a config key.
    rundir.write_config(tmp_path, {**resolve("lenet5-fast").to_dict(), rundir.RUN_ID: "ab12"})
    assert resume_config(str(tmp_path), None, {}).epochs == resolve("lenet5-fast").epochs


def test_validation_split_by_size_or_fraction() -> None:
    from lenet.config import val_count

    assert val_count(resolve(None, {"val_size": 500}), 60000) == 500
    assert val_count(resolve(None, {"val_fraction": 0.2}), 60000) == 12000
    assert val_count(resolve(), 60000) == 0
    assert resolve(None, {"val_fraction": 0.1, "early_stop": 2}).early_stop == 2


def test_seed_002_recipe_holds_out_a_fifth_and_keeps_the_paper_study_training() -> None:
    cfg, base = resolve("lenet5-val"), resolve("lenet5")
    assert (cfg.val_fraction, cfg.val_size, cfg.early_stop) == (0.2, 0, 0)
    assert base.val_fraction == 0 and base.val_size == 0  # shipped: all 60,000 train
    assert {**cfg.to_dict(), "val_fraction": 0.0} == base.to_dict()


def test_train_help_states_each_config_default_while_flags_stay_unset() -> None:
    import argparse
    import dataclasses
    import re

    from lenet.config import TrainConfig
    from lenet.config.arguments import add_train_arguments

    p = argparse.ArgumentParser(prog="lenet train")
    add_train_arguments(p)
    text = " ".join(p.format_help().split())  # argparse wraps lines
    for f in dataclasses.fields(TrainConfig):
        if f.metadata["flag"]:
            helps = " ".join(f.metadata["help"].split())
            assert f"{helps} (default: {f.metadata['shown']})" in text, f.name
    for name, shown in [("lr", "0.01"), ("optimizer", "adam"), ("nesterov", "False"),
                        ("epochs", "10"), ("run_dir", "runs/<time>-<model>")]:
        assert re.search(rf"--{name.replace('_', '-')}\b.*?\(default: {re.escape(shown)}\)",
                         text), name
    assert "the recipe in use (--config, or the default one) may set its own" in text
    # The flags themselves default to None: only the flags given override the recipe.
    args = p.parse_args([])
    assert all(getattr(args, f.name) is None for f in dataclasses.fields(TrainConfig)
               if f.metadata["flag"])


def test_precision_and_its_older_spelling() -> None:
    assert resolve(None, {}).precision == "fp32"
    cfg = resolve(None, {"bf16": True})
    assert cfg.precision == "bf16" and cfg.bf16
    cfg = resolve(None, {"precision": "bf16"})
    assert cfg.precision == "bf16" and cfg.bf16  # a saved config reads the same either way
    assert resolve(None, {"precision": "auto"}).precision == "auto"
    with pytest.raises(ConfigError, match="bf16 and precision fp16 disagree"):
        resolve(None, {"bf16": True, "precision": "fp16"})
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, fp16, auto"):
        resolve(None, {"precision": "fp8"})


def test_threads_is_a_count() -> None:
    assert resolve(None, {}).threads == 0  # the free cores, decided when the run starts
    assert resolve(None, {"threads": 3}).threads == 3
    with pytest.raises(ConfigError, match="threads must be 0 or more, got -1"):
        resolve(None, {"threads": -1})


# --------------------------------------------------------------------------- fuzzing
# The config loader takes whatever a user or a hostile file gives it: YAML text, nested
# structures, command-line overrides. It returns a valid TrainConfig or raises ConfigError,
# never anything else (issue 32: no MemoryError, RecursionError, ValueError, TypeError).
_KEYS = [f.name for f in dataclasses.fields(TrainConfig)]
_TOKENS = [*_KEYS, "model", ":", ": ", " ", "\n", "- ", "[", "]", "{", "}", ",", "&a ", "*a",
           "<<: ", "!!python/object ", "!!binary ", "!!set ", "'", '"', "#", "?", "|", ">",
           "1e400", "-1e400", ".inf", ".nan", "true", "no", "null", "~", "0x1F", "1:30", "2.5",
           "-1", "0", "3", "9" * 40, "2001-12-05", "lenet5", "sgd", "onecycle", "\t", "\0",
           "\u2028", "%YAML 1.1\n", "---\n", "...\n", "\\", "é"]
_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
            | st.integers(min_value=-2**80, max_value=2**80)
            | st.sampled_from(["lenet5", "sgd", "true", "0", "1e400", "nan", "2,3", "0.1,0.01"]))
_HUGE = st.integers(0, 3).map(lambda k: 10 ** (4999 + k))  # past Python's int-to-text limit


def _nested(scalars: st.SearchStrategy) -> st.SearchStrategy:
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


_VALUES = _nested(_SCALARS)  # what YAML can hold
_OVERRIDES = st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=12),
                             _nested(_SCALARS | _HUGE), max_size=6)  # what Python can pass


def _valid_or_config_error(recipe: str | None, overrides: dict) -> None:
    try:
        cfg = resolve(recipe, overrides)
    except ConfigError as e:
        assert "\n" not in str(e).strip() and len(str(e)) < 2000, str(e)
        return
    assert isinstance(cfg, TrainConfig)
    assert resolve(None, cfg.to_dict()) == cfg  # what it accepts, it accepts again as is


@pytest.mark.fuzz
@given(text=st.lists(st.sampled_from(_TOKENS) | st.text(max_size=3), max_size=40).map("".join),
       overrides=_OVERRIDES)
def test_fuzz_config_loader(text: str, overrides: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "recipe.yaml"
        path.write_text(text, errors="surrogatepass")
        _valid_or_config_error(str(path), {})
        _valid_or_config_error(str(path), overrides)
    _valid_or_config_error(None, overrides)


@pytest.mark.fuzz
@given(data=st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=8))
def test_fuzz_config_loader_structures(data: dict) -> None:
    # Structured YAML: valid keys, values of every type and nesting, dumped as a user might.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "recipe.yaml"
        path.write_text(yaml.safe_dump(data))
        _valid_or_config_error(str(path), {})


def test_realistic_distortions_key_is_strict_and_kept_on_resume(tmp_path) -> None:
    from lenet.config.arguments import resume_config
    from lenet.storage import rundir

    assert resolve("lenet5-real").realistic and not resolve("lenet5-real").distort
    assert resolve(None, {"realistic": "yes"}).realistic is True
    assert resolve(None, {}).realistic is False
    with pytest.raises(ConfigError, match="realistic"):
        resolve(None, {"realistic": [1]})
    with pytest.raises(ConfigError, match="give one of them"):
        resolve(None, {"realistic": True, "distort": True})
    # A run saved before the key existed resumes without it; a realistic run stays one.
    old = resolve("lenet5").to_dict()
    del old["realistic"]
    rundir.write_config(tmp_path, old)
    assert resume_config(str(tmp_path), None, {}).realistic is False
    rundir.write_config(tmp_path, resolve("lenet5-real").to_dict())
    assert resume_config(str(tmp_path), None, {"epochs": 3}).realistic is True
    with pytest.raises(ConfigError, match="drop realistic"):
        resume_config(str(tmp_path), None, {"realistic": False})
