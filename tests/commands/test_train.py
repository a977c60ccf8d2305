"""`lenet train`'s command line: the config flags, --resume and --nproc."""

from __future__ import annotations

import argparse

from lenet.commands import train


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lenet")
    train.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *argv])


def test_flags_reach_the_config_and_the_handler_is_run() -> None:
    from lenet.config import resolve
    from lenet.config.arguments import train_overrides

    args = _parse("--config", "lenet5-fast", "--epochs", "2", "--channels-last", "--json")
    assert args.handler is train.run and args.json and args.resume is None
    cfg = resolve(args.config, train_overrides(args))
    assert (cfg.epochs, cfg.channels_last, cfg.optimizer) == (2, True, "sgd")


def test_resume_and_nproc_are_command_flags() -> None:
    args = _parse("--resume", "runs/a", "--nproc", "2", "--epochs", "5")
    assert (args.resume, args.nproc, args.epochs) == ("runs/a", 2, 5)


def test_print_config_prints_the_resolved_recipe_and_trains_nothing(tmp_path, capsys) -> None:
    import yaml

    from lenet.config import resolve
    from lenet.config.arguments import train_overrides

    run_dir = tmp_path / "run"
    args = _parse("--config", "lenet5-fast", "--epochs", "3", "--device", "cpu",
                  "--set", "rbf_j=2", "--run-dir", str(run_dir), "--print-config")
    assert train.run(args) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    expected = resolve("lenet5-fast", train_overrides(args)).to_dict()
    assert printed == expected
    assert list(printed) == list(expected)  # every key, in TrainConfig's order
    assert (printed["epochs"], printed["device"], printed["rbf_j"]) == (3, "cpu", 2.0)
    assert not run_dir.exists()
    # What it prints is a recipe: given back as --config, it resolves to the same config.
    recipe = tmp_path / "printed.yaml"
    recipe.write_text(yaml.safe_dump(printed))
    assert resolve(str(recipe), {}).to_dict() == expected


def test_print_config_on_the_command_line_and_its_errors(capsys) -> None:
    import yaml

    from lenet import cli
    from tests.commands.cli import lenet

    out = lenet("train", "--model", "lenet1", "--epochs", "2", "--print-config").stdout
    cfg = yaml.safe_load(out)
    assert (cfg["model"], cfg["epochs"], cfg["tensorboard"]) == ("lenet1", 2, True)
    assert cli.main(["train", "--print-config", "--lr", "-1"]) == 2
    bad = capsys.readouterr()
    assert bad.out == ""
    assert bad.err.startswith("lenet: error: lr must be a positive number")
    assert bad.err.count("\n") == 1
