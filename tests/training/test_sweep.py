"""`lenet sweep`: grids of real `lenet train` processes, failures kept inside their run."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from lenet.errors import ConfigError
from lenet.training.sweep import parse_grid, plan, run_sweep

# Tiny real runs: a 1,000-digit subset, one epoch, on the CPU, no TensorBoard files.
TINY = {"epochs": 1, "train_subset": 1000, "test_subset": 500, "batch_size": 32, "device": "cpu",
        "tensorboard": False}


def test_parse_grid_splits_values_and_normalises_keys() -> None:
    grid = parse_grid(["lr=0.01,0.02", "batch-size=64", "milestones=3:6,5;8"])
    assert grid == {"lr": ["0.01", "0.02"], "batch_size": ["64"], "milestones": ["3:6", "5;8"]}
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid(["lr=0.1", "lr=0.2"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_grid(["lr"])
    with pytest.raises(ConfigError, match="empty value"):
        parse_grid(["lr=0.1,"])


def test_plan_is_the_cartesian_product_times_seeds(tmp_path: Path) -> None:
    grid = {"lr": ["0.01", "0.02"], "scheduler": ["milestones"], "milestones": ["1;2", "3:4"],
            "lr_values": ["0.1;0.01;0.001"]}
    points = plan("lenet5", grid, 3, tmp_path, TINY)
    assert len(points) == 4 and all(len(p.runs) == 3 for p in points)
    # Points are named by the keys that vary; every point carries all its values.
    assert [p.name for p in points] == ["lr=0.01,milestones=1_2", "lr=0.01,milestones=3_4",
                                        "lr=0.02,milestones=1_2", "lr=0.02,milestones=3_4"]
    assert points[3].params == {"lr": "0.02", "scheduler": "milestones", "milestones": "3:4",
                                "lr_values": "0.1;0.01;0.001"}
    assert [r.seed for r in points[0].runs] == [0, 1, 2]
    cmd = points[1].runs[2].command
    # List items reach `lenet train --set` comma-separated; the sweep sets seed and run dir.
    assert "milestones=3,4" in cmd and "lr_values=0.1,0.01,0.001" in cmd
    assert cmd[cmd.index("--seed") + 1] == "2"
    run_dir = Path(cmd[cmd.index("--run-dir") + 1])
    assert run_dir.parent == tmp_path and run_dir.name.endswith("-seed2")
    assert len({r.run_dir for p in points for r in p.runs}) == 12
    assert not list(tmp_path.iterdir())  # planning writes nothing


def test_python_callers_may_give_numbers_and_lists(tmp_path: Path) -> None:
    from lenet.training.sweep import _as_text

    assert [_as_text(v) for v in (0.01, 64, [3, 6], "5;8")] == ["0.01", "64", "3,6", "5;8"]
    with pytest.raises(ConfigError, match="len\\(lr_values\\) == len\\(milestones\\) \\+ 1"):
        run_sweep("lenet5", {"scheduler": ["milestones"], "milestones": [[3, 6]],
                             "lr_values": [[0.1, 0.01]]}, 1, 1, tmp_path / "s")


@pytest.mark.parametrize(
    ("grid", "extra", "message"),
    [
        ({"lrr": ["0.1"]}, {}, "unknown key 'lrr'"),
        ({"epochs": ["1", "0"]}, {}, "grid point epochs=0: epochs must be at least 1"),
        ({"lr": ["fast"]}, {}, "invalid value 'fast' for 'lr'"),
        ({"seed": ["1"]}, {}, "use --seeds"),
        ({}, {"seed": 3}, "the sweep sets it itself"),
        ({}, {"run_dir": "x"}, "the sweep sets it itself"),
        ({}, {"bogus": 1}, "unknown key 'bogus'"),
    ],
)
def test_mistakes_fail_before_any_run_starts(tmp_path: Path, grid: dict, extra: dict,
                                             message: str) -> None:
    out = tmp_path / "sweep"
    with pytest.raises(ConfigError, match=message):
        run_sweep("lenet5", grid, 2, 1, out, overrides=extra)
    assert not out.exists()


@pytest.mark.slow
def test_sweep_reports_good_points_and_keeps_failures_inside_their_runs(
        tmp_path: Path, mnist_ready: None) -> None:
    # lr=1e30 is valid config but diverges inside `lenet train`, which exits 2 ("loss became
    # nan"): a failure that only happens in the run, next to a point that trains fine.
    out = tmp_path / "sweep"
    lines: list[str] = []
    result = run_sweep("lenet5", {"lr": ["0.003", "1e30"]}, seeds=2, jobs=2, out_dir=out,
                       overrides=TINY, timeout=240, log=lines.append)
    assert not result.ok and len(result.runs) == 4
    good, bad = result.points
    assert (good.name, bad.name) == ("lr=0.003", "lr=1e30")

    assert [r.seed for r in good.runs] == [0, 1] and all(r.ok for r in good.runs)
    accs = [r.result["test_accuracy"] for r in good.runs]
    assert all(0.3 < a <= 1 for a in accs), accs  # 32 Adam steps: well above chance (0.1)
    assert good.mean == pytest.approx(statistics.mean(accs))
    assert good.std == pytest.approx(statistics.stdev(accs))
    assert (good.min, good.max) == (min(accs), max(accs))
    assert good.seconds_per_epoch > 0
    for r in good.runs:
        assert r.result["epochs"] == 1 and Path(r.result["run_dir"]) == r.run_dir
        assert (r.run_dir / "model.safetensors").is_file()
        assert "epoch 1/1" in r.log_path.read_text()  # the run's stderr is its log
        assert json.loads((r.run_dir / "config.json").read_text())["seed"] == r.seed
    # Different seeds really are different runs.
    assert good.runs[0].result["test_loss"] != good.runs[1].result["test_loss"]

    assert bad.ok_runs == [] and bad.mean is None and bad.std is None
    assert result.failed == bad.runs
    for r in bad.runs:
        assert r.returncode == 2 and r.result is None
        assert "exit status 2" in r.error and "loss became nan" in r.error
        assert "loss became nan" in r.log_path.read_text()
    assert sum("FAILED" in line for line in lines) == 2 and len(lines) == 5

    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs_total"] == 4 and summary["runs_failed"] == 2
    by_name = {p["name"]: p for p in summary["points"]}
    assert by_name["lr=0.003"]["test_accuracy_mean"] == pytest.approx(good.mean)
    assert by_name["lr=0.003"]["runs_ok"] == 2 and by_name["lr=1e30"]["runs_ok"] == 0
    assert "loss became nan" in by_name["lr=1e30"]["runs"][0]["error"]
    md = (out / "summary.md").read_text()
    assert f"| lr=0.003 | {100 * good.mean:.2f} ± {100 * good.std:.2f} |" in md
    assert "| lr=1e30 | – ± – |" in md and "0/2" in md
    assert "## Failed runs" in md and str(bad.runs[0].log_path) in md

    # The same out dir again would overwrite those runs: refused before anything runs.
    with pytest.raises(ConfigError, match="already exists"):
        run_sweep("lenet5", {"lr": ["0.003", "1e30"]}, 1, 1, out, overrides=TINY)
    assert len(list(out.iterdir())) == 6  # 4 run dirs, 2 summaries: nothing new


def test_each_run_is_a_train_config_and_python_callers_give_config_keys(tmp_path: Path) -> None:
    points = plan("lenet5", {"lr": ["0.01", "0.02"]}, 2, tmp_path,
                  overrides={"epochs": 1, "tensorboard": False, "milestones": None})
    run = points[1].runs[1]
    cfg = run.config
    assert (cfg.lr, cfg.seed, cfg.epochs, cfg.tensorboard) == (0.02, 1, 1, False)
    assert cfg.run_dir == str(run.run_dir) == str(tmp_path / "lr=0.02-seed1")
    # The `lenet train` command that trains the run by hand asks for the same keys.
    assert "epochs=1" in run.command and "tensorboard=False" in run.command
    with pytest.raises(ConfigError, match="the sweep sets it itself"):
        plan("lenet5", {}, 1, tmp_path, overrides={"run_dir": "x"})
    with pytest.raises(ConfigError, match="unknown key 'lrr'"):
        plan("lenet5", {}, 1, tmp_path, overrides={"lrr": 0.1})
    assert not list(tmp_path.iterdir())
