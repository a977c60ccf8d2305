import pytest

from lenet.config import config_dir, resolve
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
        ({"lr": -1}, "lr must be positive"),
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
    with pytest.raises(ConfigError, match="does not exist"):
        resolve(str(tmp_path / "missing.yaml"))
